import fs = require('node:fs');
import path = require('node:path');
import { SyscallError, TsrunError, ValidationError, syscallErrorFrom } from '../../errors';
import type { PlanStep } from '../../runtime/plan';
import {
  blkioWeightToIoWeight,
  cpuSharesToWeight,
  cpuWeightToShares,
  formatCpuMax,
  formatV2Limit,
  ioWeightToBlkioWeight,
  memorySwapFromV2,
  memorySwapToV2,
  parseCpuMax,
  parseLimit,
} from './convert';
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
  parseFlatKeyed,
  readCgroupFile,
  readNumber,
  readOptional,
  readProcs,
  withOps,
  writeCgroupFile,
} from './files';
import type { CgroupResources } from './resources';
import { parseIoStat, waitFor } from './stats';

/** The controllers a container's cgroup gets, where the host has them. */
export const V2_CONTROLLERS = ['cpu', 'cpuset', 'io', 'memory', 'pids'] as const;

/**
 * The cgroup v2 driver: one cgroup `<root>/<parent>/<id>` in the unified
 * hierarchy, with the controllers enabled in cgroup.subtree_control of
 * every level above it.
 */
export class V2Driver implements CgroupDriver {
  readonly version = 2 as const;
  readonly paths: readonly string[];
  /** The container's cgroup directory. */
  readonly dir: string;
  private readonly _parent: string;
  private readonly _ops: CgroupOps;

  constructor(
    readonly root: string,
    readonly id: string,
    options: DriverOptions = {},
  ) {
    this._parent = options.parent ?? defaultCgroupParent();
    checkCgroupNames(id, this._parent);
    this._ops = withOps(options.ops);
    this.dir = path.join(root, this._parent, id);
    this.paths = [this.dir];
  }

  exists(): boolean {
    return fileExists(this.dir);
  }

  /** The controllers the container's cgroup has (its parent enabled them). */
  controllers(): string[] {
    return (readOptional(cgroupFile(this.dir, 'cgroup.controllers')) ?? '').trim().split(/\s+/).filter(Boolean);
  }

