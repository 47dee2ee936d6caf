import fs = require('node:fs');
import path = require('node:path');
import { SyscallError, TsrunError, ValidationError } from '../../errors';
import type { PlanStep } from '../../runtime/plan';
import { parseLimit } from './convert';
import {
  CgroupDriver,
  CgroupStats,
  defaultCgroupParent,
  DestroyOptions,
  DriverOptions,
  MemoryEvents,
  killAndRemove,
} from './driver';
import {
  CgroupOps,
  cgroupFile,
  checkCgroupNames,
  descendants,
  fileExists,
  joinStep,
  makeWithRetry,
  mkdirCgroup,
  mkdirNewCgroup,
  parseFlatKeyed,
  readCgroupFile,
  readNumber,
  readOptional,
  readProcs,
  withOps,
  writeCgroupFile,
} from './files';
import { V1_CONTROLLERS, V1Controller } from './host';
import type { CgroupResources } from './resources';
import type { LinuxDeviceCgroup } from '../../oci/runtime-spec';
import { parseBlkioServiceBytes, waitFor } from './stats';

export interface V1DriverOptions extends DriverOptions {
  /**
   * Where each controller's hierarchy is mounted (from detectCgroupHost).
   * Default: `<root>/<controller>` for each that exists; co-mounted
   * controllers (cpu,cpuacct) share one directory and get one cgroup.
   */
  mounts?: Partial<Record<V1Controller, string>>;
  /**
   * Hybrid hosts: the cgroup2 mount. The container gets a cgroup there too
   * (as runc does); it has no controllers but gives cgroup.kill,
   * cgroup.freeze and a reliable "populated" for removal.
   */
  unifiedMount?: string | null;
}

interface Hierarchy {
  mount: string;
  controllers: V1Controller[];
  /** The container's cgroup in this hierarchy. */
  dir: string;
}

const NS_PER_TICK = 10_000_000;

/** "c 1:3 rwm", as devices.allow and devices.deny take a rule. */
export function deviceRule(rule: LinuxDeviceCgroup): string {
  const id = (n: number | undefined): string => (n === undefined || n < 0 ? '*' : String(n));
  const type = rule.type ?? 'a';
  return type === 'a' ? 'a' : `${type} ${id(rule.major)}:${id(rule.minor)} ${rule.access ?? 'rwm'}`;
} // USER_HZ is 100 on every Linux ABI

/**
 * The cgroup v1 driver: a `<parent>/<id>` cgroup under each controller's
 * hierarchy (cpu, cpuacct, cpuset, memory, pids, blkio, freezer).
 */
export class V1Driver implements CgroupDriver {
  readonly version = 1 as const;
  private readonly _hierarchies: Hierarchy[];
  private readonly _unifiedMount: string | null;
  private _unifiedDir: string | null;
  private readonly _parent: string;
  private readonly _ops: CgroupOps;

  constructor(
    readonly root: string,
    readonly id: string,
    options: V1DriverOptions = {},
  ) {
    this._parent = options.parent ?? defaultCgroupParent();
    checkCgroupNames(id, this._parent);
    this._ops = withOps(options.ops);
    const byMount = new Map<string, V1Controller[]>();
    for (const controller of V1_CONTROLLERS) {
      const mount = options.mounts ? options.mounts[controller] : defaultMount(root, controller);
      if (!mount) continue;
      byMount.set(mount, [...(byMount.get(mount) ?? []), controller]);
    }
    this._hierarchies = [...byMount].map(([mount, controllers]) => ({ mount, controllers, dir: path.join(mount, this._parent, id) }));
    this._unifiedMount = options.unifiedMount ?? null;
    this._unifiedDir = this._unifiedMount ? path.join(this._unifiedMount, this._parent, id) : null;
  }

  get paths(): readonly string[] {
    return [...this._hierarchies.map((h) => h.dir), ...(this._unifiedDir ? [this._unifiedDir] : [])];
  }

