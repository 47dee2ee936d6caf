import fs = require('node:fs');
import path = require('node:path');
import { TsrunError, ValidationError } from '../errors';
import type { CgroupDriver } from '../linux/cgroups';
import { canPivotRoot } from '../linux/rootfs';
import { seccompCacheDirIn } from '../linux/seccomp';
import { prepareSpareNetworkNamespace, takeSpareNetworkNamespace } from '../linux/spare-netns';
import { ProcessIdentity, ownIdentity, processStartTime } from '../linux/proc';
import { loadNative } from '../native';
import { Logger, silentLogger } from '../logger';
import { ContainerPlan, PlanOptions, buildContainerPlan } from './container-plan';
import type { Terminal } from './terminal';
import type { ContainerNetwork, NetworkFiles } from './container-network';
import { Container, ContainerStdio, ExitResult, destroyStdio, pipeStream } from './container';
import { OCI_VERSION } from '../oci/defaults';
import type { LinuxResources, Mount, Spec } from '../oci/runtime-spec';
import { writeNetworkFiles } from '../storage/init-layer';
import { RunOptions, StdioOption, buildSpec, privilegeOptions, stateDirOf } from './options';
import { SpawnHooks, killAndReap, spawnContainer, startTimeOf } from './spawn';
import type { ResolvedMounts } from './volumes';
import { withFileLock } from '../util/file-lock';
import { ContainerState, StateStore, newContainerId, validateName } from './state';
import { crashPoint } from '../util/crash-point';

export interface StdioFds {
  /** What the child's 0, 1, 2 become (-1: inherited). */
  child: [number, number, number];
  /** Fds to close in this process once the child has them. */
  childEnds: number[];
  /** This process's ends of the pipes, per fd (-1: none). */
  parent: [number, number, number];
}

export function setupStdio(option: RunOptions['stdio']): StdioFds {
  const perFd: StdioOption[] = Array.isArray(option) ? option : [option ?? 'pipe', option ?? 'pipe', option ?? 'pipe'];
  const fds: StdioFds = { child: [-1, -1, -1], childEnds: [], parent: [-1, -1, -1] };
  try {
    perFd.forEach((mode, i) => {
      if (mode === 'inherit') {
        fds.child[i] = i;
      } else if (mode === 'ignore') {
        const devNull = fs.openSync('/dev/null', i === 0 ? 'r' : 'w');
        fds.childEnds.push(devNull);
        fds.child[i] = devNull;
      } else if (mode === 'pipe') {
        const [readEnd, writeEnd] = loadNative().pipe();
        const [childEnd, parentEnd] = i === 0 ? [readEnd, writeEnd] : [writeEnd, readEnd];
        fds.childEnds.push(childEnd);
        fds.child[i] = childEnd;
        fds.parent[i] = parentEnd;
      } else if (Number.isInteger(mode) && mode >= 0) {
        fds.child[i] = mode;
      } else {
        throw new TsrunError(`stdio[${i}]: ${JSON.stringify(mode)} is not inherit, pipe, ignore or an fd`, 'EINVAL');
      }
    });
  } catch (err) {
    closeAll([...fds.childEnds, ...fds.parent]);
    throw err;
  }
  return fds;
}

export function closeAll(fds: number[]): void {
  for (const fd of fds) if (fd >= 0) fs.closeSync(fd);
}

/**
 * What differs between a container on a plain root filesystem (runtime
 * state only) and one made from an image (a record and layers in the store).
 */
interface Lifecycle {
  rootfs: string;
  process?: { args: string[]; env: string[]; cwd: string; user: string | undefined };
  started(pid: number, startTime: number | undefined): void;
  /** A detached init waits on its exec fifo, under `monitor`, which records its exit. */
  created(pid: number, monitor: ProcessIdentity): void;
  startFailed(): void | Promise<void>;
  exited(result: ExitResult): void | Promise<void>;
  /** The container's -v/--mount/--tmpfs mounts, kept in its record for inspect and for `volume rm`'s in-use check. */
  usesMounts?(mounts: ResolvedMounts): void;
  /** Makes the hosts and resolv.conf a network fills in (asked for only when the container has a network to fill them from). */
  networkFiles(): NetworkFiles;
}

