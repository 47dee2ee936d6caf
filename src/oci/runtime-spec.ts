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

export interface Capabilities {
  bounding?: string[];
  effective?: string[];
  inheritable?: string[];
  permitted?: string[];
  ambient?: string[];
}

export interface Rlimit {
  type: string;
  soft: number;
  hard: number;
}

export interface Process {
  terminal?: boolean;
  user: User;
  args: string[];
  env: string[];
  cwd: string;
  noNewPrivileges?: boolean;
  capabilities?: Capabilities;
  rlimits?: Rlimit[];
  oomScoreAdj?: number;
  apparmorProfile?: string;
  selinuxLabel?: string;
  consoleSize?: { height: number; width: number };
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
  /** Checked for shape here; applied by the seccomp module. */
  seccomp?: { defaultAction: string; architectures?: string[]; syscalls?: { names: string[]; action: string }[] };
}
