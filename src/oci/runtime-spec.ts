/**
 * The subset of the OCI runtime spec (config.json, runtime-spec 1.x) that
 * tsrun's runtime consumes. The CLI and library options are turned into
 * this first, so one plan builder serves `tsrun run` and the OCI runtime.
 */
export interface Spec {
  ociVersion: string;
  process: Process;
  root: { path: string; readonly?: boolean };
  hostname?: string;
  domainname?: string;
  mounts: Mount[];
  linux: Linux;
  hooks?: Hooks;
  annotations?: Record<string, string>;
}

/** A program the runtime runs at a point of the lifecycle, with the container's state JSON on its stdin. */
export interface Hook {
  path: string;
  args?: string[];
  env?: string[];
  /** Seconds. */
  timeout?: number;
}

export interface Hooks {
  /** Deprecated by the spec, still run (after createRuntime's point, in the runtime namespace). */
  prestart?: Hook[];
  createRuntime?: Hook[];
  createContainer?: Hook[];
  startContainer?: Hook[];
  poststart?: Hook[];
  poststop?: Hook[];
}

export interface Process {
  terminal?: boolean;
  user: User;
  args: string[];
  env: string[];
  cwd: string;
  noNewPrivileges?: boolean;
  /** Capability names with the CAP_ prefix ("CAP_CHOWN"), per set. */
  capabilities?: LinuxCapabilities;
  rlimits?: POSIXRlimit[];
  oomScoreAdj?: number;
  apparmorProfile?: string;
  selinuxLabel?: string;
  consoleSize?: { height: number; width: number };
}

export interface LinuxCapabilities {
  bounding?: string[];
  effective?: string[];
  inheritable?: string[];
  permitted?: string[];
  ambient?: string[];
}

export interface POSIXRlimit {
  /** RLIMIT_NOFILE, RLIMIT_NPROC, ... */
  type: string;
  soft: number;
  hard: number;
}

export type SeccompAction =
  | 'SCMP_ACT_KILL'
  | 'SCMP_ACT_KILL_PROCESS'
  | 'SCMP_ACT_KILL_THREAD'
  | 'SCMP_ACT_TRAP'
  | 'SCMP_ACT_ERRNO'
  | 'SCMP_ACT_TRACE'
  | 'SCMP_ACT_ALLOW'
  | 'SCMP_ACT_LOG'
  | 'SCMP_ACT_NOTIFY';

export type SeccompOperator =
  | 'SCMP_CMP_NE'
  | 'SCMP_CMP_LT'
  | 'SCMP_CMP_LE'
  | 'SCMP_CMP_EQ'
  | 'SCMP_CMP_GE'
  | 'SCMP_CMP_GT'
  | 'SCMP_CMP_MASKED_EQ';

export interface LinuxSeccompArg {
  index: number;
  value: number;
  valueTwo?: number;
  op: SeccompOperator;
}

export interface LinuxSyscall {
  names: string[];
  action: SeccompAction;
  errnoRet?: number;
  args?: LinuxSeccompArg[];
}

/** `linux.seccomp`: rules are already resolved for the container (no includes/excludes). */
export interface LinuxSeccomp {
  defaultAction: SeccompAction;
  defaultErrnoRet?: number;
  /** SCMP_ARCH_X86_64, SCMP_ARCH_AARCH64, ... */
  architectures?: string[];
  /** SECCOMP_FILTER_FLAG_LOG, SECCOMP_FILTER_FLAG_SPEC_ALLOW, SECCOMP_FILTER_FLAG_TSYNC */
  flags?: string[];
  syscalls?: LinuxSyscall[];
}

export interface User {
  uid: number;
  gid: number;
  umask?: number;
  additionalGids?: number[];
}

export interface Mount {
  destination: string;
  type?: string;
  source?: string;
  options?: string[];
}

export type NamespaceType = 'pid' | 'network' | 'mount' | 'ipc' | 'uts' | 'user' | 'cgroup';

export interface Namespace {
  type: NamespaceType;
  /** Join this existing namespace instead of creating one. */
  path?: string;
}

export interface IdMapping {
  containerID: number;
  hostID: number;
  size: number;
}

export interface Device {
  path: string;
  type: 'c' | 'b' | 'u' | 'p';
  major: number;
  minor: number;
  fileMode?: number;
  uid?: number;
  gid?: number;
}

/**
 * `linux.resources`: the container's cgroup limits, with the spec's value
 * conventions: 0 or absent is "not set", -1 is "unlimited" for memory,
 * swap, reservation, quota and pids. `memory.swap` is memory and swap
 * together, as cgroup v1's memsw; a v2 driver converts it.
 */
export interface LinuxResources {
  memory?: {
    /** Bytes (memory.limit_in_bytes, memory.max). */
    limit?: number;
    /** Soft limit in bytes (memory.soft_limit_in_bytes, memory.low). */
    reservation?: number;
    /** Memory plus swap, bytes (memory.memsw.limit_in_bytes; v2: memory.swap.max = swap - limit). */
    swap?: number;
  };
  cpu?: {
    /** Relative weight, 2-262144, default 1024 (cpu.shares; v2: cpu.weight). */
    shares?: number;
    /** Microseconds of CPU time per period (cpu.cfs_quota_us; v2: cpu.max). */
    quota?: number;
    /** Microseconds, 1000-1000000 (cpu.cfs_period_us; v2: cpu.max). */
    period?: number;
    /** A cpu list such as "0-2,4" (cpuset.cpus). */
    cpus?: string;
    /** A memory node list (cpuset.mems). */
    mems?: string;
  };
  pids?: { limit?: number };
  blockIO?: { weight?: number };
  /** The device cgroup's rules, in order (v1 devices.allow/devices.deny). */
  devices?: LinuxDeviceCgroup[];
}

export interface LinuxDeviceCgroup {
  allow: boolean;
  /** a (all), c or b; default a. */
  type?: 'a' | 'c' | 'b';
  /** Absent: any (*). */
  major?: number;
  minor?: number;
  /** Some of r, w, m; default rwm. */
  access?: string;
}

export interface Linux {
  namespaces: Namespace[];
  resources?: LinuxResources;
  uidMappings?: IdMapping[];
  gidMappings?: IdMapping[];
  devices?: Device[];
  rootfsPropagation?: string;
  maskedPaths?: string[];
  readonlyPaths?: string[];
  /** `/parent/name` under each hierarchy (or systemd's `slice:prefix:name`). */
  cgroupsPath?: string;
  sysctl?: Record<string, string>;
  seccomp?: LinuxSeccomp;
}
