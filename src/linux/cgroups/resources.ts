import { ValidationError } from '../../errors';
import type { LinuxResources } from '../../oci/runtime-spec';
import {
  BLKIO_WEIGHT_MAX,
  BLKIO_WEIGHT_MIN,
  CPU_PERIOD_DEFAULT,
  CPU_PERIOD_MAX,
  CPU_PERIOD_MIN,
  CPU_QUOTA_MIN,
  CPU_SHARES_MAX,
  CPU_SHARES_MIN,
  cpusToQuota,
} from './convert';
import { HostCpus, formatCpuList, parseCpuList, readHostCpus } from './cpu-list';

/**
 * A container's resource limits: the OCI runtime spec's `linux.resources`
 * (so a bundle's config.json maps over as is; see LinuxResources for the
 * value conventions). Each driver converts them to its files.
 */
export type CgroupResources = LinuxResources;

/**
 * The `docker run` / `docker update` resource flags, as the CLI passes them
 * (strings straight from argv, or numbers from a library caller).
 */
export interface ResourceOptions {
  /** `-m, --memory`: "512m", "1g", "6291456" (bytes). */
  memory?: string | number;
  /** `--memory-swap`: memory plus swap ("1g"); "-1" for unlimited swap. Default with `memory`: twice `memory`. */
  memorySwap?: string | number;
  /** `--memory-reservation`: soft limit. */
  memoryReservation?: string | number;
  /** `--cpus`: "1.5" CPUs; sets quota and a 100 ms period. */
  cpus?: string | number;
  /** `--cpu-period`: CFS period in microseconds. */
  cpuPeriod?: string | number;
  /** `--cpu-quota`: CFS quota in microseconds; -1 for none. */
  cpuQuota?: string | number;
  /** `-c, --cpu-shares`: relative weight (default 1024). */
  cpuShares?: string | number;
  /** `--cpuset-cpus`: "0-3", "0,1". */
  cpusetCpus?: string;
  /** `--cpuset-mems`: "0". */
  cpusetMems?: string;
  /** `--pids-limit`: 0 or -1 for unlimited. */
  pidsLimit?: string | number;
  /** `--blkio-weight`: 10-1000, 0 for the default. */
  blkioWeight?: string | number;
}

/** Below this the kernel cannot run a process at all; Docker refuses it too ("Minimum memory limit allowed is 6MB"). */
export const MIN_MEMORY = 6 * 1024 * 1024;

const UNITS: Record<string, number> = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4, p: 1024 ** 5 };

/**
 * A size as Docker's flags take it: a number of bytes, or a number with a
 * binary unit (b, k, m, g, t, p, optionally followed by "b" or "ib", any
 * case). "1.5g" is allowed; the result is rounded down to whole bytes.
 * "-1" is returned as -1 when `allowUnlimited` is set.
 *
 * @example parseBytes('512m', 'memory') // 536870912
 */
export function parseBytes(value: string | number, field: string, allowUnlimited = false): number {
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new ValidationError(field, `${value} is not a size`);
    if (value === -1 && allowUnlimited) return -1;
    if (value < 0) throw new ValidationError(field, `${value} is negative`);
    return Math.floor(value);
  }
  const text = value.trim();
  if (allowUnlimited && text === '-1') return -1;
  if (text.startsWith('-')) throw new ValidationError(field, `${JSON.stringify(value)} is negative`);
  const m = /^(\d+(?:\.\d+)?)\s*(?:([kmgtp])(?:i?b)?|b)?$/i.exec(text);
  if (!m) throw new ValidationError(field, `${JSON.stringify(value)} is not a size (a number with an optional unit b, k, m, g, t, p)`);
  const bytes = Math.floor(Number(m[1]) * UNITS[(m[2] ?? '').toLowerCase()]);
  if (!Number.isSafeInteger(bytes)) throw new ValidationError(field, `${JSON.stringify(value)} is too large`);
  return bytes;
}

