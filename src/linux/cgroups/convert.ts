/**
 * Conversions between the OCI resource values (shaped after cgroup v1) and
 * the files of cgroup v2, in one place. Every v2 write goes through here.
 *
 * Value conventions, as in the OCI runtime spec: 0 or undefined means
 * "not set", -1 means "unlimited" for memory, swap, quota and pids.
 */

/** cgroup v1 cpu.shares range (kernel MIN_SHARES, MAX_SHARES). */
export const CPU_SHARES_MIN = 2;
export const CPU_SHARES_MAX = 262144;
export const CPU_SHARES_DEFAULT = 1024;
/** cgroup v2 cpu.weight range. */
export const CPU_WEIGHT_MIN = 1;
export const CPU_WEIGHT_MAX = 10000;
export const CPU_WEIGHT_DEFAULT = 100;
/** blkio weight range accepted by Docker (CFQ's range; BFQ takes 1-1000). */
export const BLKIO_WEIGHT_MIN = 10;
export const BLKIO_WEIGHT_MAX = 1000;
/** cgroup v2 io.weight range. */
export const IO_WEIGHT_MIN = 1;
export const IO_WEIGHT_MAX = 10000;
/** CFS bandwidth limits (kernel/sched/core.c): period 1 ms..1 s, quota at least 1 ms. */
export const CPU_PERIOD_MIN = 1000;
export const CPU_PERIOD_MAX = 1_000_000;
export const CPU_QUOTA_MIN = 1000;
export const CPU_PERIOD_DEFAULT = 100_000;

/*
 * Shares to weight. The old linear map (1 + (shares - 2) * 9999 / 262142)
 * turned the v1 default of 1024 into 39, not the v2 default of 100, so a
 * container with default shares lost against every v2 sibling. runc and crun
 * moved to a curve through the three points that matter, in log space:
 * log2(shares) = l, log10(weight) = (l^2 + 125 l) / 612 - 7/34, which maps
 * 2 -> 1, 1024 -> 100 and 262144 -> 10000. tsrun uses the same curve so a
 * container gets the same weight under any of the three runtimes.
 */

/** cpu.shares (2-262144) -> cpu.weight (1-10000); 0 stays 0 ("not set"). */
export function cpuSharesToWeight(shares: number): number {
  if (shares === 0) return 0;
  if (shares <= CPU_SHARES_MIN) return CPU_WEIGHT_MIN;
  if (shares >= CPU_SHARES_MAX) return CPU_WEIGHT_MAX;
  const l = Math.log2(shares);
  const exponent = (l * l + 125 * l) / 612 - 7 / 34;
  return Math.min(CPU_WEIGHT_MAX, Math.ceil(10 ** exponent));
}

/** The inverse curve: cpu.weight -> the cpu.shares that maps back to it (for reading a v2 cgroup back). */
export function cpuWeightToShares(weight: number): number {
  if (weight === 0) return 0;
  if (weight <= CPU_WEIGHT_MIN) return CPU_SHARES_MIN;
  if (weight >= CPU_WEIGHT_MAX) return CPU_SHARES_MAX;
  // Solve l^2 + 125 l - 612 (log10(w) + 7/34) = 0 for the positive root.
  const c = 612 * (Math.log10(weight) + 7 / 34);
  const l = (-125 + Math.sqrt(125 * 125 + 4 * c)) / 2;
  let shares = Math.round(2 ** l);
  // The forward map rounds up, so a few shares share each weight: keep the
  // exact inverse (100 -> 1024) unless rounding moved it off the weight.
  while (shares < CPU_SHARES_MAX && cpuSharesToWeight(shares) < weight) shares++;
  while (shares > CPU_SHARES_MIN && cpuSharesToWeight(shares) > weight) shares--;
  return shares;
}

/** Docker's `--cpus 1.5` -> CFS quota per period (both in microseconds). */
export function cpusToQuota(cpus: number, period = CPU_PERIOD_DEFAULT): { quota: number; period: number } {
  return { quota: Math.round(cpus * period), period };
}

