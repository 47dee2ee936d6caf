import { spawn as spawnProcess } from 'node:child_process';
import fs = require('node:fs');
import path = require('node:path');
import { ConflictError, NotFoundError, StateError, TsrunError, ValidationError, syscallErrorFrom } from '../errors';
import { CgroupDriver, createCgroupDriver, defaultCgroupParent } from '../linux/cgroups';
import { isRunning } from '../linux/proc';
import { canPivotRoot } from '../linux/rootfs';
import { seccompCacheDirIn } from '../linux/seccomp';
import { Logger, silentLogger } from '../logger';
import { loadNative } from '../native';
import { loadBundleConfig } from '../oci/config';
import { bundleDeviceRules } from '../linux/devices';
import type { Hook, Hooks, LinuxSeccomp, Spec } from '../oci/runtime-spec';
import { writeFileAtomic } from '../util/atomic-file';
import { Container } from './container';
import { buildContainerPlan } from './container-plan';
import { ExecProcess, ExecTarget, execDetached, execProcess, namespacesOf } from './exec';
import { OciStatus, checkOperation } from './lifecycle';
import { releaseInit } from './monitor';
import type { PlanStep } from './plan';
import { signalNumber } from './signals';
import { signalProcess } from './process-signal';
import { SpawnedProcess, killAndReap, spawnContainer, startTimeOf } from './spawn';

export const DEFAULT_OCI_ROOT = '/run/tsrun-oci';

const ID = /^[a-zA-Z0-9][a-zA-Z0-9_.+-]*$/;
const O_PATH = 0o10000000;
const S_IFIFO = 0o010000;

/** The state the runtime spec defines (`tsrun-oci state`), as JSON. */
export interface OciState {
  ociVersion: string;
  id: string;
  status: OciStatus;
  pid?: number;
  bundle: string;
  annotations?: Record<string, string>;
}

/** What `<root>/<id>/state.json` keeps: the recorded state and what later commands need. */
interface StoredState {
  ociVersion: string;
  id: string;
  status: 'creating' | 'created' | 'running' | 'stopped';
  pid: number;
  pidStartTime?: number;
  bundle: string;
  rootfs: string;
  created: string;
  annotations?: Record<string, string>;
  cgroup: { parent: string; name: string };
  /** The hooks that run after create (startContainer, poststart, poststop), from config.json. */
  hooks?: Hooks;
  paused?: boolean;
  /** config.json's filter, which exec'd processes get too. */
  seccomp?: LinuxSeccomp;
}

export interface OciOptions {
  /** The state directory (runc's --root), default /run/tsrun-oci. */
  root?: string;
  logger?: Logger;
}

export interface CreateOptions extends OciOptions {
  bundle: string;
  pidFile?: string;
  noPivot?: boolean;
  /** Unix socket to send the pty master to (process.terminal). */
  consoleSocket?: string;
}

function stateRoot(options: OciOptions): string {
  return path.resolve(options.root ?? DEFAULT_OCI_ROOT);
}

function checkId(id: string): void {
  if (!ID.test(id) || id.length > 1024) throw new ValidationError('id', `${JSON.stringify(id)} is not a valid container id`);
}

class OciStore {
  constructor(readonly root: string) {}

  dir(id: string): string {
    return path.join(this.root, id);
  }

  fifo(id: string): string {
    return path.join(this.dir(id), 'exec.fifo');
  }

  load(id: string): StoredState {
    checkId(id);
    try {
      return JSON.parse(fs.readFileSync(path.join(this.dir(id), 'state.json'), 'utf8')) as StoredState;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new NotFoundError('container', id, `container ${id} does not exist`);
      throw err;
    }
  }

  save(state: StoredState): void {
    writeFileAtomic(path.join(this.dir(state.id), 'state.json'), `${JSON.stringify(state)}\n`, { durable: false });
  }

