import { capabilitySteps } from '../linux/capabilities';
import { maskedPathSteps } from '../linux/masked-paths';
import { rlimitSteps } from '../linux/rlimits';
import { seccompStep } from '../linux/seccomp';
import { CLONE_NEW, createsNamespace, cgroupNamespaceSteps, cloneFlags, joinNamespaceSteps, namespaceSetupSteps } from '../linux/namespaces';
import { TerminalSize, terminalSteps } from '../linux/pty';
import { rootfsSteps } from '../linux/rootfs';
import { joinSpareStep } from '../linux/spare-netns';
import type { NamespaceType, Spec } from '../oci/runtime-spec';
import type { PlanStep } from './plan';

const PR_SET_PDEATHSIG = 1;
const PR_SET_DUMPABLE = 4;
const PR_SET_NO_NEW_PRIVS = 38;
const SIGKILL = 9;
const DEFAULT_UMASK = 0o022;

/** Messages on the sync channel, child -> parent (see the diagram below). */
export const SyncMessage = {
  UserMapRequest: 1,
  UserMapDone: 2,
  NetworkRequest: 3,
  NetworkDone: 4,
  /** The init is set up and waits on its exec fifo: the container is created. */
  Created: 5,
} as const;

const O_WRONLY = 1;

export interface ContainerPlan {
  steps: PlanStep[];
  cloneFlags: number;
  /** "fork" when the parent must act while the child waits (user namespaces). */
  mode: 'vfork' | 'fork';
}

export interface PlanOptions {
  /** Source fds for the container's 0, 1, 2; -1 keeps the inherited fd. */
  stdio: [number, number, number];
  /** Kill the container if the process that started it dies. */
  dieWithParent: boolean;
  /** pivot_root, or MS_MOVE + chroot where pivot_root cannot work. */
  pivot: boolean;
  /** The steps that move the child into its cgroup (CgroupDriver.joinSteps); the plan runs them first. */
  cgroupJoin: PlanStep[];
  /** Stop after joining the cgroup until the parent has set up the network namespace (CNI ADD). */
  networkSync?: boolean;
  /** A terminal for the process: the master goes back on `consoleFd`, and fds 0-2 are its slave. */
  terminal?: { consoleFd: number; size?: TerminalSize };
  /**
   * An fd (inherited by the child, opened O_PATH) of the container's exec
   * fifo: the init says Created on the sync channel, then blocks opening
   * the fifo for writing until `start` opens it for reading.
   */
  execFifoFd?: number;
  /** Steps run once the namespaces and the root are set up, before the exec fifo (sysctl, rlimits). */
  setupSteps?: PlanStep[];
  /** Where compiled seccomp programs are kept across processes (a directory of the runtime state). */
  seccompCacheDir?: string;
  /** An fd of a network namespace made ahead (spare-netns.ts), joined in place of a cloned one. */
  spareNetworkNamespace?: number | null;
}

/**
 * Where execve looks for args[0]: the argument itself if it has a slash,
 * else each absolute directory of the container's PATH, in order (the child
 * tries them like execvp, with no allocation).
 */
export function execCandidates(command: string, env: readonly string[]): string[] {
  if (command.includes('/')) return [command];
  const pathVar = [...env].reverse().find((e) => e.startsWith('PATH='));
  const dirs = (pathVar ? pathVar.slice(5) : '').split(':').filter((d) => d.startsWith('/'));
  return dirs.map((d) => `${d.replace(/\/+$/, '')}/${command}`);
}

/**
 * The whole sequence between clone and execve, in one place.
 *
 *   parent                           child
 *   clone(flags) ------------------> not dumpable (no /proc/PID/exe for the container)
 *                                     join the cgroup: write 0 to each cgroup.procs
 *                                     [CNI network only]
 *                <-- NetworkRequest
 *   bind its netns, CNI ADD,
 *   write hosts, resolv.conf
 *                NetworkDone ------>
 *                                     [user namespace only]
 *                <-- UserMapRequest
 *   write uid_map, gid_map
 *                UserMapDone ------>  setresuid(0): root in the namespace
 *                                     join namespaces by path
 *                                     unshare(CLONE_NEWCGROUP)
 *                                     mounts, devices, pivot_root
 *                                     sysctl, read-only and masked paths
 *                                     hostname, loopback
 *                                     [terminal] setsid, open pty, send
 *                <-- pty master       the master, TIOCSCTTY
 *                <-- Created          [create/start only]
 *   (start: open the fifo) ------->  open the exec fifo for writing
 *                                     stdio, close every other fd, rlimits
 *                                     bounding set, groups, gid, uid
 *                                     cwd (inside the root), umask
 *                                     capabilities, no_new_privs, seccomp
 *                                     execve  (closes the error channel)
 */