  /** The container's cgroup directory for a controller, or null when the host does not mount it. */
  dirOf(controller: V1Controller): string | null {
    return this._hierarchies.find((h) => h.controllers.includes(controller))?.dir ?? null;
  }

  exists(): boolean {
    return this.paths.some((dir) => fileExists(dir));
  }

  create(resources: CgroupResources = {}): string[] {
    const made: string[] = [];
    try {
      for (const h of this._hierarchies) makeWithRetry(() => this._makePath(h.mount, h.dir, h.controllers.includes('cpuset'), made));
      const warnings: string[] = [];
      if (this._unifiedMount) {
        try {
          makeWithRetry(() => this._makePath(this._unifiedMount as string, this._unifiedDir as string, false, made));
        } catch (err) {
          // Only a help for removal; the limits do not depend on it.
          if (!(err instanceof SyscallError && ['EROFS', 'EACCES', 'EPERM'].includes(err.code))) throw err;
          warnings.push(`cgroups: no cgroup in the cgroup2 hierarchy ${this._unifiedMount} (${err.code}); removal falls back to the freezer`);
          this._unifiedDir = null;
        }
      }
      return [...warnings, ...this.update(resources)];
    } catch (err) {
      for (const dir of made.reverse()) {
        try {
          this._ops.rmdir(dir);
        } catch {
          // Another container's cgroup may be under the parent by now.
        }
      }
      throw err;
    }
  }

  update(resources: CgroupResources): string[] {
    const warnings: string[] = [];
    const { memory, cpu, pids, blockIO, devices } = resources;
    if (memory) this._setMemory(memory, warnings);
    if (cpu) {
      if (cpu.shares) writeCgroupFile(cgroupFile(this._require('cpu', 'cpu shares'), 'cpu.shares'), String(cpu.shares));
      this._setCpuBandwidth(cpu.quota, cpu.period);
      if (cpu.cpus !== undefined) writeCgroupFile(cgroupFile(this._require('cpuset', 'a cpuset'), 'cpuset.cpus'), cpu.cpus);
      if (cpu.mems !== undefined) writeCgroupFile(cgroupFile(this._require('cpuset', 'a cpuset'), 'cpuset.mems'), cpu.mems);
    }
    if (pids?.limit) {
      writeCgroupFile(cgroupFile(this._require('pids', 'a pids limit'), 'pids.max'), pids.limit < 0 ? 'max' : String(pids.limit));
    }
    if (devices && devices.length > 0) {
      const dir = this._require('devices', 'device rules');
      // Consecutive rules of one kind share an open: the order of allows and denies is kept.
      for (let i = 0; i < devices.length; ) {
        const allow = devices[i].allow;
        const run: string[] = [];
        for (; i < devices.length && devices[i].allow === allow; i++) run.push(deviceRule(devices[i]));
        writeCgroupFile(cgroupFile(dir, allow ? 'devices.allow' : 'devices.deny'), run);
      }
    }
    if (blockIO?.weight) {
      const dir = this.dirOf('blkio');
      // BFQ's file where that scheduler is loaded; CFQ's on kernels before 5.0.
      const file = dir && ['blkio.bfq.weight', 'blkio.weight'].map((f) => cgroupFile(dir, f)).find(fileExists);
      if (file) writeCgroupFile(file, String(blockIO.weight));
      else warnings.push('blkio weight: this kernel has no blkio.weight or blkio.bfq.weight (no BFQ I/O scheduler); the weight is not applied');
    }
    return warnings;
  }