function rootfsLifecycle(options: RunOptions, id: string, name: string, spec: () => Spec, resources: LinuxResources, relaunch: boolean): Lifecycle {
  const store = new StateStore(stateDirOf(options));
  const fresh: ContainerState = {
    ociVersion: OCI_VERSION,
    id,
    name,
    status: 'creating',
    pid: 0,
    owner: ownIdentity(),
    bundle: '',
    rootfs: options.rootfs ?? '',
    created: new Date().toISOString(),
    command: options.args ?? [],
    resources,
    autoRemove: options.autoRemove,
    privileges: privilegeOptions(options),
  };
  let state = fresh;
  if (relaunch) {
    state = { ...store.load(id), status: 'creating', owner: ownIdentity(), resources };
    store.save(state);
  } else {
    // Taken before the start, so that a name in use stops it.
    store.create(state);
  }
  return {
    rootfs: options.rootfs ?? '',
    networkFiles() {
      const dir = store.containerDir(id);
      const files = { hosts: path.join(dir, 'hosts'), resolvConf: path.join(dir, 'resolv.conf') };
      writeNetworkFiles(files, options.network ?? 'none');
      const bind = (source: string, destination: string): Mount => ({ destination, type: 'bind', source, options: ['rbind', 'rw', 'rprivate'] });
      return { ...files, mounts: [bind(files.hosts, '/etc/hosts'), bind(files.resolvConf, '/etc/resolv.conf')] };
    },
    started(pid, startTime) {
      Object.assign(state, { status: 'running', pid, pidStartTime: startTime, rootfs: spec().root.path, startedAt: new Date().toISOString() });
      store.save(state);
    },
    created(pid, monitor) {
      Object.assign(state, { status: 'created', pid, pidStartTime: processStartTime(pid) ?? undefined, rootfs: spec().root.path, owner: monitor });
      store.save(state);
    },
    startFailed() {
      if (relaunch) store.save({ ...state, status: 'stopped', pid: 0 });
      else store.remove(state);
    },
    exited(result) {
      if (options.autoRemove) {
        store.remove(state);
        return;
      }
      // Read back: `tsrun update` may have changed the limits meanwhile.
      let current: ContainerState;
      try {
        current = store.load(id);
      } catch (err) {
        // `tsrun rm -f` removed it while it ran.
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
        throw err;
      }
      store.save({ ...current, status: 'stopped', pid: 0, exitCode: result.exitCode, oomKilled: result.oomKilled, finishedAt: new Date().toISOString() });
    },
  };
}

/** The image store's code loads only for image containers, so that `run --rootfs` starts without it. */
async function imageLifecycle(options: RunOptions & { image: string }, id: string, name: string, resources: LinuxResources, logger: Logger, relaunch: boolean): Promise<Lifecycle> {
  const { createImageContainer, reopenImageContainer } = await import('./image-container');
  return relaunch ? reopenImageContainer(options, id) : createImageContainer(options, id, name, resources, logger);
}

/** What prepare() made: the container's records, cgroup, mounts, network and spec, ready for its init. */
interface Prepared {
  id: string;
  name: string;
  spec: Spec;
  cgroup: CgroupDriver;
  lifecycle: Lifecycle;
  pivot: boolean;
  cgroups: typeof import('./container-cgroup');
  userMounts: ResolvedMounts;
  network: ContainerNetwork;
  logger: Logger;
  /** Undoes everything prepare() did, keeping the first error first. */
  fail(err: unknown): Promise<never>;
}

/** An existing container to start anew under its own id and name (restart), rather than a new one. */
interface Existing {
  id: string;
  name: string;
}

