import fs = require('node:fs');
import { TsrunError, ValidationError, syscallErrorFrom } from '../errors';
import { resolveUser } from '../linux/users';
import { seccompCacheDirIn } from '../linux/seccomp';
import type { CgroupDriver } from '../linux/cgroups';
import { Logger, silentLogger } from '../logger';
import type { LinuxSeccomp, NamespaceType, Spec } from '../oci/runtime-spec';
import { Container, ContainerStdio, destroyStdio, pipeStream } from './container';
import { containerCgroup } from './container-cgroup';
import { JoinedNamespace, buildExecPlan, execCandidates } from './container-plan';
import { ContainerLocation, containerId, containerName, findContainer, ociStatus, runtimeState } from './containers';
import { checkOperation } from './lifecycle';
import { StdioOption, processPrivileges, stateDirOf } from './options';
import { killAndReap, spawnContainer } from './spawn';
import { closeAll, setupStdio } from './run';
import { Terminal } from './terminal';
import type { TerminalSize } from '../linux/pty';
import { loadNative } from '../native';

export interface ExecOptions extends ContainerLocation {
  /** The command and its arguments, looked up in the container's PATH. */
  args: string[];
  /** Added to the environment of the container's init (`KEY=VALUE`). */
  env?: string[];
  /** Working directory (default: the image's, else /). */
  cwd?: string;
  /** `name|uid[:group|gid]` in the container's /etc/passwd (default: the init's user). */
  user?: string;
  stdio?: StdioOption | [StdioOption, StdioOption, StdioOption];
  /**
   * A pty of the container's own devpts (`exec -t`), of this size if one is
   * given: the process's 0, 1 and 2 and controlling terminal; the returned
   * Container's `terminal` is its master, and `stdio` is not used.
   */
  tty?: boolean | TerminalSize;
  /** SIGKILL the process if this one dies (default true). */
  dieWithParent?: boolean;
  logger?: Logger;
}

/** /proc names of the namespaces, by OCI type. */
const PROC_NS: Record<NamespaceType, string> = { user: 'user', ipc: 'ipc', uts: 'uts', network: 'net', cgroup: 'cgroup', pid: 'pid', mount: 'mnt' };

/** The namespaces of `pid` that are not this process's own: those exec joins. */
export function namespacesOf(pid: number): JoinedNamespace[] {
  const joined: JoinedNamespace[] = [];
  for (const [type, name] of Object.entries(PROC_NS) as [NamespaceType, string][]) {
    const path = `/proc/${pid}/ns/${name}`;
    try {
      if (fs.statSync(path).ino !== fs.statSync(`/proc/self/ns/${name}`).ino) joined.push({ type, path });
    } catch (err) {
      throw syscallErrorFrom('exec', err, `reading the ${type} namespace of the container's init`);
    }
  }
  return joined;
}

/** The credentials the init runs with (/proc/PID/status), which exec keeps when no user is given. */
function initUser(pid: number): Spec['process']['user'] {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const field = (name: string): number[] => (new RegExp(`^${name}:[ \\t]*(.*)$`, 'm').exec(status)?.[1] ?? '').split(/\s+/).filter(Boolean).map(Number);
  return { uid: field('Uid')[0] ?? 0, gid: field('Gid')[0] ?? 0, additionalGids: field('Groups') };
}

function initEnv(pid: number): string[] {
  return fs.readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0').filter(Boolean);
}

function mergeEnv(base: string[], extra: string[]): string[] {
  const merged = new Map<string, string>();
  for (const entry of [...base, ...extra]) {
    const eq = entry.indexOf('=');
    if (eq <= 0) throw new ValidationError('env', `${JSON.stringify(entry)} is not KEY=VALUE`);
    merged.set(entry.slice(0, eq), entry);
  }
  return [...merged.values()];
}

/** The container a process joins: its init's namespaces and its cgroup. */
export interface ExecTarget {
  id: string;
  name: string;
  pid: number;
  cgroup: CgroupDriver;
  namespaces: JoinedNamespace[];
  /** The container's seccomp filter, which its new processes get too. */
  seccomp?: LinuxSeccomp;
  /** Where compiled seccomp programs are kept (PlanOptions.seccompCacheDir). */
  seccompCacheDir?: string;
}

export interface ExecProcess {
  process: Spec['process'];
  stdio: StdioOption | [StdioOption, StdioOption, StdioOption];
  tty?: boolean | TerminalSize;
  dieWithParent: boolean;
  logger?: Logger;
}

/**
 * For a caller that goes away at once (`tsrun-oci exec --detach`): the
 * process is left unreaped, for the subreaper that takes it over (conmon,
 * a shim) to collect its exit status. With `terminal`, the process makes a
 * pty in the container's devpts and sends its master over `consoleFd`.
 * Returns its host pid.
 */
export function execDetached(target: ExecTarget, process: Spec['process'], terminal?: { consoleFd: number; size?: TerminalSize }): number {
  if (execCandidates(process.args[0], process.env).length === 0) throw new ValidationError('args[0]', `${process.args[0]}: no PATH in the environment to look it up in`);
  const plan = buildExecPlan(target.namespaces, process, target.seccomp, { stdio: [0, 1, 2], dieWithParent: false, cgroupJoin: target.cgroup.joinSteps(), terminal, seccompCacheDir: target.seccompCacheDir });
  const spawned = spawnContainer({ process } as Spec, plan);
  fs.closeSync(spawned.pidfd);
  return spawned.pid;
}