  ids(): string[] {
    try {
      return fs.readdirSync(this.root).filter((e) => ID.test(e) && fs.existsSync(path.join(this.root, e, 'state.json')));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
  }
}

/**
 * The status now: the init's liveness (pid and start time), whether its
 * exec fifo is still there (created) and whether it was paused.
 */
function statusOf(store: OciStore, state: StoredState): OciStatus {
  if (state.status === 'stopped') return 'stopped';
  if (state.status === 'creating') return state.pid > 0 && isRunning(state.pid, state.pidStartTime) ? 'creating' : 'stopped';
  if (!isRunning(state.pid, state.pidStartTime)) return 'stopped';
  if (fs.existsSync(store.fifo(state.id))) return 'created';
  return state.paused ? 'paused' : 'running';
}

function publicState(store: OciStore, state: StoredState): OciState {
  const status = statusOf(store, state);
  return {
    ociVersion: state.ociVersion,
    id: state.id,
    status,
    ...(status === 'stopped' ? {} : { pid: state.pid }),
    bundle: state.bundle,
    ...(state.annotations ? { annotations: state.annotations } : {}),
  };
}

/** `/parent/name`, or systemd's `slice:prefix:name` (cgroupfs is used either way, as named). */
function cgroupLocation(spec: Spec, id: string): { parent: string; name: string } {
  const cgroupsPath = spec.linux.cgroupsPath;
  if (!cgroupsPath) return { parent: defaultCgroupParent(), name: id };
  const systemd = /^([^:/]*):([^:]*):([^:]+)$/.exec(cgroupsPath);
  if (systemd) return { parent: systemd[1] || 'system.slice', name: systemd[2] ? `${systemd[2]}-${systemd[3]}` : systemd[3] };
  const parts = cgroupsPath.split('/').filter(Boolean);
  if (parts.length === 0) throw new ValidationError('linux.cgroupsPath', `${JSON.stringify(cgroupsPath)} names no cgroup`);
  const name = parts.pop() as string;
  return { parent: parts.length > 0 ? parts.join('/') : defaultCgroupParent(), name };
}

function cgroupOf(state: Pick<StoredState, 'cgroup'>): CgroupDriver {
  return createCgroupDriver(state.cgroup.name, { parent: state.cgroup.parent });
}

/**
 * A `cgroup` mount as runc makes it on cgroup v1 and hybrid hosts, where
 * one mount cannot show every hierarchy: a tmpfs with a bind of the
 * container's own cgroup from each hierarchy, read-only if asked. On a
 * unified host it is the cgroup2 filesystem, seen through the container's
 * cgroup namespace.
 */
function expandCgroupMounts(spec: Spec, cgroup: CgroupDriver, location: { parent: string; name: string }): Spec['mounts'] {
  return spec.mounts.flatMap((mount) => {
    if (mount.type !== 'cgroup' && mount.type !== 'cgroup2') return [mount];
    const safe = ['nosuid', 'nodev', 'noexec'];
    if (cgroup.version === 2) return [{ ...mount, type: 'cgroup2', source: 'cgroup2', options: (mount.options ?? []).filter((o) => !o.endsWith('private')) }];
    const readOnly = (mount.options ?? []).includes('ro');
    const suffix = `/${location.parent}/${location.name}`;
    const mounts: Spec['mounts'] = [{ destination: mount.destination, type: 'tmpfs', source: 'tmpfs', options: [...safe, 'mode=755'] }];
    for (const dir of cgroup.paths) {
      const hierarchy = path.basename(dir.slice(0, dir.length - suffix.length));
      mounts.push({ destination: path.posix.join(mount.destination, hierarchy), source: dir, options: ['bind', ...safe, ...(readOnly ? ['ro'] : [])] });
    }
    if (readOnly) mounts.push({ destination: mount.destination, type: 'tmpfs', source: 'tmpfs', options: ['remount', 'ro', ...safe] });
    return mounts;
  });
}

/** sysctl: set in the container, after its /proc is mounted and before its exec fifo. */
function setupSteps(spec: Spec): PlanStep[] {
  const steps: PlanStep[] = [];
  for (const [key, value] of Object.entries(spec.linux.sysctl ?? {})) {
    const file = `/proc/sys/${key.replace(/\./g, '/')}`;
    steps.push({ op: 'WriteFile', strs: [file, value], args: [fs.constants.O_WRONLY | fs.constants.O_TRUNC], phase: 'sysctl', target: file, detail: key });
  }
  return steps;
}

/** Runs a hook with the state on its stdin; a non-zero exit or its timeout is an error naming it. */
export async function runHook(kind: string, hook: Hook, state: OciState): Promise<void> {
  const child = spawnProcess(hook.path, (hook.args ?? [hook.path]).slice(1), {
    argv0: hook.args?.[0] ?? hook.path,
    env: Object.fromEntries((hook.env ?? []).map((e) => [e.slice(0, e.indexOf('=')), e.slice(e.indexOf('=') + 1)])),
    stdio: ['pipe', 'ignore', 'pipe'],
    timeout: hook.timeout ? hook.timeout * 1000 : undefined,
    killSignal: 'SIGKILL',
  });
  let stderr = '';
  child.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  child.stdin?.on('error', () => undefined);
  child.stdin?.end(JSON.stringify(state));
  const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (c, s) => resolve([c, s]));
  }).catch((err: unknown) => {
    throw new TsrunError(`${kind} hook ${hook.path}: ${(err as Error).message}`, 'EHOOK', { cause: err });
  });
  if (code !== 0) {
    const why = signal === 'SIGKILL' && hook.timeout ? `timed out after ${hook.timeout}s` : signal ? `killed by ${signal}` : `exited ${code}`;
    throw new TsrunError(`${kind} hook ${hook.path} ${why}${stderr.trim() ? `: ${stderr.trim()}` : ''}`, 'EHOOK');
  }
}