async function prepare(runOptions: RunOptions, existing?: Existing): Promise<Prepared> {
  const logger = runOptions.logger ?? silentLogger;
  runOptions.signal?.throwIfAborted();
  const options = runOptions.usernsRemap === undefined ? runOptions : { ...runOptions, idMappings: await userNamespaceRemap(runOptions) };
  if ((options.rootfs === undefined) === (options.image === undefined)) throw new ValidationError('rootfs', 'give either rootfs or image, not both or neither');
  // Loaded here, not at the top, so that the CLI's other commands start without it.
  const cgroups = await import('./container-cgroup');
  // Before anything exists: a bad limit leaves nothing to clean up.
  const resources = cgroups.resourcesFromOptions(options);
  const id = existing?.id ?? newContainerId();
  const name = existing?.name ?? options.name ?? id.slice(0, 12);
  validateName(name);
  const pivot = !options.noPivot && canPivotRoot();
  let spec: Spec | undefined;
  // The record comes first: from then on a concurrent `tsrun ps` sees the
  // container as being created, and leaves its cgroup alone.
  const lifecycle: Lifecycle =
    options.image !== undefined
      ? await imageLifecycle({ ...options, image: options.image }, id, name, resources, logger, existing !== undefined)
      : rootfsLifecycle(options, id, name, () => spec as Spec, resources, existing !== undefined);
  let cgroup: CgroupDriver | undefined;
  let userMounts: ResolvedMounts | undefined;
  let network: ContainerNetwork = {};
  const fail = async (err: unknown): Promise<never> => {
    const anonymous = userMounts?.anonymous ?? [];
    const cleanups = [async () => network.attachment?.detach(), async () => cgroup?.destroy(), async () => lifecycle.startFailed(), async () => removeAnonymousVolumes(options, anonymous)];
    for (const cleanup of cleanups) {
      try {
        await cleanup();
      } catch (cleanupError) {
        if (err instanceof TsrunError) err.cleanupError ??= cleanupError;
      }
    }
    throw err;
  };
  try {
    userMounts = await resolveUserMounts(options, lifecycle.rootfs);
    lifecycle.usesMounts?.(userMounts);
    if ((options.network ?? 'none') !== 'none' || (options.publish ?? []).length > 0 || options.publishAll) {
      const { prepareContainerNetwork } = await import('./container-network');
      network = await prepareContainerNetwork(options, { id, name, hostname: options.hostname ?? id.slice(0, 12) }, () => lifecycle.networkFiles(), logger);
    }
    // The network's files first, so that a -v over /etc/hosts wins, as with Docker.
    spec = buildSpec({ ...options, ...lifecycle.process, rootfs: lifecycle.rootfs }, id, resources, [...(network.mounts ?? []), ...userMounts.mounts], network.joinPath);
    if (!pivot && !options.noPivot) logger.warn({ id, rootfs: spec.root.path }, 'pivot_root is impossible on a ramfs root; using MS_MOVE + chroot');
    cgroup = cgroups.createContainerCgroup(id, spec.linux.resources ?? {}, logger);
    crashPoint('run:cgroup');
  } catch (err) {
    return fail(err);
  }
  return { id, name, spec, cgroup, lifecycle, pivot, cgroups, userMounts, network, logger, fail };
}

function terminalOption(tty: RunOptions['tty'], consoleFd: number | undefined): PlanOptions['terminal'] {
  if (!tty || consoleFd === undefined) return undefined;
  return { consoleFd, size: typeof tty === 'object' ? tty : undefined };
}

/** The parent's work at the network sync point: CNI ADD in the child's new network namespace. */
function networkHooks(network: ContainerNetwork): SpawnHooks {
  const attachment = network.attachment;
  return { network: attachment ? (pid) => attachment.attach(pid) : undefined };
}

/** The network's other containers learn this one's name (hosts files); it runs on without that. */
async function announceOnNetwork(network: ContainerNetwork, pid: number, id: string, logger: Logger): Promise<void> {
  try {
    await network.attachment?.started(pid);
  } catch (err) {
    logger.warn({ id, err }, 'could not tell the network\'s other containers about this one');
  }
}