/**
 * Clones a process that joins `target`'s cgroup and namespaces and runs
 * the same plan steps as an init; returns once it has exec'd.
 */
export function execProcess(target: ExecTarget, options: ExecProcess): Container {
  const logger = options.logger ?? silentLogger;
  const { process } = options;
  if (execCandidates(process.args[0], process.env).length === 0) throw new ValidationError('args[0]', `${process.args[0]}: no PATH in the environment to look it up in`);
  const stdio = setupStdio(options.tty ? 'inherit' : options.stdio);
  // [runtime end, child end] of the socket the child sends its pty master on.
  const consoleSocket: number[] = [];
  let spawned;
  let terminal: Terminal | undefined;
  try {
    if (options.tty) consoleSocket.push(...loadNative().socketPair());
    const size = typeof options.tty === 'object' ? options.tty : undefined;
    const plan = buildExecPlan(target.namespaces, process, target.seccomp, {
      stdio: stdio.child,
      dieWithParent: options.dieWithParent,
      cgroupJoin: target.cgroup.joinSteps(),
      terminal: options.tty ? { consoleFd: consoleSocket[1], size } : undefined,
      seccompCacheDir: target.seccompCacheDir,
    });
    spawned = spawnContainer({ process } as Spec, plan);
    if (options.tty) {
      fs.closeSync(consoleSocket.pop() as number);
      terminal = Terminal.receive(consoleSocket[0]);
    }
  } catch (err) {
    // Started, but its terminal could not be received: it must not run on.
    if (spawned) killAndReap(spawned);
    closeAll(stdio.parent);
    throw err;
  } finally {
    closeAll(stdio.childEnds);
    closeAll(consoleSocket);
  }
  logger.debug({ id: target.id, pid: spawned.pid, args: process.args, tty: terminal !== undefined }, 'exec started');
  const streams: ContainerStdio = terminal ? { stdin: terminal.stream, stdout: terminal.stream, stderr: null } : {
    stdin: stdio.parent[0] >= 0 ? pipeStream(stdio.parent[0], 'write') : null,
    stdout: stdio.parent[1] >= 0 ? pipeStream(stdio.parent[1], 'read') : null,
    stderr: stdio.parent[2] >= 0 ? pipeStream(stdio.parent[2], 'read') : null,
  };
  try {
    return new Container(target.id, target.name, undefined, spawned, streams, () => undefined, logger, terminal ?? null);
  } catch (err) {
    // Running, but nobody would wait for it: it must not run on.
    killAndReap(spawned);
    destroyStdio(streams);
    throw err;
  }
}

/**
 * Runs a command in a running container (`tsrun exec`): a freshly cloned
 * process joins the container's cgroup and namespaces and runs the same
 * plan steps as its init. Returns once the command has exec'd.
 */
export async function execInContainer(reference: string, options: ExecOptions): Promise<Container> {
  if (!Array.isArray(options.args) || options.args.length === 0 || options.args[0] === '') throw new ValidationError('args', 'a command is required');
  const found = findContainer(reference, options);
  const id = containerId(found);
  checkOperation(containerName(found), ociStatus(found), 'exec');
  const { pid } = runtimeState(found);
  const root = `/proc/${pid}/root`;
  const user = options.user === undefined ? initUser(pid) : resolveUser(root, options.user);
  // As Docker's exec -t: a terminal type when the environment names none.
  const termDefault = options.tty ? ['TERM=xterm'] : [];
  const env = mergeEnv([...termDefault, ...initEnv(pid)], options.env ?? []);
  const cwd = options.cwd ?? (found.kind === 'image' ? found.record.cwd : '/');
  if (!cwd.startsWith('/')) throw new ValidationError('cwd', `${JSON.stringify(cwd)} must be an absolute path`);
  // As Docker's exec: the container's capabilities (a bounding set only for a non-root user), no_new_privs and filter.
  const { capabilities, noNewPrivileges, seccomp } = processPrivileges((found.kind === 'image' ? found.record.hostConfig.privileges : found.state.privileges) ?? {}, user.uid);
  const process: Spec['process'] = { args: [...options.args], env, cwd, user: { uid: user.uid, gid: user.gid, additionalGids: user.additionalGids }, capabilities, noNewPrivileges };
  const target = { id, name: containerName(found), pid, cgroup: containerCgroup(id), namespaces: namespacesOf(pid), seccomp, seccompCacheDir: seccompCacheDirIn(stateDirOf(options)) };
  return execProcess(target, { process, stdio: options.stdio ?? 'pipe', tty: options.tty, dieWithParent: options.dieWithParent ?? true, logger: options.logger });
}

/** One process of a container, as `tsrun top` lists it. */
export interface ContainerProcess {
  pid: number;
  ppid: number;
  uid: number;
  command: string;
}

/** The processes in the container's cgroup (`tsrun top`), by host pid. */
export function containerProcesses(reference: string, location: ContainerLocation = {}): ContainerProcess[] {
  const found = findContainer(reference, location);
  const status = ociStatus(found);
  if (status !== 'running' && status !== 'created') throw new TsrunError(`container ${containerName(found)} is not running`, 'ESTATE');
  const processes: ContainerProcess[] = [];
  for (const pid of containerCgroup(containerId(found)).pids().sort((a, b) => a - b)) {
    try {
      const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const uid = Number(/^Uid:\s*(\d+)/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? -1);
      const cmdline = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean).join(' ');
      processes.push({ pid, ppid: Number(fields[1]), uid, command: cmdline || `[${stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'))}]` });
    } catch {
      // It exited while we looked.
    }
  }
  return processes;
}
