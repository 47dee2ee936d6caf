import fs = require('node:fs');
import { ValidationError, syscallErrorFrom } from '../../errors';

/** Largest CPU or memory node number accepted in a list (the kernel's NR_CPUS is at most 8192). */
const MAX_INDEX = 8191;

/**
 * Parses a kernel cpu list ("0-3,8,10-11", as cpuset.cpus and
 * /sys/devices/system/cpu/online write it) into sorted, distinct numbers.
 * An empty or blank list is the empty set.
 */
export function parseCpuList(list: string, field = 'cpu list'): number[] {
  const text = list.trim();
  if (text === '') return [];
  const result = new Set<number>();
  for (const part of text.split(',')) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part.trim());
    if (!m) throw new ValidationError(field, `${JSON.stringify(list)} is not a list of numbers and ranges such as 0-3,5`);
    const from = Number(m[1]);
    const to = m[2] === undefined ? from : Number(m[2]);
    if (to < from) throw new ValidationError(field, `${JSON.stringify(part)}: a range must go upwards`);
    if (to > MAX_INDEX) throw new ValidationError(field, `${to} is larger than ${MAX_INDEX}`);
    for (let i = from; i <= to; i++) result.add(i);
  }
  return [...result].sort((a, b) => a - b);
}

/** The shortest kernel list for a set of numbers: [0, 1, 2, 5] -> "0-2,5". */
export function formatCpuList(values: readonly number[]): string {
  const sorted = [...new Set(values)].sort((a, b) => a - b);
  const parts: string[] = [];
  for (let i = 0; i < sorted.length; ) {
    let j = i;
    while (j + 1 < sorted.length && sorted[j + 1] === sorted[j] + 1) j++;
    parts.push(i === j ? `${sorted[i]}` : `${sorted[i]}-${sorted[j]}`);
    i = j + 1;
  }
  return parts.join(',');
}

/** The CPUs and memory nodes a container may be pinned to. */
export interface HostCpus {
  cpus: number[];
  mems: number[];
}

export interface HostCpusPaths {
  /** Default /sys/devices/system/cpu/online. */
  cpusOnline?: string;
  /** Default /sys/devices/system/node/online; a kernel without NUMA has none, which means node 0. */
  nodesOnline?: string;
}

/** Reads the host's online CPUs and memory nodes. */
export function readHostCpus(paths: HostCpusPaths = {}): HostCpus {
  const cpusPath = paths.cpusOnline ?? '/sys/devices/system/cpu/online';
  const nodesPath = paths.nodesOnline ?? '/sys/devices/system/node/online';
  let cpus: number[];
  try {
    cpus = parseCpuList(fs.readFileSync(cpusPath, 'utf8'), cpusPath);
  } catch (err) {
    throw syscallErrorFrom('cgroups', err, 'reading the online CPUs');
  }
  let mems = [0];
  try {
    mems = parseCpuList(fs.readFileSync(nodesPath, 'utf8'), nodesPath);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw syscallErrorFrom('cgroups', err, 'reading the online memory nodes');
  }
  return { cpus, mems };
}