async function runHooks(kind: keyof Hooks, hooks: Hooks | undefined, state: OciState): Promise<void> {
  for (const hook of hooks?.[kind] ?? []) await runHook(kind, hook, state);
}

/**
 * `create`: the init is set up in its namespaces and cgroup and waits on
 * its exec fifo; this process then goes, and the init's parent becomes the
 * caller's subreaper (conmon, containerd-shim) as with runc. Returns the
 * spawned process, which `run` keeps to wait on.
 */
export async function ociCreate(id: string, options: CreateOptions): Promise<SpawnedProcess> {
  const logger = options.logger ?? silentLogger;
  checkId(id);
  const bundle = path.resolve(options.bundle);
  const spec = loadBundleConfig(bundle);
  spec.linux.resources = { ...spec.linux.resources, devices: bundleDeviceRules(spec.linux.resources?.devices ?? [], spec.linux.devices ?? []) };
  if (spec.process.terminal && !options.consoleSocket) throw new ValidationError('process.terminal', 'a terminal needs --console-socket');
  const store = new OciStore(stateRoot(options));
  fs.mkdirSync(store.root, { recursive: true, mode: 0o700 });
  try {
    fs.mkdirSync(store.dir(id), { mode: 0o700 });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') throw new ConflictError(`container ${id} already exists`);
    throw err;
  }
  const state: StoredState = {
    ociVersion: spec.ociVersion,
    id,
    status: 'creating',
    pid: 0,
    bundle,
    rootfs: spec.root.path,
    created: new Date().toISOString(),
    annotations: spec.annotations,
    cgroup: cgroupLocation(spec, id),
    hooks: { startContainer: spec.hooks?.startContainer, poststart: spec.hooks?.poststart, poststop: spec.hooks?.poststop },
    seccomp: spec.linux.seccomp,
  };
  let cgroup: CgroupDriver | undefined;
  let spawned: SpawnedProcess | undefined;
  let fifoFd = -1;
  let consoleFd = -1;
  try {
    store.save(state);
    if (spec.process.terminal) consoleFd = connectConsole(options.consoleSocket as string);
    cgroup = cgroupOf(state);
    for (const warning of cgroup.create(spec.linux.resources ?? {})) logger.warn({ id }, warning);
    loadNative().mknod(store.fifo(id), S_IFIFO | 0o600, 0, 0);
    fifoFd = fs.openSync(store.fifo(id), O_PATH);
    const pivot = !options.noPivot && canPivotRoot();
    spec.mounts = expandCgroupMounts(spec, cgroup, state.cgroup);
    const plan = buildContainerPlan(spec, {
      stdio: [0, 1, 2],
      dieWithParent: false,
      pivot,
      cgroupJoin: cgroup.joinSteps(),
      execFifoFd: fifoFd,
      setupSteps: setupSteps(spec),
      terminal: consoleFd >= 0 ? { consoleFd, size: consoleSizeOf(spec.process) } : undefined,
      seccompCacheDir: seccompCacheDirIn(stateRoot(options)),
    });
    spawned = spawnContainer(spec, plan);
    Object.assign(state, { pid: spawned.pid, pidStartTime: startTimeOf(spawned) });
    if (spec.process.oomScoreAdj !== undefined) fs.writeFileSync(`/proc/${spawned.pid}/oom_score_adj`, String(spec.process.oomScoreAdj));
    const hookState: OciState = { ...publicState(store, state), status: 'creating', pid: spawned.pid };
    await runHooks('prestart', spec.hooks, hookState);
    await runHooks('createRuntime', spec.hooks, hookState);
    await runHooks('createContainer', spec.hooks, hookState);
    if (options.pidFile) writeFileAtomic(path.resolve(options.pidFile), String(spawned.pid), { durable: false });
    state.status = 'created';
    store.save(state);
    return spawned;
  } catch (err) {
    if (spawned) killAndReap(spawned);
    try {
      await cgroup?.destroy();
    } catch (cleanupError) {
      if (err instanceof TsrunError) err.cleanupError ??= cleanupError;
    }
    fs.rmSync(store.dir(id), { recursive: true, force: true });
    throw err;
  } finally {
    if (fifoFd >= 0) fs.closeSync(fifoFd);
    if (consoleFd >= 0) fs.closeSync(consoleFd);
  }
}

