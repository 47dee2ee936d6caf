import { SyscallError } from '../../errors';
import type { PlanStep } from '../../runtime/plan';
import type { CgroupOps } from './files';
import type { CgroupResources } from './resources';

/** Names the parent cgroup for containers that ask for none, as dockerd's `cgroup-parent` setting does. */
export const CGROUP_PARENT_ENV = 'TSRUN_CGROUP_PARENT';

/** Where tsrun puts its containers' cgroups, under each hierarchy's root: "tsrun", or $TSRUN_CGROUP_PARENT. */
export function defaultCgroupParent(): string {
  return process.env[CGROUP_PARENT_ENV] || 'tsrun';
}

/** How long destroy() keeps killing and retrying rmdir before it gives up. */
export const DEFAULT_DESTROY_TIMEOUT_MS = 5000;

/** What `docker stats` shows, read from the cgroup's own counters. */
export interface CgroupStats {
  cpu: {
    /** Total CPU time of the cgroup's processes, nanoseconds. */
    usageNs: number;
    userNs: number;
    systemNs: number;
    /** CFS bandwidth: periods that had a quota, periods throttled, and time throttled. */
    periods: number;
    throttledPeriods: number;
    throttledNs: number;
  };
  memory: {
    /** Bytes charged to the cgroup, page cache included (memory.usage_in_bytes, memory.current). */
    usage: number;
    /** The limit in bytes, or null when unlimited. */
    limit: number | null;
    /** Highest usage seen (v1 max_usage_in_bytes, v2 memory.peak), or null where the kernel has none. */
    maxUsage: number | null;
    /** Inactive page cache, which the kernel drops first under pressure. */
    inactiveFile: number;
    /** usage - inactiveFile: what `docker stats` shows as MEM USAGE. */
    workingSet: number;
  };
  pids: { current: number; limit: number | null };
  blockIO: { readBytes: number; writeBytes: number };
}

/** The memory controller's record of limit hits and OOM kills. */
export interface MemoryEvents {
  /** Processes the OOM killer killed in the cgroup; null where the kernel does not count them (v1 before 4.13). */
  oomKills: number | null;
  /** Times the cgroup ran out of memory (v2 "oom"); null on v1, which keeps no count. */
  ooms: number | null;
  /** Times usage hit the limit (v1 memory.failcnt, v2 "max"); reclaim often resolves these without a kill. */
  limitHits: number;
}

export interface DestroyOptions {
  /** Default 5000 ms; then rmdir's EBUSY is thrown with the pids still inside. */
  timeoutMs?: number;
}

export interface DriverOptions {
  /** The cgroup the container's goes under, relative to each hierarchy's root (default "tsrun"). */
  parent?: string;
  /** Replaced in tests of fake trees. */
  ops?: Partial<CgroupOps>;
}

/**
 * One container's cgroup, on every hierarchy the host has: one directory
 * under each cgroup v1 controller's hierarchy (V1Driver) or one in the
 * cgroup2 hierarchy (V2Driver). Limits use the OCI shape (CgroupResources);
 * each driver converts them to its files.
 *
 * @example
 * const cg = createCgroupDriver(id);
 * for (const w of cg.create(resources)) logger.warn({ id }, w);
 * const plan = [...cg.joinSteps(), ...otherSteps]; // the child joins before it execs
 * // ... the container runs ...
 * const oomKilled = cg.oomKilled();
 * await cg.destroy();
 */
export interface CgroupDriver {
  readonly version: 1 | 2;
  readonly id: string;
  /** Every directory that makes up the container's cgroup, one per hierarchy. */
  readonly paths: readonly string[];

  /** Whether the cgroup exists (in at least one hierarchy). */
  exists(): boolean;
  /**
   * Makes the cgroup (and the parent, enabling what it needs on the way)
   * and applies the limits. Returns warnings for limits the kernel cannot
   * apply (no swap accounting, no blkio weight). Removes what it made if it
   * fails. An existing cgroup is reused.
   */
  create(resources?: CgroupResources): string[];
  /** Changes limits of a live cgroup; only the fields given are written. Returns warnings as create does. */
  update(resources: CgroupResources): string[];
  /** The limits as the cgroup files say now, in OCI terms (-1 unlimited). */
  limits(): CgroupResources;