  create(resources: CgroupResources = {}): string[] {
    const made: string[] = [];
    try {
      makeWithRetry(() => {
        let dir = this.root;
        for (const segment of this._parent.split('/')) {
          enableControllers(dir);
          dir = path.join(dir, segment);
          if (mkdirCgroup(dir)) made.push(dir);
        }
        enableControllers(dir);
        if (mkdirCgroup(this.dir)) made.push(this.dir);
      });
      return this.update(resources);
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
    const file = (name: string): string => cgroupFile(this.dir, name);
    const { memory, cpu, pids, blockIO, devices } = resources;
    // cgroup2 filters devices with an attached BPF program only.
    if (devices && devices.length > 0) warnings.push('device rules: cgroup v2 needs a BPF device program, which tsrun does not load yet; only the container\'s /dev contents and its capabilities limit device access');
    if (memory && (memory.limit || memory.swap || memory.reservation)) {
      this._require('memory', 'a memory limit');
      if (memory.limit) writeCgroupFile(file('memory.max'), formatV2Limit(memory.limit));
      const limit = memory.limit || parseLimit(readCgroupFile(file('memory.max')));
      let swap: number | undefined;
      try {
        swap = memorySwapToV2(memory.swap, limit);
      } catch (err) {
        throw new ValidationError('memory.swap', (err as Error).message);
      }
      if (swap !== undefined) {
        if (fileExists(file('memory.swap.max'))) writeCgroupFile(file('memory.swap.max'), formatV2Limit(swap));
        else if (swap >= 0) warnings.push('memory+swap limit: this kernel does not account swap (no memory.swap.max); swap is not limited');
      }
      // memory.low protects that much; "no reservation" (-1) is no protection, 0.
      if (memory.reservation) writeCgroupFile(file('memory.low'), String(Math.max(memory.reservation, 0)));
    }
    if (cpu) {
      if (cpu.shares) {
        this._require('cpu', 'cpu shares');
        writeCgroupFile(file('cpu.weight'), String(cpuSharesToWeight(cpu.shares)), `cpu.weight for cpu shares ${cpu.shares}`);
      }
      if (cpu.quota || cpu.period) {
        this._require('cpu', 'a cpu quota');
        const current = parseCpuMax(readCgroupFile(file('cpu.max')));
        writeCgroupFile(file('cpu.max'), formatCpuMax(cpu.quota || current.quota, cpu.period || current.period));
      }
      if (cpu.cpus !== undefined) writeCgroupFile(this._requireFile('cpuset', 'cpuset.cpus', 'a cpuset'), cpu.cpus);
      if (cpu.mems !== undefined) writeCgroupFile(this._requireFile('cpuset', 'cpuset.mems', 'a cpuset'), cpu.mems);
    }
    if (pids?.limit) writeCgroupFile(this._requireFile('pids', 'pids.max', 'a pids limit'), formatV2Limit(pids.limit));
    if (blockIO?.weight) {
      // BFQ takes the v1 range as is; io.weight (blk-iocost) takes 1-10000.
      if (fileExists(file('io.bfq.weight'))) writeCgroupFile(file('io.bfq.weight'), String(blockIO.weight));
      else if (fileExists(file('io.weight'))) writeCgroupFile(file('io.weight'), `default ${blkioWeightToIoWeight(blockIO.weight)}`);
      else warnings.push('blkio weight: this kernel has no io.weight or io.bfq.weight (no io controller, BFQ or io cost model); the weight is not applied');
    }
    return warnings;
  }

  limits(): CgroupResources {
    const read = (name: string): string | null => readOptional(cgroupFile(this.dir, name));
    const result: CgroupResources = {};
    const memoryMax = read('memory.max');
    if (memoryMax !== null) {
      const limit = parseLimit(memoryMax);
      const swapMax = read('memory.swap.max');
      const low = read('memory.low');
      result.memory = {
        limit,
        ...(swapMax === null ? {} : { swap: memorySwapFromV2(parseLimit(swapMax), limit) }),
        ...(low === null ? {} : { reservation: parseLimit(low) || -1 }),
      };
    }
    const cpu: NonNullable<CgroupResources['cpu']> = {};
    const weight = read('cpu.weight');
    if (weight !== null) cpu.shares = cpuWeightToShares(Number(weight.trim()));
    const max = read('cpu.max');
    if (max !== null) Object.assign(cpu, parseCpuMax(max));
    const cpus = read('cpuset.cpus');
    if (cpus !== null) cpu.cpus = cpus.trim();
    const mems = read('cpuset.mems');
    if (mems !== null) cpu.mems = mems.trim();
    if (Object.keys(cpu).length > 0) result.cpu = cpu;
    const pids = read('pids.max');
    if (pids !== null) result.pids = { limit: parseLimit(pids) };
    const bfq = read('io.bfq.weight');
    const io = read('io.weight');
    if (bfq !== null) result.blockIO = { weight: Number(/(\d+)/.exec(bfq)?.[1] ?? 0) };
    else if (io !== null) result.blockIO = { weight: ioWeightToBlkioWeight(Number(/(\d+)/.exec(io)?.[1] ?? 0)) };
    return result;
  }

  joinSteps(): PlanStep[] {
    return [joinStep(this.dir, 'cgroup.procs')];
  }

  addProcess(pid: number): void {
    writeCgroupFile(cgroupFile(this.dir, 'cgroup.procs'), String(pid), `moving pid ${pid} into the cgroup`);
  }

  openCgroupFd(): number {
    try {
      return fs.openSync(this.dir, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
    } catch (err) {
      throw syscallErrorFrom('cgroups', err, 'opening the cgroup for CLONE_INTO_CGROUP');
    }
  }

  pids(): number[] {
    const all = new Set<number>();
    for (const d of [this.dir, ...descendants(this.dir)]) for (const pid of readProcs(d)) all.add(pid);
    return [...all].sort((a, b) => a - b);
  }

  stats(): CgroupStats {
    const read = (name: string): string | null => readOptional(cgroupFile(this.dir, name));
    const cpuStat = parseFlatKeyed(read('cpu.stat'));
    const usage = readNumber(cgroupFile(this.dir, 'memory.current'));
    const maxText = read('memory.max');
    const limit = maxText === null ? -1 : parseLimit(maxText);
    const peak = read('memory.peak');
    const memStat = parseFlatKeyed(read('memory.stat'));
    const inactiveFile = memStat.get('inactive_file') ?? 0;
    const pidsMax = read('pids.max');
    const pidsLimit = pidsMax === null ? -1 : parseLimit(pidsMax);
    const pidsCurrent = read('pids.current');
    return {
      cpu: {
        usageNs: (cpuStat.get('usage_usec') ?? 0) * 1000,
        userNs: (cpuStat.get('user_usec') ?? 0) * 1000,
        systemNs: (cpuStat.get('system_usec') ?? 0) * 1000,
        periods: cpuStat.get('nr_periods') ?? 0,
        throttledPeriods: cpuStat.get('nr_throttled') ?? 0,
        throttledNs: (cpuStat.get('throttled_usec') ?? 0) * 1000,
      },
      memory: {
        usage,
        limit: limit < 0 ? null : limit,
        maxUsage: peak === null ? null : Number(peak.trim()),
        inactiveFile,
        workingSet: inactiveFile < usage ? usage - inactiveFile : usage,
      },
      pids: { current: pidsCurrent === null ? this.pids().length : Number(pidsCurrent.trim()), limit: pidsLimit < 0 ? null : pidsLimit },
      blockIO: parseIoStat(read('io.stat')),
    };
  }

  memoryEvents(): MemoryEvents {
    const events = readOptional(cgroupFile(this.dir, 'memory.events'));
    if (events === null) return { oomKills: null, ooms: null, limitHits: 0 };
    const map = parseFlatKeyed(events);
    return { oomKills: map.get('oom_kill') ?? null, ooms: map.get('oom') ?? null, limitHits: map.get('max') ?? 0 };
  }

  oomKilled(): boolean {
    return (this.memoryEvents().oomKills ?? 0) > 0;
  }

  async freeze(timeoutMs = 1000): Promise<boolean> {
    const freeze = cgroupFile(this.dir, 'cgroup.freeze');
    if (!fileExists(freeze)) return false;
    writeCgroupFile(freeze, '1');
    return waitFor(() => parseFlatKeyed(readOptional(cgroupFile(this.dir, 'cgroup.events'))).get('frozen') === 1, timeoutMs, this._ops);
  }

  thaw(): void {
    const freeze = cgroupFile(this.dir, 'cgroup.freeze');
    if (fileExists(freeze)) writeCgroupFile(freeze, '0');
  }

  async killAll(): Promise<void> {
    const kill = cgroupFile(this.dir, 'cgroup.kill');
    if (fileExists(kill)) {
      // Linux 5.14+: the kernel kills the whole subtree at once, forks in flight included.
      writeCgroupFile(kill, '1');
      return;
    }
    const pids = this.pids();
    if (pids.length === 0) return;
    const frozen = await this.freeze(500);
    try {
      for (const pid of frozen ? this.pids() : pids) {
        try {
          this._ops.kill(pid, 9);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
        }
      }
    } finally {
      this.thaw();
    }
  }

  async destroy(options?: DestroyOptions): Promise<void> {
    await killAndRemove(this, () => (fileExists(this.dir) ? [...descendants(this.dir), this.dir] : []), this._ops, options);
  }

  private _require(controller: string, what: string): void {
    const available = this.controllers();
    if (!available.includes(controller)) {
      throw new TsrunError(
        `cgroups: ${what} needs the ${controller} controller, which ${path.dirname(this.dir)} does not pass down (its cgroup.controllers has: ${available.join(' ') || 'none'})`,
        'ENOTSUP',
      );
    }
  }

  private _requireFile(controller: string, name: string, what: string): string {
    this._require(controller, what);
    return cgroupFile(this.dir, name);
  }
}

/**
 * Enables in `dir`'s cgroup.subtree_control every container controller its
 * cgroup.controllers offers, so the cgroups below get them. The "no
 * internal processes" rule makes this EBUSY where `dir` (other than the
 * root) holds processes itself.
 */
export function enableControllers(dir: string): void {
  const available = (readOptional(cgroupFile(dir, 'cgroup.controllers')) ?? '').trim().split(/\s+/);
  const enabled = (readOptional(cgroupFile(dir, 'cgroup.subtree_control')) ?? '').trim().split(/\s+/);
  const wanted = V2_CONTROLLERS.filter((c) => available.includes(c) && !enabled.includes(c));
  if (wanted.length === 0) return;
  const file = cgroupFile(dir, 'cgroup.subtree_control');
  try {
    writeCgroupFile(file, wanted.map((c) => `+${c}`).join(' '));
  } catch (err) {
    if (err instanceof SyscallError && err.code === 'EBUSY') {
      throw new SyscallError('cgroups', 'write', err.errno, file, `${dir} has processes of its own, so it cannot pass controllers down (cgroup v2 "no internal processes" rule); move them into a child cgroup`, { cause: err });
    }
    throw err;
  }
}