/**
 * The engine's --console-socket, connected: the init allocates its pty in
 * the container's own devpts (so `tty` names a /dev/pts/N that exists
 * there) and sends the master over it, as runc's init does.
 */
function connectConsole(socket: string): number {
  try {
    return loadNative().connectUnix(path.resolve(socket));
  } catch (err) {
    throw syscallErrorFrom('console socket', err);
  }
}

function consoleSizeOf(process: Spec['process']): { rows: number; cols: number } | undefined {
  return process.consoleSize ? { rows: process.consoleSize.height, cols: process.consoleSize.width } : undefined;
}

/**
 * A startContainer hook runs in the container's namespaces (its path is
 * the container's), as a process exec makes, with the state on its stdin.
 */
async function runStartContainerHook(hook: Hook, target: ExecTarget, state: OciState): Promise<void> {
  const process: Spec['process'] = {
    args: [hook.path, ...(hook.args ?? []).slice(1)],
    env: hook.env ?? [],
    cwd: '/',
    user: { uid: 0, gid: 0 },
  };
  const child = execProcess(target, { process, stdio: ['pipe', 'ignore', 'pipe'], dieWithParent: true });
  let stderr = '';
  child.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  child.stdin?.end(JSON.stringify(state));
  const timer = hook.timeout ? setTimeout(() => child.kill('SIGKILL'), hook.timeout * 1000) : undefined;
  const { exitCode } = await child.wait();
  if (timer) clearTimeout(timer);
  if (exitCode !== 0) throw new TsrunError(`startContainer hook ${hook.path} exited ${exitCode}${stderr.trim() ? `: ${stderr.trim()}` : ''}`, 'EHOOK');
}

/** `start`: runs the startContainer hooks in the container, lets the created init exec, then runs the poststart hooks. */
export async function ociStart(id: string, options: OciOptions = {}): Promise<void> {
  const store = new OciStore(stateRoot(options));
  const state = store.load(id);
  checkOperation(id, statusOf(store, state), 'start');
  const startHooks = state.hooks?.startContainer ?? [];
  if (startHooks.length > 0) {
    const target = execTarget(id, options);
    for (const hook of startHooks) await runStartContainerHook(hook, target, publicState(store, state));
  }
  await releaseInit(store.fifo(id), state.pid, state.pidStartTime);
  state.status = 'running';
  store.save(state);
  try {
    await runHooks('poststart', state.hooks, publicState(store, state));
  } catch (err) {
    // The spec: a failed poststart hook is logged, the container runs on.
    (options.logger ?? silentLogger).warn({ id, err }, 'poststart hook failed');
  }
}

export function ociState(id: string, options: OciOptions = {}): OciState {
  const store = new OciStore(stateRoot(options));
  return publicState(store, store.load(id));
}

export function ociList(options: OciOptions = {}): (OciState & { created: string; rootfs: string })[] {
  const store = new OciStore(stateRoot(options));
  return store.ids().flatMap((id) => {
    try {
      const state = store.load(id);
      return [{ ...publicState(store, state), created: state.created, rootfs: state.rootfs }];
    } catch (err) {
      if (err instanceof NotFoundError) return [];
      throw err;
    }
  });
}

function signalInit(state: StoredState, signal: number): void {
  signalProcess(state.pid, state.pidStartTime, signal);
}

/** `kill ID [SIGNAL]` (default SIGTERM); `all` signals every process of the cgroup. */
export async function ociKill(id: string, signal: string | number = 'SIGTERM', options: OciOptions & { all?: boolean } = {}): Promise<void> {
  const store = new OciStore(stateRoot(options));
  const state = store.load(id);
  const number = signalNumber(signal);
  checkOperation(id, statusOf(store, state), 'kill');
  if (!options.all) {
    signalInit(state, number);
    return;
  }
  const cgroup = cgroupOf(state);
  if (number === 9) {
    await cgroup.killAll();
    return;
  }
  for (const pid of cgroup.pids()) {
    try {
      process.kill(pid, number);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw syscallErrorFrom('kill', err);
    }
  }
}

