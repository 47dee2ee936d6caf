import * as fs from 'node:fs';
import * as path from 'node:path';
import { CgroupStats, cpuPercent, parseBlkioServiceBytes, parseIoStat, readSystemCpuNs, sampleStats, StatsSample, statsView } from '../../src/linux/cgroups';
import { useTempDir } from '../helpers/fixtures';

const MiB = 1024 * 1024;

function stats(usageNs: number, memory: Partial<CgroupStats['memory']> = {}): CgroupStats {
  return {
    cpu: { usageNs, userNs: 0, systemNs: 0, periods: 0, throttledPeriods: 0, throttledNs: 0 },
    memory: { usage: 10 * MiB, limit: 32 * MiB, maxUsage: null, inactiveFile: 2 * MiB, workingSet: 8 * MiB, ...memory },
    pids: { current: 4, limit: 20 },
    blockIO: { readBytes: 100, writeBytes: 200 },
  };
}

function sample(usageNs: number, systemCpuNs: number, onlineCpus = 2, memory?: Partial<CgroupStats['memory']>): StatsSample {
  return { at: 0, stats: stats(usageNs, memory), systemCpuNs, onlineCpus };
}

describe('cgroup stats', () => {
  const tmp = useTempDir('tsrun-cgstats-');

  test('CPU % as docker computes it: container delta / host delta x CPUs', () => {
    // 1 s of wall time on 2 CPUs is 2 s of host CPU time; the container used 0.5 s: half a CPU.
    expect(cpuPercent(sample(1e9, 100e9), sample(1.5e9, 102e9))).toBeCloseTo(50);
    // Two busy CPUs: 200%.
    expect(cpuPercent(sample(0, 0), sample(2e9, 2e9))).toBeCloseTo(200);
    // Nothing measurable: 0, never NaN or negative.
    expect(cpuPercent(sample(1e9, 100e9), sample(1e9, 100e9))).toBe(0);
    expect(cpuPercent(sample(2e9, 100e9), sample(1e9, 101e9))).toBe(0);
  });

  test('a docker stats row: working set over the limit, host memory when unlimited', () => {
    const row = statsView(sample(0, 0), sample(1e9, 2e9), 1024 * MiB);
    expect(row).toEqual({ cpuPercent: 100, memoryUsage: 8 * MiB, memoryLimit: 32 * MiB, memoryPercent: 25, pids: 4, blockRead: 100, blockWrite: 200 });
    const unlimited = statsView(sample(0, 0), sample(0, 1e9, 2, { limit: null }), 1024 * MiB);
    expect(unlimited.memoryLimit).toBe(1024 * MiB);
    expect(unlimited.memoryPercent).toBeCloseTo(100 * (8 / 1024));
  });

  test('/proc/stat: the first line\'s ticks, in nanoseconds', () => {
    const file = path.join(tmp(), 'stat');
    fs.writeFileSync(file, 'cpu  100 5 50 1000 10 1 2 3 0 0\ncpu0 50 2 25 500 5 0 1 1 0 0\nintr 1\n');
    expect(readSystemCpuNs(file)).toBe((100 + 5 + 50 + 1000 + 10 + 1 + 2 + 3) * 1e7);
    expect(readSystemCpuNs()).toBeGreaterThan(0);
  });

  test('sampleStats reads the cgroup and the host together', () => {
    const file = path.join(tmp(), 'stat2');
    fs.writeFileSync(file, 'cpu  1 0 0 0 0 0 0 0 0 0\n');
    const online = path.join(tmp(), 'online');
    fs.writeFileSync(online, '0-3\n');
    const s = sampleStats({ stats: () => stats(7) }, { procStat: file, cpusOnline: online });
    expect(s).toMatchObject({ systemCpuNs: 1e7, onlineCpus: 4, stats: { cpu: { usageNs: 7 } } });
  });

  test('block I/O parsers', () => {
    expect(parseBlkioServiceBytes(null)).toEqual({ readBytes: 0, writeBytes: 0 });
    expect(parseBlkioServiceBytes('Total 0\n')).toEqual({ readBytes: 0, writeBytes: 0 });
    expect(parseBlkioServiceBytes('254:0 Read 4096\n254:0 Write 12288\n254:0 Total 16384\n7:0 Read 10\nTotal 16394\n')).toEqual({ readBytes: 4106, writeBytes: 12288 });
    expect(parseIoStat('254:0 rbytes=4096 wbytes=12288 rios=1 wios=3 dbytes=0 dios=0\n')).toEqual({ readBytes: 4096, writeBytes: 12288 });
    expect(parseIoStat('')).toEqual({ readBytes: 0, writeBytes: 0 });
  });
});