/** A CFS quota and period -> how many CPUs that is (1.5 for 150000/100000); null when unlimited. */
export function quotaToCpus(quota: number, period: number): number | null {
  if (quota <= 0 || period <= 0) return null;
  return quota / period;
}

/** cpu.max content: "max 100000" or "50000 100000"; quota -1 is "max". */
export function formatCpuMax(quota: number, period: number): string {
  return `${quota < 0 ? 'max' : quota} ${period}`;
}

/** Parses cpu.max ("max 100000", "50000 100000", or "50000" as the kernel also accepts). */
export function parseCpuMax(text: string): { quota: number; period: number } {
  const [q, p] = text.trim().split(/\s+/);
  const quota = q === 'max' ? -1 : Number(q);
  const period = p === undefined ? CPU_PERIOD_DEFAULT : Number(p);
  if (!Number.isInteger(quota) || !Number.isInteger(period)) throw new RangeError(`cpu.max: cannot parse ${JSON.stringify(text)}`);
  return { quota, period };
}

/**
 * OCI memory.swap is memory+swap together (v1's memory.memsw); cgroup v2's
 * memory.swap.max is the swap alone. Returns the memory.swap.max value:
 * -1 for "max", 0 for no swap, or undefined when nothing is to be written.
 * Throws RangeError when the total is below the memory limit.
 */
export function memorySwapToV2(memorySwap: number | undefined, memory: number | undefined): number | undefined {
  // Unlimited memory without a swap value: unlimited swap too, as v1 does.
  if (memory === -1 && !memorySwap) return -1;
  if (memorySwap === undefined || memorySwap === 0) return undefined;
  if (memorySwap === -1) return -1;
  if (memory === undefined || memory === 0 || memory === -1) throw new RangeError('a memory+swap limit needs a memory limit');
  if (memorySwap < memory) throw new RangeError(`memory+swap (${memorySwap}) is below the memory limit (${memory})`);
  return memorySwap - memory;
}

/** The inverse, for reading a v2 cgroup back in OCI terms: memory.max + memory.swap.max. */
export function memorySwapFromV2(swapMax: number, memoryMax: number): number {
  if (swapMax < 0 || memoryMax < 0) return -1;
  return memoryMax + swapMax;
}

/** blkio weight (10-1000) -> io.weight (1-10000), linear over both ranges; 0 stays 0. */
export function blkioWeightToIoWeight(weight: number): number {
  if (weight === 0) return 0;
  const clamped = Math.min(BLKIO_WEIGHT_MAX, Math.max(BLKIO_WEIGHT_MIN, weight));
  return IO_WEIGHT_MIN + Math.floor(((clamped - BLKIO_WEIGHT_MIN) * (IO_WEIGHT_MAX - IO_WEIGHT_MIN)) / (BLKIO_WEIGHT_MAX - BLKIO_WEIGHT_MIN));
}

/** io.weight -> blkio weight, rounding to the nearest. */
export function ioWeightToBlkioWeight(weight: number): number {
  if (weight === 0) return 0;
  const clamped = Math.min(IO_WEIGHT_MAX, Math.max(IO_WEIGHT_MIN, weight));
  return BLKIO_WEIGHT_MIN + Math.round(((clamped - IO_WEIGHT_MIN) * (BLKIO_WEIGHT_MAX - BLKIO_WEIGHT_MIN)) / (IO_WEIGHT_MAX - IO_WEIGHT_MIN));
}

/** A v2 limit file value: -1 is "max". */
export function formatV2Limit(value: number): string {
  return value < 0 ? 'max' : String(value);
}

/**
 * Parses a limit as either version writes it: "max" (v2) or a number of
 * at least 2^53 (v1's PAGE_COUNTER_MAX, 9223372036854771712) is -1.
 */
export function parseLimit(text: string): number {
  const t = text.trim();
  if (t === 'max' || t === '-1') return -1;
  if (!/^\d+$/.test(t)) throw new RangeError(`not a limit: ${JSON.stringify(text)}`);
  const big = BigInt(t);
  return big >= BigInt(Number.MAX_SAFE_INTEGER) ? -1 : Number(big);
}