/** Named volumes live in the image store, so only a run that has some takes its lock. */
async function resolveUserMounts(options: RunOptions, rootfs: string): Promise<ResolvedMounts> {
  const mounts = options.volumes ?? [];
  if (mounts.length === 0) return { mounts: [], anonymous: [], volumes: [] };
  const { resolveMounts } = await import('./volumes');
  if (!mounts.some((m) => m.type === 'volume')) return resolveMounts(mounts, rootfs, '');
  const { storeLockFile, storeRoot } = await import('./image-container');
  const root = storeRoot(options);
  fs.mkdirSync(root, { recursive: true, mode: 0o700 });
  return withFileLock(storeLockFile(root), 'exclusive', () => resolveMounts(mounts, rootfs, root));
}

export async function removeAnonymousVolumes(options: Pick<RunOptions, 'root'>, names: string[]): Promise<void> {
  if (names.length === 0) return;
  const { storeLockFile, storeRoot } = await import('./image-container');
  const { VolumeStore } = await import('../storage/volumes');
  const root = storeRoot(options);
  await withFileLock(storeLockFile(root), 'exclusive', () => names.forEach((name) => new VolumeStore(root).remove(name, [], true)));
}

async function userNamespaceRemap(options: RunOptions): Promise<RunOptions['idMappings']> {
  if (options.idMappings) throw new ValidationError('usernsRemap', 'give either usernsRemap or idMappings, not both');
  const { HOST_SUBID_FILES, remapMappings } = await import('../linux/userns-remap');
  return remapMappings(options.usernsRemap as string, options.subIdFiles ?? HOST_SUBID_FILES);
}

/**
 * Starts a container and returns once its command has exec'd.
 *
 * @example
 * const c = await run({ rootfs: '/srv/busybox', args: ['sh', '-c', 'echo hi'] });
 * c.stdout?.pipe(process.stdout);
 * const { exitCode } = await c.wait();
 */