export function buildContainerPlan(spec: Spec, options: PlanOptions): ContainerPlan {
  const userns = createsNamespace(spec, 'user');
  // First: the cgroup files belong to host root, out of reach once the
  // child is root of a user namespace only; and the cgroup namespace,
  // unshared below, takes the cgroup the child is in as its root.
  // Until execve the child is a copy of Node: a container process that
  // could open /proc/PID/exe would reach the host's node binary
  // (CVE-2019-5736). Not dumpable, /proc/PID is root's and ptrace-guarded.
  const spareNet = options.spareNetworkNamespace ?? null;
  const steps: PlanStep[] = [
    { op: 'Prctl', args: [PR_SET_DUMPABLE, 0, 0], phase: 'process', detail: 'PR_SET_DUMPABLE' },
    ...options.cgroupJoin,
    // Before the network sync point: CNI configures the namespace the child is in.
    ...(spareNet === null ? [] : [joinSpareStep(spareNet)]),
  ];

  if (options.networkSync) {
    steps.push(
      { op: 'SyncSignal', args: [SyncMessage.NetworkRequest], phase: 'network' },
      { op: 'SyncWait', phase: 'network', detail: 'waiting for the network (CNI ADD)' },
    );
  }
  if (userns) {
    steps.push(
      { op: 'SyncSignal', args: [SyncMessage.UserMapRequest], phase: 'user namespace' },
      { op: 'SyncWait', phase: 'user namespace', detail: 'waiting for the uid/gid maps' },
      { op: 'Setresgid', args: [0, 0, 0], phase: 'user namespace', detail: 'gid 0 must be mapped' },
      { op: 'Setresuid', args: [0, 0, 0], phase: 'user namespace', detail: 'uid 0 must be mapped' },
    );
  }
  steps.push(...joinNamespaceSteps(spec));
  steps.push(...cgroupNamespaceSteps(spec));
  const fifoEarly = options.execFifoFd !== undefined && !(spec.mounts ?? []).some((m) => m.destination === '/proc');
  if (fifoEarly) steps.push(...execFifoSteps(options.execFifoFd as number));
  if (createsNamespace(spec, 'mount')) {
    steps.push(...rootfsSteps(spec, { pivot: options.pivot, inUserNamespace: userns }));
  }
  // sysctl writes go to /proc/sys before it is made read-only, as runc's.
  steps.push(...(options.setupSteps ?? []));
  if (createsNamespace(spec, 'mount')) steps.push(...maskedPathSteps(spec));
  steps.push(...namespaceSetupSteps(spec, { loopbackUp: spareNet === null }));
  // The terminal is there before `start`: an engine (conmon, a shim) waits
  // for its master on the console socket to say the container is created.
  if (options.terminal) steps.push(...terminalSteps(options.terminal.consoleFd, options.terminal.size, spec.process.user.uid));
  if (options.execFifoFd !== undefined && !fifoEarly) steps.push(...execFifoSteps(options.execFifoFd));
  steps.push(...processSteps(spec, { ...options, terminal: undefined }));
  const flags = spareNet === null ? cloneFlags(spec) : cloneFlags(spec) & ~CLONE_NEW.network;
  return { steps, cloneFlags: flags, mode: userns || options.networkSync || options.execFifoFd !== undefined ? 'fork' : 'vfork' };
}

/**
 * The fifo is reopened through /proc/self/fd while the init is still root:
 * a later uid change makes /proc/self/fd unreadable to it. A container
 * without a /proc mount waits before its root changes, while it still
 * sees the host's /proc.
 */
function execFifoSteps(fd: number): PlanStep[] {
  const phase = 'exec fifo';
  return [
    { op: 'SyncSignal', args: [SyncMessage.Created], phase },
    { op: 'WriteFile', strs: [`/proc/self/fd/${fd}`, '0'], args: [O_WRONLY], phase, detail: 'waiting for start' },
  ];
}