function parseInteger(value: string | number, field: string): number {
  const n = typeof value === 'number' ? value : /^\s*-?\d+\s*$/.test(value) ? Number(value) : NaN;
  if (!Number.isSafeInteger(n)) throw new ValidationError(field, `${JSON.stringify(value)} is not an integer`);
  return n;
}

function parseDecimal(value: string | number, field: string): number {
  const n = typeof value === 'number' ? value : /^\s*-?(\d+(\.\d*)?|\.\d+)\s*$/.test(value) ? Number(value) : NaN;
  if (!Number.isFinite(n)) throw new ValidationError(field, `${JSON.stringify(value)} is not a number`);
  return n;
}

/** How a field of CgroupResources is called in the caller's terms, for error messages. */
export type FieldNames = Record<ResourceField, string>;
export type ResourceField =
  | 'memory.limit'
  | 'memory.swap'
  | 'memory.reservation'
  | 'cpu.shares'
  | 'cpu.quota'
  | 'cpu.period'
  | 'cpu.cpus'
  | 'cpu.mems'
  | 'pids.limit'
  | 'blockIO.weight';

/** Field names of an OCI bundle's config.json. */
export const OCI_FIELD_NAMES: FieldNames = {
  'memory.limit': 'linux.resources.memory.limit',
  'memory.swap': 'linux.resources.memory.swap',
  'memory.reservation': 'linux.resources.memory.reservation',
  'cpu.shares': 'linux.resources.cpu.shares',
  'cpu.quota': 'linux.resources.cpu.quota',
  'cpu.period': 'linux.resources.cpu.period',
  'cpu.cpus': 'linux.resources.cpu.cpus',
  'cpu.mems': 'linux.resources.cpu.mems',
  'pids.limit': 'linux.resources.pids.limit',
  'blockIO.weight': 'linux.resources.blockIO.weight',
};

/** Field names of ResourceOptions (RunOptions, `docker run` flags in camelCase). */
export const OPTION_FIELD_NAMES: FieldNames = {
  'memory.limit': 'memory',
  'memory.swap': 'memorySwap',
  'memory.reservation': 'memoryReservation',
  'cpu.shares': 'cpuShares',
  'cpu.quota': 'cpuQuota',
  'cpu.period': 'cpuPeriod',
  'cpu.cpus': 'cpusetCpus',
  'cpu.mems': 'cpusetMems',
  'pids.limit': 'pidsLimit',
  'blockIO.weight': 'blkioWeight',
};

function formatSize(bytes: number): string {
  for (const [unit, size] of [['GiB', 1024 ** 3], ['MiB', 1024 ** 2], ['KiB', 1024]] as const) {
    if (bytes >= size && bytes % size === 0) return `${bytes / size} ${unit}`;
  }
  return `${bytes} bytes`;
}

export interface ValidateOptions {
  /** The host's CPUs and memory nodes (default: read from /sys). */
  host?: HostCpus;
  /** Names for the error messages (default: the OCI spec's). */
  names?: FieldNames;
  /**
   * 'update' checks a change to a live cgroup: a swap limit may come
   * without a memory limit there (the cgroup has one already; the driver
   * checks it against the current value).
   */
  mode?: 'create' | 'update';
}

/**
 * Checks values against what the kernel accepts and against each other,
 * with one ValidationError per problem that names the field. Reads the
 * host's online CPUs only when a cpuset is given and no `host` was passed.
 */