export async function run(options: RunOptions): Promise<Container> {
  const { id, name, spec, cgroup, lifecycle, pivot, cgroups, userMounts, network, logger, fail } = await prepare(options);
  let stdio: StdioFds | undefined;
  let plan: ContainerPlan;
  let spawned;
  // [runtime end, child end] of the socket the child sends its pty master on.
  const consoleSocket: number[] = [];
  let terminal: Terminal | undefined;
  const spareNet = takeSpareNetworkNamespace(spec);
  // Now rather than after the clone: the worker thread has the other CPU
  // while this one waits for the child, instead of competing with the
  // container and with the teardown of its namespaces when it exits.
  prepareSpareNetworkNamespace(spec);
  try {
    // The terminal code (and node:stream under it) loads only for a container with a terminal.
    const terminalModule = options.tty ? await import('./terminal') : undefined;
    stdio = setupStdio(options.tty ? 'inherit' : options.stdio);
    if (options.tty) consoleSocket.push(...loadNative().socketPair());
    plan = buildContainerPlan(spec, {
      stdio: stdio.child,
      dieWithParent: options.dieWithParent ?? true,
      pivot,
      cgroupJoin: cgroup.joinSteps(),
      terminal: terminalOption(options.tty, consoleSocket[1]),
      networkSync: network.attachment !== undefined,
      seccompCacheDir: seccompCacheDirIn(stateDirOf(options)),
      spareNetworkNamespace: spareNet,
    });
    spawned = spawnContainer(spec, plan, networkHooks(network));
    if (options.tty) {
      fs.closeSync(consoleSocket.pop() as number);
      terminal = terminalModule?.Terminal.receive(consoleSocket[0]);
    }
  } catch (err) {
    // Started, but its terminal could not be received: it must not run on.
    if (spawned) killAndReap(spawned);
    if (stdio) closeAll(stdio.parent);
    return fail(err);
  } finally {
    if (stdio) closeAll(stdio.childEnds);
    closeAll([...consoleSocket, spareNet ?? -1]);
  }
  logger.debug({ id, name, pid: spawned.pid, mode: plan.mode, steps: plan.steps.length }, 'container started');
  const onAbort = (): void => {
    container.kill('SIGKILL');
  };
  let streams: ContainerStdio | undefined;
  let container: Container;
  try {
    lifecycle.started(spawned.pid, startTimeOf(spawned));
    crashPoint('run:started');
    await announceOnNetwork(network, spawned.pid, id, logger);
    streams = terminal ? { stdin: terminal.stream, stdout: terminal.stream, stderr: null } : {
      stdin: stdio.parent[0] >= 0 ? pipeStream(stdio.parent[0], 'write') : null,
      stdout: stdio.parent[1] >= 0 ? pipeStream(stdio.parent[1], 'read') : null,
      stderr: stdio.parent[2] >= 0 ? pipeStream(stdio.parent[2], 'read') : null,
    };
    container = new Container(id, name, spec.hostname, spawned, streams, exitCleanup, logger, terminal ?? null);
  } catch (err) {
    // Running, but nobody would wait for it: it must not run on.
    killAndReap(spawned);
    if (streams) destroyStdio(streams);
    else if (terminal) terminal.stream.destroy();
    else closeAll(stdio.parent);
    return fail(err);
  }
  options.signal?.addEventListener('abort', onAbort, { once: true });
  return container;

  async function exitCleanup(reaped: ExitResult): Promise<ExitResult> {
    options.signal?.removeEventListener('abort', onAbort);
    // The cgroup goes before the record says exited: a record that says
    // so while its cgroup exists marks a leftover for `tsrun ps`.
    crashPoint('run:exited');
    const result = await cgroups.releaseContainerCgroup(cgroup, reaped, logger);
    try {
      await network.attachment?.detach();
    } catch (err) {
      logger.warn({ id, err }, 'CNI DEL failed; `tsrun system prune` retries it');
    }
    await lifecycle.exited(result);
    if (options.autoRemove) await removeAnonymousVolumes(options, userMounts.anonymous);
    return result;
  }
}

/** A container created by create(): its init waits under its monitor until startContainer(). */
export interface CreatedContainer {
  id: string;
  name: string;
  /** The host pid of the container's init. */
  pid: number;
  /** The monitor process (tsrun-monitor), which holds the exit code and the logs. */
  monitorPid: number;
}

/** The tsrun command the monitor runs once the container has exited: it records the exit and removes the cgroup. */
function cleanupCommand(options: RunOptions, id: string): string[] {
  const cli = path.resolve(__dirname, '..', '..', 'bin', 'tsrun');
  const { storeRoot } = require('./image-container') as typeof import('./image-container');
  return [process.execPath, cli, '--root', storeRoot(options), '--state', stateDirOf(options), 'container-cleanup', id];
}

/**
 * Creates a detached container (`tsrun create`): the image's layers or the
 * root filesystem, the cgroup, and an init set up in its namespaces that
 * waits for startContainer() before it execs. Its parent is a small
 * monitor process (tsrun-monitor) that writes its output to the log and
 * keeps its exit code after this process is gone. stdio options are
 * ignored: the container's output goes to the log and to attachContainer()'s
 * clients; its stdin is /dev/null unless `openStdin` (then attach writes
 * to it); with `tty`, a pty the monitor holds.
 */
export async function create(options: RunOptions & { restart?: RestartPolicy }): Promise<CreatedContainer> {
  return createDetached(options);
}

/** What a detached container was created with, which restarts use again (options.json in its monitor directory). */
type SavedOptions = Omit<RunOptions, 'logger' | 'signal' | 'stdio'> & { restart?: RestartPolicy };