  limits(): CgroupResources {
    const result: CgroupResources = {};
    const memory = this.dirOf('memory');
    if (memory && fileExists(memory)) {
      const swap = readOptional(cgroupFile(memory, 'memory.memsw.limit_in_bytes'));
      result.memory = {
        limit: parseLimit(readCgroupFile(cgroupFile(memory, 'memory.limit_in_bytes'))),
        reservation: parseLimit(readCgroupFile(cgroupFile(memory, 'memory.soft_limit_in_bytes'))),
        ...(swap === null ? {} : { swap: parseLimit(swap) }),
      };
    }
    const cpu = this.dirOf('cpu');
    const cpuset = this.dirOf('cpuset');
    result.cpu = {};
    if (cpu && fileExists(cpu)) {
      Object.assign(result.cpu, {
        shares: readNumber(cgroupFile(cpu, 'cpu.shares')),
        quota: readNumber(cgroupFile(cpu, 'cpu.cfs_quota_us'), -1),
        period: readNumber(cgroupFile(cpu, 'cpu.cfs_period_us')),
      });
    }
    if (cpuset && fileExists(cpuset)) {
      result.cpu.cpus = readCgroupFile(cgroupFile(cpuset, 'cpuset.cpus')).trim();
      result.cpu.mems = readCgroupFile(cgroupFile(cpuset, 'cpuset.mems')).trim();
    }
    const pids = this.dirOf('pids');
    if (pids && fileExists(pids)) result.pids = { limit: parseLimit(readCgroupFile(cgroupFile(pids, 'pids.max'))) };
    const blkio = this.dirOf('blkio');
    const weight = blkio && (readOptional(cgroupFile(blkio, 'blkio.bfq.weight')) ?? readOptional(cgroupFile(blkio, 'blkio.weight')));
    if (weight) result.blockIO = { weight: Number(/(\d+)/.exec(weight)?.[1] ?? 0) };
    return result;
  }

  /**
   * "0" written to a v1 `tasks` file moves the writing thread alone, which
   * the kernel does without taking its global threadgroup lock; a write to
   * cgroup.procs takes it, and waits for an RCU grace period (5-20 ms on
   * the 6.18 host this was measured on). The child is single-threaded: its
   * thread is the whole process. cgroup2 has no such file for domain cgroups.
   */
  joinSteps(): PlanStep[] {
    return [...this._hierarchies.map((h) => joinStep(h.dir, 'tasks')), ...(this._unifiedDir ? [joinStep(this._unifiedDir, 'cgroup.procs')] : [])];
  }

  addProcess(pid: number): void {
    for (const dir of this.paths) writeCgroupFile(cgroupFile(dir, 'cgroup.procs'), String(pid), `moving pid ${pid} into the cgroup`);
  }

  openCgroupFd(): number | null {
    return null;
  }

  pids(): number[] {
    const all = new Set<number>();
    for (const dir of this.paths) for (const d of [dir, ...descendants(dir)]) for (const pid of readProcs(d)) all.add(pid);
    return [...all].sort((a, b) => a - b);
  }

