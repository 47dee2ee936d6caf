import {
  blkioWeightToIoWeight,
  cpuSharesToWeight,
  cpusToQuota,
  cpuWeightToShares,
  formatCpuList,
  formatCpuMax,
  formatV2Limit,
  ioWeightToBlkioWeight,
  memorySwapFromV2,
  memorySwapToV2,
  parseCpuList,
  parseCpuMax,
  parseLimit,
  quotaToCpus,
} from '../../src/linux/cgroups';
import { ValidationError } from '../../src/errors';

describe('cgroup value conversions', () => {
  test('cpu shares -> cpu.weight: the curve runc and crun use (2->1, 1024->100, 262144->10000)', () => {
    expect(cpuSharesToWeight(0)).toBe(0);
    expect(cpuSharesToWeight(1)).toBe(1);
    expect(cpuSharesToWeight(2)).toBe(1);
    expect(cpuSharesToWeight(512)).toBe(59);
    expect(cpuSharesToWeight(1024)).toBe(100);
    expect(cpuSharesToWeight(2048)).toBe(174);
    expect(cpuSharesToWeight(262144)).toBe(10000);
    expect(cpuSharesToWeight(500000)).toBe(10000);
  });

  test('the conversion is monotonic over the whole shares range', () => {
    let last = 0;
    for (let shares = 2; shares <= 262144; shares += 97) {
      const weight = cpuSharesToWeight(shares);
      expect(weight).toBeGreaterThanOrEqual(last);
      expect(weight).toBeGreaterThanOrEqual(1);
      expect(weight).toBeLessThanOrEqual(10000);
      last = weight;
    }
  });

  test('cpu.weight -> shares gives back shares that map to the same weight', () => {
    expect(cpuWeightToShares(0)).toBe(0);
    expect(cpuWeightToShares(1)).toBe(2);
    expect(cpuWeightToShares(100)).toBe(1024);
    expect(cpuWeightToShares(10000)).toBe(262144);
    for (const weight of [2, 7, 39, 59, 100, 174, 500, 1000, 4340, 9999]) {
      expect(cpuSharesToWeight(cpuWeightToShares(weight))).toBe(weight);
    }
    for (const shares of [2, 3, 100, 512, 1024, 2048, 4096, 100000]) {
      expect(cpuSharesToWeight(cpuWeightToShares(cpuSharesToWeight(shares)))).toBe(cpuSharesToWeight(shares));
    }
  });

  test('--cpus -> quota/period and back', () => {
    expect(cpusToQuota(0.5)).toEqual({ quota: 50000, period: 100000 });
    expect(cpusToQuota(1.5)).toEqual({ quota: 150000, period: 100000 });
    expect(cpusToQuota(0.01)).toEqual({ quota: 1000, period: 100000 });
    expect(cpusToQuota(2, 50000)).toEqual({ quota: 100000, period: 50000 });
    expect(quotaToCpus(150000, 100000)).toBe(1.5);
    expect(quotaToCpus(-1, 100000)).toBeNull();
  });

  test('cpu.max format and parse', () => {
    expect(formatCpuMax(50000, 100000)).toBe('50000 100000');
    expect(formatCpuMax(-1, 100000)).toBe('max 100000');
    expect(parseCpuMax('max 100000\n')).toEqual({ quota: -1, period: 100000 });
    expect(parseCpuMax('25000 50000')).toEqual({ quota: 25000, period: 50000 });
    expect(parseCpuMax('25000')).toEqual({ quota: 25000, period: 100000 });
    expect(() => parseCpuMax('lots')).toThrow(RangeError);
  });

  test('memory+swap (OCI, v1 memsw) <-> memory.swap.max (v2, swap alone)', () => {
    const m = 64 * 1024 * 1024;
    expect(memorySwapToV2(2 * m, m)).toBe(m);
    expect(memorySwapToV2(m, m)).toBe(0);
    expect(memorySwapToV2(-1, m)).toBe(-1);
    expect(memorySwapToV2(undefined, m)).toBeUndefined();
    expect(memorySwapToV2(0, m)).toBeUndefined();
    // Unlimited memory and no swap value: unlimited swap too, like v1.
    expect(memorySwapToV2(undefined, -1)).toBe(-1);
    // A total without a memory limit has no v2 equivalent.
    expect(() => memorySwapToV2(2 * m, -1)).toThrow(/needs a memory limit/);
    expect(() => memorySwapToV2(m, 2 * m)).toThrow(/below the memory limit/);
    expect(() => memorySwapToV2(m, undefined)).toThrow(/needs a memory limit/);
    expect(memorySwapFromV2(m, m)).toBe(2 * m);
    expect(memorySwapFromV2(-1, m)).toBe(-1);
    expect(memorySwapFromV2(0, -1)).toBe(-1);
  });

  test('blkio weight (10-1000) <-> io.weight (1-10000)', () => {
    expect(blkioWeightToIoWeight(0)).toBe(0);
    expect(blkioWeightToIoWeight(10)).toBe(1);
    expect(blkioWeightToIoWeight(500)).toBe(4950);
    expect(blkioWeightToIoWeight(1000)).toBe(10000);
    expect(ioWeightToBlkioWeight(1)).toBe(10);
    expect(ioWeightToBlkioWeight(10000)).toBe(1000);
    for (const w of [10, 100, 250, 500, 999, 1000]) expect(ioWeightToBlkioWeight(blkioWeightToIoWeight(w))).toBe(w);
  });

  test('limits: "max" and v1\'s PAGE_COUNTER_MAX are -1', () => {
    expect(parseLimit('max\n')).toBe(-1);
    expect(parseLimit('9223372036854771712\n')).toBe(-1);
    expect(parseLimit('-1')).toBe(-1);
    expect(parseLimit('33554432\n')).toBe(33554432);
    expect(() => parseLimit('x')).toThrow(RangeError);
    expect(formatV2Limit(-1)).toBe('max');
    expect(formatV2Limit(4096)).toBe('4096');
  });

  test('cpu lists', () => {
    expect(parseCpuList('0-3,8,10-11\n')).toEqual([0, 1, 2, 3, 8, 10, 11]);
    expect(parseCpuList(' ')).toEqual([]);
    expect(parseCpuList('1,1,0')).toEqual([0, 1]);
    expect(formatCpuList([0, 1, 2, 5, 7, 8])).toBe('0-2,5,7-8');
    expect(formatCpuList([])).toBe('');
    expect(() => parseCpuList('3-1', 'cpusetCpus')).toThrow(ValidationError);
    expect(() => parseCpuList('a', 'cpusetCpus')).toThrow(/cpusetCpus: "a" is not a list/);
    expect(() => parseCpuList('0-99999', 'cpusetCpus')).toThrow(/larger than/);
  });
});
