import { ValidationError } from '../../src/errors';
import { hasResources, MIN_MEMORY, parseBytes, readHostCpus, resourcesFromOptions, validateResources } from '../../src/linux/cgroups';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { useTempDir } from '../helpers/fixtures';

const host = { cpus: [0, 1], mems: [0] };
const MiB = 1024 * 1024;

function fieldOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    if (err instanceof ValidationError) return err.message;
    throw err;
  }
  throw new Error('expected a ValidationError');
}

describe('sizes', () => {
  test.each([
    ['1024', 1024],
    ['10b', 10],
    ['1k', 1024],
    ['1K', 1024],
    ['512m', 512 * MiB],
    ['512mb', 512 * MiB],
    ['512MiB', 512 * MiB],
    ['1g', 1024 * MiB],
    ['1.5g', 1536 * MiB],
    ['2t', 2 * 1024 ** 4],
    [' 32m ', 32 * MiB],
  ])('%s is %d bytes', (text, bytes) => {
    expect(parseBytes(text, 'memory')).toBe(bytes);
  });

  test('numbers pass through; -1 only where unlimited is allowed', () => {
    expect(parseBytes(4096, 'memory')).toBe(4096);
    expect(parseBytes('-1', 'memorySwap', true)).toBe(-1);
    expect(parseBytes(-1, 'memorySwap', true)).toBe(-1);
    expect(() => parseBytes('-1', 'memory')).toThrow('memory: "-1" is negative');
    expect(() => parseBytes(-5, 'memory')).toThrow('memory: -5 is negative');
  });

  test.each(['', 'm', '12x', '1.2.3g', 'lots', '1e9', '0x10'])('%j is not a size', (text) => {
    expect(() => parseBytes(text, 'memory')).toThrow(/is not a size/);
  });
});