export function validateResources(resources: CgroupResources, options: ValidateOptions = {}): void {
  const names = options.names ?? OCI_FIELD_NAMES;
  const fail = (field: ResourceField, message: string): never => {
    throw new ValidationError(names[field], message);
  };
  const integer = (field: ResourceField, value: number | undefined): value is number => {
    if (value === undefined) return false;
    if (!Number.isSafeInteger(value)) fail(field, `${value} is not an integer`);
    return true;
  };
  const limitOrUnlimited = (field: ResourceField, value: number | undefined): void => {
    if (integer(field, value) && value < 0 && value !== -1) fail(field, `${value} is negative (-1 means unlimited)`);
  };

  const { memory, cpu, pids, blockIO } = resources;
  if (memory) {
    limitOrUnlimited('memory.limit', memory.limit);
    limitOrUnlimited('memory.swap', memory.swap);
    limitOrUnlimited('memory.reservation', memory.reservation);
    const limit = memory.limit ?? 0;
    if (limit > 0 && limit < MIN_MEMORY) {
      fail('memory.limit', `${formatSize(limit)} is below the minimum of ${formatSize(MIN_MEMORY)} a container needs`);
    }
    const reservation = memory.reservation ?? 0;
    if (reservation > 0 && reservation < MIN_MEMORY) fail('memory.reservation', `${formatSize(reservation)} is below the minimum of ${formatSize(MIN_MEMORY)}`);
    if (limit > 0 && reservation > limit) fail('memory.reservation', `${formatSize(reservation)} is above the memory limit (${formatSize(limit)})`);
    const swap = memory.swap ?? 0;
    if (swap > 0) {
      if (limit > 0 && swap < limit) {
        fail('memory.swap', `${formatSize(swap)} is below the memory limit (${formatSize(limit)}); it is memory plus swap, so it must be at least the memory limit`);
      }
      if (limit <= 0 && options.mode !== 'update') fail('memory.swap', `a memory+swap limit needs a memory limit (${names['memory.limit']})`);
    }
  }
  if (cpu) {
    if (integer('cpu.shares', cpu.shares) && cpu.shares !== 0 && (cpu.shares < CPU_SHARES_MIN || cpu.shares > CPU_SHARES_MAX)) {
      fail('cpu.shares', `${cpu.shares} is outside ${CPU_SHARES_MIN}-${CPU_SHARES_MAX} (the default is 1024)`);
    }
    if (integer('cpu.period', cpu.period) && cpu.period !== 0 && (cpu.period < CPU_PERIOD_MIN || cpu.period > CPU_PERIOD_MAX)) {
      fail('cpu.period', `${cpu.period} is outside ${CPU_PERIOD_MIN}-${CPU_PERIOD_MAX} microseconds (1 ms to 1 s)`);
    }
    if (integer('cpu.quota', cpu.quota) && cpu.quota !== 0 && cpu.quota !== -1 && cpu.quota < CPU_QUOTA_MIN) {
      fail('cpu.quota', cpu.quota < 0 ? `${cpu.quota} is negative (-1 means no quota)` : `${cpu.quota} is below the minimum of ${CPU_QUOTA_MIN} microseconds (1 ms)`);
    }
    if (cpu.cpus !== undefined || cpu.mems !== undefined) {
      const host = options.host ?? readHostCpus();
      checkCpuset('cpu.cpus', cpu.cpus, host.cpus, 'CPU');
      checkCpuset('cpu.mems', cpu.mems, host.mems, 'memory node');
    }
  }
  if (pids && integer('pids.limit', pids.limit) && pids.limit < -1) fail('pids.limit', `${pids.limit} is negative (-1 or 0 means unlimited)`);
  if (blockIO && integer('blockIO.weight', blockIO.weight) && blockIO.weight !== 0 && (blockIO.weight < BLKIO_WEIGHT_MIN || blockIO.weight > BLKIO_WEIGHT_MAX)) {
    fail('blockIO.weight', `${blockIO.weight} is outside ${BLKIO_WEIGHT_MIN}-${BLKIO_WEIGHT_MAX} (0 for the default)`);
  }

  function checkCpuset(field: ResourceField, list: string | undefined, online: number[], what: string): void {
    if (list === undefined) return;
    const wanted = parseCpuList(list, names[field]);
    if (wanted.length === 0) fail(field, `is empty; give a list such as 0-1`);
    const missing = wanted.filter((n) => !online.includes(n));
    if (missing.length > 0) {
      fail(field, `${what}s ${formatCpuList(missing)} are not available on this host (online: ${formatCpuList(online) || 'none'})`);
    }
  }
}

export interface FromOptionsOptions {
  /** The host's CPUs and memory nodes (default: read from /sys). */
  host?: HostCpus;
  /** 'create' (default) applies Docker's defaults; 'update' changes only what is given. */
  mode?: 'create' | 'update';
}