  stats(): CgroupStats {
    const cpuacct = this.dirOf('cpuacct');
    const cpu = this.dirOf('cpu');
    const memory = this.dirOf('memory');
    const pids = this.dirOf('pids');
    const blkio = this.dirOf('blkio');

    const usageNs = cpuacct ? readNumber(cgroupFile(cpuacct, 'cpuacct.usage')) : 0;
    const ticks = parseFlatKeyed(cpuacct ? readOptional(cgroupFile(cpuacct, 'cpuacct.stat')) : null);
    const userNs = cpuacct ? readNumber(cgroupFile(cpuacct, 'cpuacct.usage_user'), (ticks.get('user') ?? 0) * NS_PER_TICK) : 0;
    const systemNs = cpuacct ? readNumber(cgroupFile(cpuacct, 'cpuacct.usage_sys'), (ticks.get('system') ?? 0) * NS_PER_TICK) : 0;
    const cpuStat = parseFlatKeyed(cpu ? readOptional(cgroupFile(cpu, 'cpu.stat')) : null);

    const usage = memory ? readNumber(cgroupFile(memory, 'memory.usage_in_bytes')) : 0;
    const limitText = memory ? readOptional(cgroupFile(memory, 'memory.limit_in_bytes')) : null;
    const limit = limitText === null ? -1 : parseLimit(limitText);
    const memStat = parseFlatKeyed(memory ? readOptional(cgroupFile(memory, 'memory.stat')) : null);
    const inactiveFile = memStat.get('total_inactive_file') ?? memStat.get('inactive_file') ?? 0;
    const maxUsage = memory ? readNumber(cgroupFile(memory, 'memory.max_usage_in_bytes'), -1) : -1;

    const pidsMax = pids ? readOptional(cgroupFile(pids, 'pids.max')) : null;
    const pidsLimit = pidsMax === null ? -1 : parseLimit(pidsMax);

    let blockIO = { readBytes: 0, writeBytes: 0 };
    if (blkio) {
      // The throttle counters see every bio on current kernels; the others
      // only what went through CFQ or BFQ.
      for (const file of ['blkio.throttle.io_service_bytes_recursive', 'blkio.io_service_bytes_recursive', 'blkio.bfq.io_service_bytes_recursive']) {
        const parsed = parseBlkioServiceBytes(readOptional(cgroupFile(blkio, file)));
        if (parsed.readBytes + parsed.writeBytes > 0) {
          blockIO = parsed;
          break;
        }
      }
    }
    return {
      cpu: {
        usageNs,
        userNs,
        systemNs,
        periods: cpuStat.get('nr_periods') ?? 0,
        throttledPeriods: cpuStat.get('nr_throttled') ?? 0,
        throttledNs: cpuStat.get('throttled_time') ?? 0,
      },
      memory: {
        usage,
        limit: limit < 0 ? null : limit,
        maxUsage: maxUsage < 0 ? null : maxUsage,
        inactiveFile,
        workingSet: inactiveFile < usage ? usage - inactiveFile : usage,
      },
      pids: { current: pids ? readNumber(cgroupFile(pids, 'pids.current')) : this.pids().length, limit: pidsLimit < 0 ? null : pidsLimit },
      blockIO,
    };
  }

  memoryEvents(): MemoryEvents {
    const memory = this.dirOf('memory');
    if (!memory) return { oomKills: null, ooms: null, limitHits: 0 };
    const control = parseFlatKeyed(readOptional(cgroupFile(memory, 'memory.oom_control')));
    return { oomKills: control.get('oom_kill') ?? null, ooms: null, limitHits: readNumber(cgroupFile(memory, 'memory.failcnt')) };
  }

  oomKilled(): boolean {
    const events = this.memoryEvents();
    // Kernels before 4.13 count no kills; a hit limit is the best sign left.
    return events.oomKills === null ? events.limitHits > 0 : events.oomKills > 0;
  }

  async freeze(timeoutMs = 1000): Promise<boolean> {
    const freezer = this.dirOf('freezer');
    if (freezer && fileExists(freezer)) {
      const state = cgroupFile(freezer, 'freezer.state');
      writeCgroupFile(state, 'FROZEN');
      return waitFor(() => readCgroupFile(state).trim() === 'FROZEN', timeoutMs, this._ops);
    }
    if (this._unifiedDir && fileExists(cgroupFile(this._unifiedDir, 'cgroup.freeze'))) {
      writeCgroupFile(cgroupFile(this._unifiedDir, 'cgroup.freeze'), '1');
      return waitFor(() => parseFlatKeyed(readOptional(cgroupFile(this._unifiedDir as string, 'cgroup.events'))).get('frozen') === 1, timeoutMs, this._ops);
    }
    return false;
  }

  thaw(): void {
    const freezer = this.dirOf('freezer');
    if (freezer && fileExists(freezer)) writeCgroupFile(cgroupFile(freezer, 'freezer.state'), 'THAWED');
    if (this._unifiedDir && fileExists(cgroupFile(this._unifiedDir, 'cgroup.freeze'))) writeCgroupFile(cgroupFile(this._unifiedDir, 'cgroup.freeze'), '0');
  }