async function waitGone(state: StoredState, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (isRunning(state.pid, state.pidStartTime)) {
    if (Date.now() > deadline) throw new TsrunError(`container ${state.id}: init ${state.pid} did not die within ${timeoutMs} ms of SIGKILL`, 'ETIMEDOUT');
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/**
 * `delete`: a stopped container's cgroup and state go and its poststop
 * hooks run. Any other state is refused unless `force`, which kills it
 * first: the spec asks that a created container not be deleted without it.
 */
export async function ociDelete(id: string, options: OciOptions & { force?: boolean } = {}): Promise<void> {
  const store = new OciStore(stateRoot(options));
  let state: StoredState;
  try {
    state = store.load(id);
  } catch (err) {
    if (err instanceof NotFoundError && options.force) return;
    throw err;
  }
  const status = statusOf(store, state);
  checkOperation(id, status, 'delete', { force: options.force });
  const cgroup = cgroupOf(state);
  if (status !== 'stopped') {
    if (status === 'paused') cgroup.thaw();
    signalInit(state, 9);
    await waitGone(state);
  }
  await cgroup.destroy();
  const final = publicState(store, { ...state, status: 'stopped' });
  fs.rmSync(store.dir(id), { recursive: true, force: true });
  try {
    await runHooks('poststop', state.hooks, final);
  } catch (err) {
    (options.logger ?? silentLogger).warn({ id, err }, 'poststop hook failed');
  }
}

/** `pause` / `resume`: the freezer of the container's cgroup. */
export async function ociPause(id: string, options: OciOptions = {}): Promise<void> {
  const store = new OciStore(stateRoot(options));
  const state = store.load(id);
  checkOperation(id, statusOf(store, state), 'pause');
  if (!(await cgroupOf(state).freeze())) throw new TsrunError(`container ${id}: the freezer did not report frozen`, 'ETIMEDOUT');
  store.save({ ...state, paused: true });
}

export function ociResume(id: string, options: OciOptions = {}): void {
  const store = new OciStore(stateRoot(options));
  const state = store.load(id);
  checkOperation(id, statusOf(store, state), 'resume');
  cgroupOf(state).thaw();
  store.save({ ...state, paused: false });
}

/** `ps`: the host pids of the container's processes. */
export function ociPids(id: string, options: OciOptions = {}): number[] {
  const store = new OciStore(stateRoot(options));
  const state = store.load(id);
  if (statusOf(store, state) === 'stopped') return [];
  return cgroupOf(state).pids().sort((a, b) => a - b);
}

function execTarget(id: string, options: OciOptions): ExecTarget {
  const store = new OciStore(stateRoot(options));
  const state = store.load(id);
  const status = statusOf(store, state);
  if (status !== 'running' && status !== 'created') throw new StateError(id, status, 'exec', `cannot exec in ${status} container ${id}: exec needs a running container`);
  return { id, name: id, pid: state.pid, cgroup: cgroupOf(state), namespaces: namespacesOf(state.pid), seccomp: state.seccomp, seccompCacheDir: seccompCacheDirIn(stateRoot(options)) };
}

/** `exec`: a process in the running container's namespaces and cgroup; `process` in config.json's shape. */
export function ociExec(id: string, process: Spec['process'], options: OciOptions & { stdio?: ExecProcess['stdio'] } = {}): Container {
  return execProcess(execTarget(id, options), { process, stdio: options.stdio ?? 'inherit', dieWithParent: false, logger: options.logger });
}

/**
 * `exec --detach`: returns the pid of a process this one leaves unreaped,
 * for the caller's subreaper. With process.terminal, its console goes to
 * `consoleSocket`.
 */
export function ociExecDetached(id: string, process: Spec['process'], options: OciOptions & { consoleSocket?: string } = {}): number {
  if (!process.terminal) return execDetached(execTarget(id, options), process);
  if (!options.consoleSocket) throw new ValidationError('process.terminal', 'a terminal needs --console-socket');
  const consoleFd = connectConsole(options.consoleSocket);
  try {
    return execDetached(execTarget(id, options), process, { consoleFd, size: consoleSizeOf(process) });
  } finally {
    fs.closeSync(consoleFd);
  }
}