describe('resourcesFromOptions: docker run flags', () => {
  test('the issue\'s example flags', () => {
    expect(resourcesFromOptions({ memory: '32m', cpus: '0.5', pidsLimit: 20, cpusetCpus: '0' }, { host })).toEqual({
      // --memory-swap unset: as much swap as memory (Docker's default).
      memory: { limit: 32 * MiB, swap: 64 * MiB },
      cpu: { quota: 50000, period: 100000, cpus: '0' },
      pids: { limit: 20 },
    });
  });

  test('every flag', () => {
    expect(
      resourcesFromOptions(
        {
          memory: '64m',
          memorySwap: '-1',
          memoryReservation: '32m',
          cpuPeriod: '50000',
          cpuQuota: '25000',
          cpuShares: '512',
          cpusetCpus: '0-1',
          cpusetMems: '0',
          pidsLimit: '100',
          blkioWeight: '300',
        },
        { host },
      ),
    ).toEqual({
      memory: { limit: 64 * MiB, swap: -1, reservation: 32 * MiB },
      cpu: { shares: 512, period: 50000, quota: 25000, cpus: '0-1', mems: '0' },
      pids: { limit: 100 },
      blockIO: { weight: 300 },
    });
  });

  test('nothing given is nothing set', () => {
    const r = resourcesFromOptions({}, { host });
    expect(r).toEqual({});
    expect(hasResources(r)).toBe(false);
    expect(hasResources(resourcesFromOptions({ pidsLimit: 5 }, { host }))).toBe(true);
  });

  test('--pids-limit 0 and -1 are unlimited', () => {
    expect(resourcesFromOptions({ pidsLimit: 0 }, { host }).pids).toEqual({ limit: -1 });
    expect(resourcesFromOptions({ pidsLimit: '-1' }, { host }).pids).toEqual({ limit: -1 });
  });

  test('update changes only what is given (no swap default)', () => {
    expect(resourcesFromOptions({ memory: '64m' }, { host, mode: 'update' })).toEqual({ memory: { limit: 64 * MiB } });
    // A swap limit alone is fine on update: the cgroup has a memory limit already.
    expect(resourcesFromOptions({ memorySwap: '128m' }, { host, mode: 'update' })).toEqual({ memory: { swap: 128 * MiB } });
  });

  test.each<[string, Parameters<typeof resourcesFromOptions>[0], RegExp]>([
    ['-m 1k: below the kernel minimum', { memory: '1k' }, /^memory: 1 KiB is below the minimum of 6 MiB/],
    ['-m 5m', { memory: '5m' }, /^memory: 5 MiB is below the minimum of 6 MiB/],
    ['--cpus 0', { cpus: '0' }, /^cpus: must be more than 0 \(from 0\.01 to 2/],
    ['--cpus -1', { cpus: '-1' }, /^cpus: must be more than 0/],
    ['--cpus 0.001', { cpus: '0.001' }, /^cpus: 0\.001 is below the minimum of 0\.01/],
    ['--cpus 3 on 2 CPUs', { cpus: '3' }, /^cpus: 3 is more than the 2 CPUs this host has/],
    ['--cpus abc', { cpus: 'abc' }, /^cpus: "abc" is not a number/],
    ['--cpus with --cpu-quota', { cpus: '1', cpuQuota: 50000 }, /^cpus: cannot be combined with cpuPeriod or cpuQuota/],
    ['--cpuset-cpus outside the host', { cpusetCpus: '0-3' }, /^cpusetCpus: CPUs 2-3 are not available on this host \(online: 0-1\)/],
    ['--cpuset-cpus 7', { cpusetCpus: '7' }, /^cpusetCpus: CPUs 7 are not available/],
    ['--cpuset-cpus garbage', { cpusetCpus: 'zero' }, /^cpusetCpus: "zero" is not a list/],
    ['--cpuset-cpus empty', { cpusetCpus: '' }, /^cpusetCpus: is empty/],
    ['--cpuset-mems 1 on one node', { cpusetMems: '1' }, /^cpusetMems: memory nodes 1 are not available on this host \(online: 0\)/],
    ['--memory-swap below --memory', { memory: '64m', memorySwap: '32m' }, /^memorySwap: 32 MiB is below the memory limit \(64 MiB\)/],
    ['--memory-swap without --memory', { memorySwap: '64m' }, /^memorySwap: a memory\+swap limit needs a memory limit \(memory\)/],
    ['--memory-reservation above --memory', { memory: '32m', memoryReservation: '64m' }, /^memoryReservation: 64 MiB is above the memory limit/],
    ['--memory-reservation 1k', { memoryReservation: '1k' }, /^memoryReservation: 1 KiB is below the minimum/],
    ['--memory negative', { memory: '-64m' }, /^memory: "-64m" is negative/],
    ['--cpu-shares 1', { cpuShares: 1 }, /^cpuShares: 1 is outside 2-262144/],
    ['--cpu-shares -5', { cpuShares: '-5' }, /^cpuShares: -5 is outside 2-262144/],
    ['--cpu-shares 1.5', { cpuShares: '1.5' }, /^cpuShares: "1.5" is not an integer/],
    ['--cpu-period 100', { cpuPeriod: 100 }, /^cpuPeriod: 100 is outside 1000-1000000/],
    ['--cpu-period 2s', { cpuPeriod: 2_000_000 }, /^cpuPeriod: 2000000 is outside/],
    ['--cpu-quota 500', { cpuQuota: 500 }, /^cpuQuota: 500 is below the minimum of 1000/],
    ['--cpu-quota -2', { cpuQuota: -2 }, /^cpuQuota: -2 is negative \(-1 means no quota\)/],
    ['--pids-limit -2', { pidsLimit: -2 }, /^pidsLimit: -2 is negative/],
    ['--blkio-weight 5', { blkioWeight: 5 }, /^blkioWeight: 5 is outside 10-1000/],
    ['--blkio-weight 1001', { blkioWeight: 1001 }, /^blkioWeight: 1001 is outside 10-1000/],
  ])('%s', (_, options, message) => {
    expect(fieldOf(() => resourcesFromOptions(options, { host }))).toMatch(message);
  });

  test('errors are ValidationErrors with code EINVAL and the option as field', () => {
    try {
      resourcesFromOptions({ memory: '1k' }, { host });
      throw new Error('not thrown');
    } catch (err) {
      expect(err).toBeInstanceOf(ValidationError);
      expect((err as ValidationError).code).toBe('EINVAL');
      expect((err as ValidationError).field).toBe('memory');
    }
  });

  test('the minimum itself is accepted', () => {
    expect(resourcesFromOptions({ memory: MIN_MEMORY, memorySwap: MIN_MEMORY }, { host }).memory).toEqual({ limit: MIN_MEMORY, swap: MIN_MEMORY });
  });
});

describe('validateResources: OCI linux.resources', () => {
  test('errors name the config.json field', () => {
    expect(fieldOf(() => validateResources({ memory: { limit: 1024 } }, { host }))).toMatch(/^linux\.resources\.memory\.limit: 1 KiB is below/);
    expect(fieldOf(() => validateResources({ memory: { limit: -2 } }, { host }))).toMatch(/^linux\.resources\.memory\.limit: -2 is negative \(-1 means unlimited\)/);
    expect(fieldOf(() => validateResources({ cpu: { cpus: '5' } }, { host }))).toMatch(/^linux\.resources\.cpu\.cpus: CPUs 5 are not available/);
    expect(fieldOf(() => validateResources({ pids: { limit: 1.5 } }, { host }))).toMatch(/^linux\.resources\.pids\.limit: 1\.5 is not an integer/);
  });

  test('unlimited values and unset zeros pass', () => {
    expect(() =>
      validateResources({ memory: { limit: -1, swap: -1, reservation: -1 }, cpu: { quota: -1, shares: 0, period: 0 }, pids: { limit: -1 }, blockIO: { weight: 0 } }, { host }),
    ).not.toThrow();
  });
});

describe('host CPUs', () => {
  const tmp = useTempDir('tsrun-cpus-');

  test('read from the online files; no NUMA node file means node 0', () => {
    fs.writeFileSync(path.join(tmp(), 'cpus'), '0-3,6\n');
    expect(readHostCpus({ cpusOnline: path.join(tmp(), 'cpus'), nodesOnline: path.join(tmp(), 'none') })).toEqual({ cpus: [0, 1, 2, 3, 6], mems: [0] });
    fs.writeFileSync(path.join(tmp(), 'nodes'), '0-1\n');
    expect(readHostCpus({ cpusOnline: path.join(tmp(), 'cpus'), nodesOnline: path.join(tmp(), 'nodes') }).mems).toEqual([0, 1]);
  });

  test('this host', () => {
    const own = readHostCpus();
    expect(own.cpus.length).toBeGreaterThan(0);
    expect(own.mems).toContain(0);
  });
});