  async killAll(): Promise<void> {
    const kill = this._unifiedDir && cgroupFile(this._unifiedDir, 'cgroup.kill');
    if (kill && fileExists(kill)) {
      // The kernel kills the whole cgroup at once, forks in flight included.
      writeCgroupFile(kill, '1');
      this._killEach(this.pids());
      return;
    }
    const pids = this.pids();
    if (pids.length === 0) return;
    // Frozen processes cannot fork while we kill them one by one; they die once thawed.
    const frozen = await this.freeze(500);
    try {
      this._killEach(frozen ? this.pids() : pids);
    } finally {
      this.thaw();
    }
  }

  async destroy(options?: DestroyOptions): Promise<void> {
    await killAndRemove(this, () => this._existingDirs(), this._ops, options);
  }

  private _existingDirs(): string[] {
    return this.paths.filter((dir) => fileExists(dir)).flatMap((dir) => [...descendants(dir), dir]);
  }

  private _killEach(pids: number[]): void {
    for (const pid of pids) {
      try {
        this._ops.kill(pid, 9);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
      }
    }
  }

  private _require(controller: V1Controller, what: string): string {
    const dir = this.dirOf(controller);
    if (!dir) throw new TsrunError(`cgroups: ${what} needs the ${controller} controller, which this host does not mount`, 'ENOTSUP');
    return dir;
  }

  /**
   * mkdir of <mount>/<parent>/<id>; the parent levels are made only when
   * that finds them missing, as on the first start. A new v1 cpuset starts
   * empty: a level made here copies its parent's CPUs and nodes, and the
   * parent's cgroup.clone_children gives the container's cgroup its copy at
   * mkdir; where it did not (a parent tsrun did not make, a fake tree), the
   * levels are checked and copied by hand.
   */
  /** Makes `leaf`, the container's directory under `mount`, and its parents as needed. */
  private _makePath(mount: string, leaf: string, cpuset: boolean, made: string[]): void {
    const parentDir = path.dirname(leaf);
    let created: boolean;
    try {
      created = mkdirNewCgroup(leaf);
    } catch (err) {
      if (!(err instanceof SyscallError && err.code === 'ENOENT')) throw err;
      this._makeParents(mount, cpuset, made);
      created = mkdirNewCgroup(leaf);
    }
    if (created) made.push(leaf);
    if (cpuset && !hasCpuset(leaf)) {
      this._makeParents(mount, cpuset, made);
      inheritCpuset(parentDir, leaf);
    }
  }

  private _makeParents(mount: string, cpuset: boolean, made: string[]): void {
    let dir = mount;
    for (const segment of this._parent.split('/')) {
      const parentDir = dir;
      dir = path.join(dir, segment);
      if (mkdirCgroup(dir)) made.push(dir);
      if (cpuset) {
        inheritCpuset(parentDir, dir);
        cloneCpusetToChildren(dir);
      }
    }
  }