async function createDetached(options: SavedOptions & Pick<RunOptions, 'logger'>, existing?: Existing): Promise<CreatedContainer> {
  if (options.restart) checkRestartPolicy(options.restart);
  const { id, name, spec, cgroup, lifecycle, pivot, network, logger, fail } = await prepare({ ...options, stdio: 'ignore' }, existing);
  const { MONITOR_CONSOLE_FD, MONITOR_FIFO_FD, MonitorFiles, createMonitored } = await import('./monitor');
  const files = MonitorFiles.of(stateDirOf(options), id);
  let init;
  try {
    if (existing) files.clearRun();
    else {
      fs.mkdirSync(files.dir, { recursive: true, mode: 0o700 });
      const { logger: _logger, signal: _signal, stdio: _stdio, ...saved } = options as RunOptions & SavedOptions;
      fs.writeFileSync(files.options, JSON.stringify({ ...saved, name }), { mode: 0o600 });
    }
    const plan = buildContainerPlan(spec, {
      stdio: [-1, -1, -1],
      dieWithParent: true,
      pivot,
      cgroupJoin: cgroup.joinSteps(),
      execFifoFd: MONITOR_FIFO_FD,
      networkSync: network.attachment !== undefined,
      terminal: terminalOption(options.tty, MONITOR_CONSOLE_FD),
      seccompCacheDir: seccompCacheDirIn(stateDirOf(options)),
    });
    init = createMonitored(spec, plan, files, cleanupCommand(options, id), { tty: Boolean(options.tty), stdin: options.openStdin === true }, networkHooks(network));
  } catch (err) {
    if (!existing) files.remove();
    return fail(err);
  }
  logger.debug({ id, name, pid: init.pid, monitor: init.monitor.pid }, 'container created');
  lifecycle.created(init.pid, init.monitor);
  await announceOnNetwork(network, init.pid, id, logger);
  return { id, name, pid: init.pid, monitorPid: init.monitor.pid };
}

/** Docker's --restart: no, on-failure[:N] (restart after a non-zero exit, at most N times), always (unless stopped by hand). */
export interface RestartPolicy {
  name: 'no' | 'on-failure' | 'always' | 'unless-stopped';
  maximumRetryCount?: number;
}

/** `on-failure:3` -> { name: 'on-failure', maximumRetryCount: 3 }. */
export function parseRestartPolicy(text: string): RestartPolicy {
  const [name, count, ...extra] = text.split(':');
  const policy: RestartPolicy = { name: name as RestartPolicy['name'] };
  if (count !== undefined) {
    if (name !== 'on-failure' || !/^\d+$/.test(count) || extra.length > 0) throw new ValidationError('restart', `${JSON.stringify(text)}: only on-failure takes a count (on-failure:N)`);
    policy.maximumRetryCount = Number(count);
  }
  checkRestartPolicy(policy);
  return policy;
}

function checkRestartPolicy(policy: RestartPolicy): void {
  if (!['no', 'on-failure', 'always', 'unless-stopped'].includes(policy.name)) {
    throw new ValidationError('restart', `${JSON.stringify(policy.name)} is not a restart policy (no, on-failure[:N], always, unless-stopped)`);
  }
}

/**
 * Starts a stopped detached container again, under its id, name, layers
 * and log, with the options it was created with: Docker's `start` of an
 * exited container, `restart`, and restart policies.
 */
export async function recreate(id: string, name: string, location: Pick<RunOptions, 'stateDir' | 'root' | 'logger'>): Promise<CreatedContainer> {
  const { MonitorFiles } = await import('./monitor');
  const files = MonitorFiles.of(stateDirOf(location), id);
  let saved: SavedOptions;
  try {
    saved = JSON.parse(fs.readFileSync(files.options, 'utf8')) as SavedOptions;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new TsrunError(`container ${name} was not created detached; it cannot be started again`, 'EINVAL');
    throw err;
  }
  return createDetached({ ...saved, stateDir: location.stateDir ?? saved.stateDir, root: location.root ?? saved.root, logger: location.logger }, { id, name });
}
