import fs = require('node:fs');
import type os = require('node:os');
import { syscallErrorFrom } from '../../errors';
import { readHostCpus } from './cpu-list';
import type { CgroupDriver, CgroupStats } from './driver';
import type { CgroupOps } from './files';

/** Polls `done` every few ms until it holds or `timeoutMs` passes; resolves with the last answer. */
export async function waitFor(done: () => boolean, timeoutMs: number, ops: Pick<CgroupOps, 'sleep' | 'now'>): Promise<boolean> {
  const deadline = ops.now() + timeoutMs;
  for (;;) {
    if (done()) return true;
    if (ops.now() >= deadline) return false;
    await ops.sleep(5);
  }
}

/**
 * v1 blkio.*io_service_bytes*: "MAJ:MIN Read N" / "MAJ:MIN Write N" lines
 * per device (plus Sync, Async, Discard, Total); sums reads and writes over
 * the devices.
 */
export function parseBlkioServiceBytes(text: string | null): { readBytes: number; writeBytes: number } {
  const result = { readBytes: 0, writeBytes: 0 };
  if (text === null) return result;
  for (const line of text.split('\n')) {
    const [device, op, value] = line.trim().split(/\s+/);
    if (!device || !/^\d+:\d+$/.test(device) || value === undefined) continue;
    if (op === 'Read') result.readBytes += Number(value);
    else if (op === 'Write') result.writeBytes += Number(value);
  }
  return result;
}

/** v2 io.stat: "MAJ:MIN rbytes=N wbytes=N rios=N wios=N dbytes=N dios=N" per device. */
export function parseIoStat(text: string | null): { readBytes: number; writeBytes: number } {
  const result = { readBytes: 0, writeBytes: 0 };
  if (text === null) return result;
  for (const line of text.split('\n')) {
    for (const field of line.trim().split(/\s+/).slice(1)) {
      const [key, value] = field.split('=');
      if (key === 'rbytes') result.readBytes += Number(value);
      else if (key === 'wbytes') result.writeBytes += Number(value);
    }
  }
  return result;
}

const NS_PER_USER_HZ_TICK = 10_000_000;

/**
 * The host's total CPU time in nanoseconds, from the first line of
 * /proc/stat (user nice system idle iowait irq softirq steal, in USER_HZ
 * ticks, which are 1/100 s on every Linux ABI). Docker divides a
 * container's CPU time by the change of this to get CPU %.
 */
export function readSystemCpuNs(procStat = '/proc/stat'): number {
  let text: string;
  try {
    text = fs.readFileSync(procStat, 'utf8');
  } catch (err) {
    throw syscallErrorFrom('cgroups', err, 'reading the host CPU time');
  }
  const line = text.split('\n').find((l) => l.startsWith('cpu '));
  if (!line) return 0;
  const ticks = line
    .trim()
    .split(/\s+/)
    .slice(1, 9)
    .reduce((sum, v) => sum + Number(v), 0);
  return ticks * NS_PER_USER_HZ_TICK;
}

/** One reading of a container's counters, with the host's CPU time at the same moment. */
export interface StatsSample {
  /** Date.now() when taken. */
  at: number;
  stats: CgroupStats;
  /** The host's CPU time (readSystemCpuNs). */
  systemCpuNs: number;
  /** The host's online CPUs. */
  onlineCpus: number;
}

export interface SampleOptions {
  procStat?: string;
  cpusOnline?: string;
}

export function sampleStats(cgroup: Pick<CgroupDriver, 'stats'>, options: SampleOptions = {}): StatsSample {
  const stats = cgroup.stats();
  return {
    at: Date.now(),
    stats,
    systemCpuNs: readSystemCpuNs(options.procStat),
    onlineCpus: readHostCpus({ cpusOnline: options.cpusOnline }).cpus.length,
  };
}

/**
 * CPU % as `docker stats` computes it: the container's share of the
 * host's CPU time between two samples, times the number of CPUs, so one
 * busy CPU is 100% and two are 200%. 0 when nothing can be measured.
 */
export function cpuPercent(previous: StatsSample, current: StatsSample): number {
  const cpuDelta = current.stats.cpu.usageNs - previous.stats.cpu.usageNs;
  const systemDelta = current.systemCpuNs - previous.systemCpuNs;
  if (cpuDelta <= 0 || systemDelta <= 0) return 0;
  return (cpuDelta / systemDelta) * current.onlineCpus * 100;
}

/** One `docker stats` row, in numbers (the CLI formats them). */
export interface StatsView {
  cpuPercent: number;
  /** MEM USAGE: working set (usage without inactive page cache). */
  memoryUsage: number;
  /** LIMIT: the cgroup's limit, or the host's memory when unlimited (or larger). */
  memoryLimit: number;
  memoryPercent: number;
  pids: number;
  blockRead: number;
  blockWrite: number;
}

/**
 * The numbers of a `docker stats` row from two samples about a second apart
 * (`--no-stream` takes two as well; CPU % needs a change to measure).
 */
export function statsView(previous: StatsSample, current: StatsSample, hostMemory = (require('node:os') as typeof os).totalmem()): StatsView {
  const { memory, pids, blockIO } = current.stats;
  const memoryLimit = memory.limit === null ? hostMemory : Math.min(memory.limit, hostMemory);
  return {
    cpuPercent: cpuPercent(previous, current),
    memoryUsage: memory.workingSet,
    memoryLimit,
    memoryPercent: memoryLimit > 0 ? (memory.workingSet / memoryLimit) * 100 : 0,
    pids: pids.current,
    blockRead: blockIO.readBytes,
    blockWrite: blockIO.writeBytes,
  };
}