  private _setMemory(memory: NonNullable<CgroupResources['memory']>, warnings: string[]): void {
    let { limit, swap } = memory;
    const { reservation } = memory;
    if (!limit && !swap && !reservation) return;
    const dir = this._require('memory', 'a memory limit');
    const limitFile = cgroupFile(dir, 'memory.limit_in_bytes');
    const swapFile = cgroupFile(dir, 'memory.memsw.limit_in_bytes');
    const swapAccounting = fileExists(swapFile);
    // Unlimited memory lifts the memory+swap limit too, or the kernel would refuse it.
    if (limit === -1 && !swap) swap = -1;
    if (swap && !swapAccounting) {
      if (swap > 0) warnings.push('memory+swap limit: this kernel does not account swap (no memory.memsw.limit_in_bytes; boot with swapaccount=1); swap is not limited');
      swap = undefined;
    }
    const writeLimit = (): void => {
      try {
        writeCgroupFile(limitFile, String(limit));
      } catch (err) {
        if (err instanceof SyscallError && err.code === 'EINVAL' && swapAccounting && !swap) {
          const current = parseLimit(readCgroupFile(swapFile));
          throw new SyscallError('cgroups', 'write', err.errno, limitFile, `memory limit ${limit} is above the memory+swap limit ${current}; change both together`, { cause: err });
        }
        if (err instanceof SyscallError && err.code === 'EBUSY') {
          throw new SyscallError('cgroups', 'write', err.errno, limitFile, `memory limit ${limit}: the container uses more and the kernel could not reclaim enough`, { cause: err });
        }
        throw err;
      }
    };
    const writeSwap = (): void => writeCgroupFile(swapFile, String(swap));
    if (limit && swap) {
      // The kernel keeps memory <= memory+swap at every moment: raise the
      // total first when it grows past the current memory limit, else
      // lower the memory limit first.
      const current = parseLimit(readCgroupFile(limitFile));
      if (swap === -1 || (current !== -1 && swap >= current)) {
        writeSwap();
        writeLimit();
      } else {
        writeLimit();
        writeSwap();
      }
    } else if (limit) {
      writeLimit();
    } else if (swap) {
      const current = parseLimit(readCgroupFile(limitFile));
      if (swap !== -1 && (current === -1 || swap < current)) {
        throw new ValidationError('memory.swap', `${swap} is below the container's memory limit (${current === -1 ? 'unlimited' : current}); set the memory limit too`);
      }
      writeSwap();
    }
    if (reservation) writeCgroupFile(cgroupFile(dir, 'memory.soft_limit_in_bytes'), String(reservation));
  }

  private _setCpuBandwidth(quota: number | undefined, period: number | undefined): void {
    if (!quota && !period) return;
    const dir = this._require('cpu', 'a cpu quota');
    const writes: [string, number][] = [];
    if (period) writes.push([cgroupFile(dir, 'cpu.cfs_period_us'), period]);
    if (quota) writes.push([cgroupFile(dir, 'cpu.cfs_quota_us'), quota]);
    try {
      for (const [file, value] of writes) writeCgroupFile(file, String(value));
    } catch (err) {
      // A new period can be refused with the old quota (and the other way
      // round) when together they break the parent's bandwidth; the other order works then.
      if (!(err instanceof SyscallError && err.code === 'EINVAL' && writes.length === 2)) throw err;
      for (const [file, value] of writes.reverse()) writeCgroupFile(file, String(value));
    }
  }
}

function defaultMount(root: string, controller: V1Controller): string | undefined {
  const dir = path.join(root, controller);
  return fs.existsSync(dir) ? dir : undefined;
}

/** cgroup.clone_children: the kernel copies a cpuset's CPUs and nodes into each new child. */
function cloneCpusetToChildren(dir: string): void {
  const file = cgroupFile(dir, 'cgroup.clone_children');
  if (readOptional(file)?.trim() === '0') writeCgroupFile(file, '1');
}

/** Whether a cpuset has its CPUs and nodes (or is not a real one: a fake tree without the files). */
function hasCpuset(dir: string): boolean {
  return ['cpuset.cpus', 'cpuset.mems'].every((file) => readOptional(cgroupFile(dir, file))?.trim() !== '');
}

function inheritCpuset(parentDir: string, dir: string): void {
  for (const file of ['cpuset.cpus', 'cpuset.mems']) {
    const own = readOptional(cgroupFile(dir, file));
    if (own === null || own.trim() !== '') continue;
    const inherited = readCgroupFile(cgroupFile(parentDir, file)).trim();
    if (inherited !== '') writeCgroupFile(cgroupFile(dir, file), inherited, `${file} ${JSON.stringify(inherited)} copied from the parent cgroup`);
  }
}