/**
 * Turns `docker run`-style resource flags into CgroupResources, with
 * Docker's rules: `--cpus` becomes a quota over a 100 ms period and cannot
 * be combined with `--cpu-period` or `--cpu-quota`; `--memory` without
 * `--memory-swap` allows as much swap as memory (at create); 0 and -1
 * for `--pids-limit` mean unlimited. Throws a ValidationError naming the
 * option (in ResourceOptions' names) for any bad value.
 *
 * @example
 * resourcesFromOptions({ memory: '32m', cpus: '0.5', pidsLimit: 20 })
 * // { memory: { limit: 33554432, swap: 67108864 }, cpu: { quota: 50000, period: 100000 }, pids: { limit: 20 } }
 */
export function resourcesFromOptions(options: ResourceOptions, settings: FromOptionsOptions = {}): CgroupResources {
  const mode = settings.mode ?? 'create';
  const names = OPTION_FIELD_NAMES;
  const resources: CgroupResources = {};
  const memory: NonNullable<CgroupResources['memory']> = {};
  if (options.memory !== undefined) memory.limit = parseBytes(options.memory, names['memory.limit']);
  if (options.memorySwap !== undefined) memory.swap = parseBytes(options.memorySwap, names['memory.swap'], true);
  if (options.memoryReservation !== undefined) memory.reservation = parseBytes(options.memoryReservation, names['memory.reservation']);
  if (mode === 'create' && memory.limit && memory.swap === undefined) memory.swap = memory.limit * 2;
  if (Object.values(memory).some((v) => v !== undefined)) resources.memory = memory;

  const cpu: NonNullable<CgroupResources['cpu']> = {};
  if (options.cpuShares !== undefined) cpu.shares = parseInteger(options.cpuShares, names['cpu.shares']);
  if (options.cpuPeriod !== undefined) cpu.period = parseInteger(options.cpuPeriod, names['cpu.period']);
  if (options.cpuQuota !== undefined) cpu.quota = parseInteger(options.cpuQuota, names['cpu.quota']);
  if (options.cpus !== undefined) {
    if (options.cpuPeriod !== undefined || options.cpuQuota !== undefined) {
      throw new ValidationError('cpus', `cannot be combined with ${names['cpu.period']} or ${names['cpu.quota']}; --cpus sets both`);
    }
    const cpus = parseDecimal(options.cpus, 'cpus');
    const host = settings.host ?? readHostCpus();
    if (cpus <= 0) throw new ValidationError('cpus', `must be more than 0 (from 0.01 to ${host.cpus.length}, the host's CPUs)`);
    if (cpus > host.cpus.length) throw new ValidationError('cpus', `${cpus} is more than the ${host.cpus.length} CPUs this host has`);
    const { quota, period } = cpusToQuota(cpus, CPU_PERIOD_DEFAULT);
    if (quota < CPU_QUOTA_MIN) throw new ValidationError('cpus', `${cpus} is below the minimum of 0.01`);
    Object.assign(cpu, { quota, period });
  }
  if (options.cpusetCpus !== undefined) cpu.cpus = options.cpusetCpus.trim();
  if (options.cpusetMems !== undefined) cpu.mems = options.cpusetMems.trim();
  if (Object.values(cpu).some((v) => v !== undefined)) resources.cpu = cpu;

  if (options.pidsLimit !== undefined) {
    const limit = parseInteger(options.pidsLimit, names['pids.limit']);
    resources.pids = { limit: limit === 0 ? -1 : limit };
  }
  if (options.blkioWeight !== undefined) resources.blockIO = { weight: parseInteger(options.blkioWeight, names['blockIO.weight']) };

  validateResources(resources, { host: settings.host, names, mode });
  return resources;
}

/** Whether the resources ask for anything at all. */
export function hasResources(resources: CgroupResources | undefined): boolean {
  if (!resources) return false;
  return [resources.memory, resources.cpu, resources.pids, resources.blockIO].some((group) => group && Object.values(group).some((v) => v !== undefined));
}