/** A namespace of a running container, by its /proc path, to setns into. */
export interface JoinedNamespace {
  type: NamespaceType;
  path: string;
}

/**
 * The plan of `exec`: join the container's cgroup and namespaces (as a
 * spec's namespaces with paths are joined), then the same process steps
 * as its init.
 */
export function buildExecPlan(
  namespaces: readonly JoinedNamespace[],
  process: Spec['process'],
  seccomp: Spec['linux']['seccomp'],
  options: Omit<PlanOptions, 'pivot' | 'execFifoFd' | 'networkSync'>,
): ContainerPlan {
  const joined = { linux: { namespaces: namespaces.map((ns) => ({ type: ns.type, path: ns.path })) } } as Spec;
  const steps: PlanStep[] = [
    // runc's CVE-2019-5736 came in through exec: the same guard as the init's.
    { op: 'Prctl', args: [PR_SET_DUMPABLE, 0, 0], phase: 'process', detail: 'PR_SET_DUMPABLE' },
    ...options.cgroupJoin,
    ...joinNamespaceSteps(joined),
    ...processSteps({ process, linux: { seccomp } }, options),
  ];
  return { steps, cloneFlags: 0, mode: 'vfork' };
}

function processSteps(spec: { process: Spec['process']; linux: Pick<Spec['linux'], 'seccomp'> }, options: Pick<PlanOptions, 'stdio' | 'dieWithParent' | 'terminal' | 'seccompCacheDir'>): PlanStep[] {
  const { user, cwd, args, env } = spec.process;
  const phase = 'process';
  const setUser: PlanStep[] = [
    { op: 'Setgroups', lists: [(user.additionalGids ?? []).map(String)], phase, detail: 'supplementary groups' },
    { op: 'Setresgid', args: [user.gid, user.gid, user.gid], phase, target: `gid ${user.gid}` },
    { op: 'Setresuid', args: [user.uid, user.uid, user.uid], phase, target: `uid ${user.uid}` },
  ];
  const steps: PlanStep[] = [
    // Before stdio (the pty's slave becomes 0, 1 and 2), the closing of the
    // console socket with the other fds, and the uid change (it is opened
    // as the container's root).
    ...(options.terminal ? terminalSteps(options.terminal.consoleFd, options.terminal.size, user.uid) : []),
    { op: 'Stdio', args: options.stdio, phase, detail: 'stdio' },
    // Nothing of the runtime's may reach the container, nor serve as a way
    // out of the root for the chdir below (CVE-2024-21626).
    { op: 'CloseFrom', args: [3], phase, detail: 'close inherited fds' },
  ];
  steps.push(...rlimitSteps(spec.process.rlimits));
  // Loading a filter takes CAP_SYS_ADMIN or no_new_privs: without the
  // latter it goes in before the capabilities are dropped (so the steps
  // after it must be allowed by the profile, as runc does); with it, last.
  const filter = spec.linux.seccomp ? seccompStep(spec.linux.seccomp, options.seccompCacheDir) : undefined;
  const nnp = spec.process.noNewPrivileges ?? false;
  if (filter && !nnp) steps.push(filter);
  steps.push(...(spec.process.capabilities ? capabilitySteps(spec.process.capabilities, setUser) : setUser));
  // After the uid change, which clears the parent-death signal.
  if (options.dieWithParent) steps.push({ op: 'Prctl', args: [PR_SET_PDEATHSIG, SIGKILL, 0], phase, detail: 'PR_SET_PDEATHSIG' });
  steps.push(
    { op: 'Chdir', strs: [cwd], phase, target: cwd, detail: 'working directory' },
    { op: 'Umask', args: [user.umask ?? DEFAULT_UMASK], phase },
  );
  if (nnp) steps.push({ op: 'Prctl', args: [PR_SET_NO_NEW_PRIVS, 1, 0], phase, detail: 'PR_SET_NO_NEW_PRIVS' });
  if (filter && nnp) steps.push(filter);
  steps.push({
    op: 'Exec',
    lists: [execCandidates(args[0], env), args, env],
    phase,
    target: args[0],
    detail: args[0].includes('/') ? undefined : 'executable file not found in $PATH',
  });
  return steps;
}
