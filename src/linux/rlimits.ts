import fs = require('node:fs');
import { ValidationError } from '../errors';
import type { POSIXRlimit } from '../oci/runtime-spec';
import type { PlanStep } from '../runtime/plan';

/** RLIMIT_* numbers, from <asm-generic/resource.h> (the same on x86_64 and aarch64). */
export const RLIMITS: Readonly<Record<string, number>> = {
  RLIMIT_CPU: 0,
  RLIMIT_FSIZE: 1,
  RLIMIT_DATA: 2,
  RLIMIT_STACK: 3,
  RLIMIT_CORE: 4,
  RLIMIT_RSS: 5,
  RLIMIT_NPROC: 6,
  RLIMIT_NOFILE: 7,
  RLIMIT_MEMLOCK: 8,
  RLIMIT_AS: 9,
  RLIMIT_LOCKS: 10,
  RLIMIT_SIGPENDING: 11,
  RLIMIT_MSGQUEUE: 12,
  RLIMIT_NICE: 13,
  RLIMIT_RTPRIO: 14,
  RLIMIT_RTTIME: 15,
};

/** How /proc/PID/limits names each limit. */
const PROC_NAMES: Readonly<Record<string, string>> = {
  RLIMIT_CPU: 'Max cpu time',
  RLIMIT_FSIZE: 'Max file size',
  RLIMIT_DATA: 'Max data size',
  RLIMIT_STACK: 'Max stack size',
  RLIMIT_CORE: 'Max core file size',
  RLIMIT_RSS: 'Max resident set',
  RLIMIT_NPROC: 'Max processes',
  RLIMIT_NOFILE: 'Max open files',
  RLIMIT_MEMLOCK: 'Max locked memory',
  RLIMIT_AS: 'Max address space',
  RLIMIT_LOCKS: 'Max file locks',
  RLIMIT_SIGPENDING: 'Max pending signals',
  RLIMIT_MSGQUEUE: 'Max msgqueue size',
  RLIMIT_NICE: 'Max nice priority',
  RLIMIT_RTPRIO: 'Max realtime priority',
  RLIMIT_RTTIME: 'Max realtime timeout',
};

/** RLIM_INFINITY; -1 in the options and the OCI spec. */
const INFINITY = 0xffffffffffffffffn;
const CAP_SYS_RESOURCE = 24n;

export interface Ulimit {
  /** Docker's name: nofile, nproc, core, memlock, stack... */
  name: string;
  /** -1: unlimited. */
  soft: number;
  /** Default: the soft limit. -1: unlimited. */
  hard?: number;
}

/** `--ulimit NAME=SOFT[:HARD]` as docker run takes it. */
export function parseUlimit(field: string, value: string): Ulimit {
  const m = /^([a-z]+)=(-?\d+)(?::(-?\d+))?$/.exec(value);
  if (!m) throw new ValidationError(field, `${JSON.stringify(value)} is not NAME=SOFT[:HARD]`);
  return { name: m[1], soft: Number(m[2]), hard: m[3] === undefined ? undefined : Number(m[3]) };
}

const toLimit = (n: number): bigint => (n === -1 ? INFINITY : BigInt(n));

/** `process.rlimits` from Docker-style ulimits; unknown names and soft > hard are errors. */
export function rlimitsFromUlimits(ulimits: readonly Ulimit[] = []): POSIXRlimit[] {
  const seen = new Set<string>();
  return ulimits.map((u, i) => {
    const field = `ulimits[${i}]`;
    const type = `RLIMIT_${String(u.name).toUpperCase()}`;
    if (RLIMITS[type] === undefined) throw new ValidationError(field, `unknown ulimit ${JSON.stringify(u.name)} (${Object.keys(RLIMITS).map((k) => k.slice(7).toLowerCase()).join(', ')})`);
    if (seen.has(type)) throw new ValidationError(field, `${u.name} is given twice`);
    seen.add(type);
    const hard = u.hard ?? u.soft;
    for (const [key, v] of [['soft', u.soft], ['hard', hard]] as const) {
      if (!Number.isSafeInteger(v) || v < -1) throw new ValidationError(`${field}.${key}`, `${v} is not a limit (a non-negative integer, or -1 for unlimited)`);
    }
    if (toLimit(u.soft) > toLimit(hard)) throw new ValidationError(field, `${u.name}: the soft limit ${u.soft} is above the hard limit ${hard}`);
    return { type, soft: u.soft, hard };
  });
}

/** This process's hard limits, from /proc/self/limits (RLIM_INFINITY for "unlimited"). */
export function ownHardLimits(file = '/proc/self/limits'): Map<string, bigint> {
  const text = fs.readFileSync(file, 'utf8');
  const limits = new Map<string, bigint>();
  for (const [type, name] of Object.entries(PROC_NAMES)) {
    const line = text.split('\n').find((l) => l.startsWith(name));
    const hard = line?.slice(26).trim().split(/\s+/)[1];
    if (hard) limits.set(type, hard === 'unlimited' ? INFINITY : BigInt(hard));
  }
  return limits;
}

function hasCapability(bit: bigint, status = '/proc/self/status'): boolean {
  const m = /^CapEff:\s*([0-9a-f]+)$/m.exec(fs.readFileSync(status, 'utf8'));
  return m !== null && ((BigInt(`0x${m[1]}`) >> bit) & 1n) === 1n;
}

/**
 * Setrlimit steps, run while the child still has the runtime's
 * privileges. A hard limit above the runtime's own needs
 * CAP_SYS_RESOURCE: without it the kernel says EPERM, so that is checked
 * here first and explained.
 */
export function rlimitSteps(rlimits: readonly POSIXRlimit[] = []): PlanStep[] {
  if (rlimits.length === 0) return [];
  const own = ownHardLimits();
  const privileged = hasCapability(CAP_SYS_RESOURCE);
  return rlimits.map((r, i) => {
    const resource = RLIMITS[r.type];
    if (resource === undefined) throw new ValidationError(`process.rlimits[${i}].type`, `unknown rlimit ${JSON.stringify(r.type)}`);
    const [soft, hard] = [toLimit(r.soft), toLimit(r.hard)];
    const name = r.type.slice(7).toLowerCase();
    const ownHard = own.get(r.type) ?? INFINITY;
    const explain = `raising a hard limit above the runtime's own (${ownHard === INFINITY ? 'unlimited' : ownHard}) needs CAP_SYS_RESOURCE`;
    if (hard > ownHard && !privileged) {
      throw new ValidationError(`ulimit ${name}`, `hard limit ${r.hard === -1 ? 'unlimited' : r.hard} is not allowed: ${explain}, which tsrun does not have (see CapEff in /proc/self/status)`);
    }
    // Passed as signed 64-bit plan arguments; the child casts back.
    return { op: 'Setrlimit', args: [resource, BigInt.asIntN(64, soft), BigInt.asIntN(64, hard)], phase: 'rlimits', target: name, detail: explain };
  });
}