  /**
   * Plan steps that move the child into the cgroup: a write of "0" (the
   * writing process itself) to each cgroup.procs. They must run in the
   * child before it unshares its cgroup namespace, and before it changes
   * its credentials in a user namespace (the files belong to host root).
   */
  joinSteps(): PlanStep[];
  /** Moves a process from the parent side (for a child that cannot join itself). */
  addProcess(pid: number): void;
  /**
   * v2: an O_RDONLY|O_DIRECTORY fd of the cgroup for clone3's
   * CLONE_INTO_CGROUP (the caller closes it after the clone); null on v1,
   * where a child cannot be cloned into a cgroup.
   */
  openCgroupFd(): number | null;

  /** Pids in the cgroup and its sub-cgroups. */
  pids(): number[];
  stats(): CgroupStats;
  memoryEvents(): MemoryEvents;
  /** Whether the OOM killer killed a process of the container. */
  oomKilled(): boolean;

  /** Freezes every process (docker pause); resolves once the kernel says frozen, or after timeoutMs. */
  freeze(timeoutMs?: number): Promise<boolean>;
  thaw(): void;
  /** SIGKILLs every process in the cgroup (v2 cgroup.kill where there is one, else freeze + kill + thaw). */
  killAll(): Promise<void>;
  /**
   * Kills what is left and removes the cgroup in every hierarchy, retrying
   * rmdir's EBUSY until the processes are gone. Does nothing if it is gone.
   */
  destroy(options?: DestroyOptions): Promise<void>;
}

/** rmdir each directory, deepest first; returns those still busy (EBUSY) and throws on other errors. */
export function removeDirs(dirs: readonly string[], ops: CgroupOps): { dir: string; err: NodeJS.ErrnoException }[] {
  const busy: { dir: string; err: NodeJS.ErrnoException }[] = [];
  for (const dir of dirs) {
    try {
      ops.rmdir(dir);
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      if (e.code === 'ENOENT') continue;
      if (e.code === 'EBUSY' || e.code === 'ENOTEMPTY') {
        busy.push({ dir, err: e });
        continue;
      }
      throw err;
    }
  }
  return busy;
}

/**
 * The removal loop both drivers share: kill what is inside, rmdir every
 * directory deepest first, and on EBUSY (processes not yet gone: a killed
 * process leaves its cgroup only when it has exited) wait and go again,
 * up to the timeout.
 */
export async function killAndRemove(
  cgroup: Pick<CgroupDriver, 'killAll' | 'pids' | 'paths'>,
  dirs: () => string[],
  ops: CgroupOps,
  options: DestroyOptions = {},
): Promise<void> {
  // The usual case, a container whose processes are all gone and that made
  // no cgroups of its own: one rmdir per hierarchy, without reading
  // cgroup.procs and listing the directories of each first.
  if (removeDirs(cgroup.paths, ops).length === 0) return;
  const deadline = ops.now() + (options.timeoutMs ?? DEFAULT_DESTROY_TIMEOUT_MS);
  let delay = 2;
  for (;;) {
    const present = dirs();
    if (present.length === 0) return;
    if (cgroup.pids().length > 0) await cgroup.killAll();
    const busy = removeDirs(present, ops);
    if (busy.length === 0) return;
    if (ops.now() >= deadline) {
      const { dir, err } = busy[0];
      const pids = cgroup.pids();
      throw new SyscallError('cgroups', 'rmdir', err.errno ?? 16, dir, pids.length > 0 ? `processes still inside: ${pids.join(', ')}` : 'the cgroup stays busy');
    }
    await ops.sleep(delay);
    delay = Math.min(delay * 2, 100);
  }
}
