import * as fs from 'node:fs';
import * as path from 'node:path';
import { SyscallError, TsrunError, ValidationError } from '../../src/errors';
import { listContainerCgroups, removeCgroupParent } from '../../src/linux/cgroups';
import { V2Driver } from '../../src/linux/cgroups/v2';
import { fakeOps, fakeV2Tree, readFixture, setFixture, useBuiltInCgroupParent } from '../helpers/cgroups';
import { useTempDir } from '../helpers/fixtures';

const MiB = 1024 * 1024;
const ID = 'beef01';

useBuiltInCgroupParent();

describe('V2Driver on a fake cgroup v2 tree', () => {
  const tmp = useTempDir('tsrun-cgv2-');
  let root: string;
  let n = 0;
  beforeEach(() => {
    root = path.join(tmp(), `t${n++}`);
  });
  const dir = (id = ID): string => path.join(root, 'tsrun', id);
  const read = (file: string): string => readFixture(dir(), file).trim();

  test('create enables the controllers down the path and writes every limit, converted', () => {
    fakeV2Tree(root, ID);
    const cg = new V2Driver(root, ID);
    const warnings = cg.create({
      memory: { limit: 32 * MiB, swap: 96 * MiB, reservation: 16 * MiB },
      cpu: { shares: 512, quota: 50000, period: 100000, cpus: '0-1', mems: '0' },
      pids: { limit: 20 },
      blockIO: { weight: 500 },
    });
    expect(warnings).toEqual([]);
    // subtree_control of the root and of the parent, not of the container's own cgroup (a leaf).
    expect(readFixture(root, 'cgroup.subtree_control')).toBe('+cpu +cpuset +io +memory +pids');
    expect(readFixture(path.join(root, 'tsrun'), 'cgroup.subtree_control')).toBe('+cpu +cpuset +io +memory +pids');
    expect(read('cgroup.subtree_control')).toBe('');
    expect(read('memory.max')).toBe(String(32 * MiB));
    // OCI swap is memory+swap; memory.swap.max is the swap alone.
    expect(read('memory.swap.max')).toBe(String(64 * MiB));
    expect(read('memory.low')).toBe(String(16 * MiB));
    expect(read('cpu.weight')).toBe('59');
    expect(read('cpu.max')).toBe('50000 100000');
    expect(read('cpuset.cpus')).toBe('0-1');
    expect(read('cpuset.mems')).toBe('0');
    expect(read('pids.max')).toBe('20');
    expect(read('io.weight')).toBe('default 4950');
    expect(cg.limits()).toEqual({
      memory: { limit: 32 * MiB, swap: 96 * MiB, reservation: 16 * MiB },
      // Shares to weight is many-to-one: 512 -> 59 reads back as 521 (which is 59 as well).
      cpu: { shares: 521, quota: 50000, period: 100000, cpus: '0-1', mems: '0' },
      pids: { limit: 20 },
      blockIO: { weight: 500 },
    });
  });

  test('controllers already enabled are not written again; only those the level offers are asked for', () => {
    fakeV2Tree(root, ID);
    setFixture(root, { 'cgroup.controllers': 'cpu memory pids hugetlb\n', 'cgroup.subtree_control': 'cpu memory pids\n' });
    setFixture(path.join(root, 'tsrun'), { 'cgroup.controllers': 'cpu memory pids\n', 'cgroup.subtree_control': 'memory\n' });
    new V2Driver(root, ID).create();
    expect(readFixture(root, 'cgroup.subtree_control')).toBe('cpu memory pids\n');
    expect(readFixture(path.join(root, 'tsrun'), 'cgroup.subtree_control')).toBe('+cpu +pids');
  });

  test('a nested parent: every level gets the controllers', () => {
    fakeV2Tree(root, ID, { parent: 'tsrun/ci' });
    setFixture(path.join(root, 'tsrun'), { 'cgroup.procs': '', 'cgroup.controllers': 'cpu memory\n', 'cgroup.subtree_control': '\n' });
    const cg = new V2Driver(root, ID, { parent: 'tsrun/ci' });
    cg.create({ pids: { limit: 3 } });
    expect(cg.dir).toBe(path.join(root, 'tsrun', 'ci', ID));
    expect(readFixture(path.join(root, 'tsrun'), 'cgroup.subtree_control')).toBe('+cpu +memory');
    expect(readFixture(path.join(root, 'tsrun', 'ci'), 'cgroup.subtree_control')).toBe('+cpu +cpuset +io +memory +pids');
  });

  test('unlimited and partial updates', () => {
    fakeV2Tree(root, ID);
    const cg = new V2Driver(root, ID);
    cg.create({ memory: { limit: 32 * MiB, swap: 64 * MiB }, cpu: { quota: 50000, period: 100000 }, pids: { limit: 5 } });
    // Only the period: the quota stays.
    cg.update({ cpu: { period: 200000 } });
    expect(read('cpu.max')).toBe('50000 200000');
    // Only the quota: the period stays.
    cg.update({ cpu: { quota: 25000 } });
    expect(read('cpu.max')).toBe('25000 200000');
    cg.update({ cpu: { quota: -1 } });
    expect(read('cpu.max')).toBe('max 200000');
    // A swap total alone is converted against the current memory.max.
    cg.update({ memory: { swap: 48 * MiB } });
    expect(read('memory.swap.max')).toBe(String(16 * MiB));
    expect(() => cg.update({ memory: { swap: 16 * MiB } })).toThrow(ValidationError);
    // Unlimited memory without a swap value: unlimited swap too.
    cg.update({ memory: { limit: -1 }, pids: { limit: -1 } });
    expect(read('memory.max')).toBe('max');
    expect(read('memory.swap.max')).toBe('max');
    expect(read('pids.max')).toBe('max');
    // No reservation is no protection.
    cg.update({ memory: { reservation: -1 } });
    expect(read('memory.low')).toBe('0');
  });

  test('io weight: io.bfq.weight takes the blkio range as is; neither file is a warning', () => {
    fakeV2Tree(root, ID, { files: { 'io.bfq.weight': 'default 100\n' } });
    const cg = new V2Driver(root, ID);
    expect(cg.create({ blockIO: { weight: 300 } })).toEqual([]);
    expect(read('io.bfq.weight')).toBe('300');
    expect(cg.limits().blockIO).toEqual({ weight: 300 });
    fs.rmSync(path.join(dir(), 'io.bfq.weight'));
    fs.rmSync(path.join(dir(), 'io.weight'));
    expect(cg.update({ blockIO: { weight: 300 } })).toEqual([expect.stringMatching(/^blkio weight: this kernel has no io\.weight or io\.bfq\.weight/)]);
  });

  test('no memory.swap.max (no swap accounting): a warning', () => {
    fakeV2Tree(root, ID, { omit: ['memory.swap.max'] });
    expect(new V2Driver(root, ID).create({ memory: { limit: 32 * MiB, swap: 64 * MiB } })).toEqual([expect.stringMatching(/does not account swap/)]);
  });

  test('a limit whose controller the parent does not pass down is an error naming what is there', () => {
    fakeV2Tree(root, ID, { files: { 'cgroup.controllers': 'cpu memory\n' } });
    const cg = new V2Driver(root, ID);
    expect(() => cg.create({ pids: { limit: 5 } })).toThrow(TsrunError);
    expect(() => cg.create({ pids: { limit: 5 } })).toThrow(/a pids limit needs the pids controller, which .*tsrun does not pass down \(its cgroup.controllers has: cpu memory\)/);
    expect(() => cg.create({ cpu: { cpus: '0' } })).toThrow(/needs the cpuset controller/);
  });

  test('EBUSY on subtree_control (no internal processes) is explained', () => {
    fakeV2Tree(root, ID);
    // A directory where the file should be makes the write fail; the message is what matters here.
    fs.rmSync(path.join(root, 'tsrun', 'cgroup.subtree_control'));
    fs.mkdirSync(path.join(root, 'tsrun', 'cgroup.subtree_control'));
    expect(() => new V2Driver(root, ID).create()).toThrow(SyscallError);
  });

  test('joinSteps, addProcess, and an fd for CLONE_INTO_CGROUP', () => {
    fakeV2Tree(root, ID);
    const cg = new V2Driver(root, ID);
    expect(cg.joinSteps()).toEqual([
      { op: 'WriteFile', args: [fs.constants.O_WRONLY], strs: [path.join(dir(), 'cgroup.procs'), '0'], phase: 'cgroups', target: path.join(dir(), 'cgroup.procs'), detail: "joining the container's cgroup" },
    ]);
    cg.addProcess(31337);
    expect(read('cgroup.procs')).toBe('31337');
    const fd = cg.openCgroupFd();
    try {
      expect(fs.fstatSync(fd).isDirectory()).toBe(true);
      expect(fs.readlinkSync(`/proc/self/fd/${fd}`)).toBe(dir());
    } finally {
      fs.closeSync(fd);
    }
  });

  test('stats from the v2 files', () => {
    fakeV2Tree(root, ID, {
      files: {
        'cpu.stat': 'usage_usec 2500000\nuser_usec 2000000\nsystem_usec 500000\nnr_periods 40\nnr_throttled 12\nthrottled_usec 345000\n',
        'memory.current': '10485760\n',
        'memory.max': '33554432\n',
        'memory.peak': '20971520\n',
        'memory.stat': 'anon 6291456\nfile 4194304\ninactive_file 2097152\n',
        'pids.current': '3\n',
        'pids.max': '20\n',
        'io.stat': '8:0 rbytes=4096 wbytes=8192 rios=1 wios=2 dbytes=0 dios=0\n8:16 rbytes=100 wbytes=0 rios=1 wios=0 dbytes=0 dios=0\n',
      },
    });
    expect(new V2Driver(root, ID).stats()).toEqual({
      cpu: { usageNs: 2.5e9, userNs: 2e9, systemNs: 5e8, periods: 40, throttledPeriods: 12, throttledNs: 345000000 },
      memory: { usage: 10 * MiB, limit: 32 * MiB, maxUsage: 20 * MiB, inactiveFile: 2 * MiB, workingSet: 8 * MiB },
      pids: { current: 3, limit: 20 },
      blockIO: { readBytes: 4196, writeBytes: 8192 },
    });
  });

  test('OOM: memory.events oom_kill', () => {
    fakeV2Tree(root, ID);
    const cg = new V2Driver(root, ID);
    expect(cg.oomKilled()).toBe(false);
    setFixture(dir(), { 'memory.events': 'low 0\nhigh 0\nmax 131\noom 2\noom_kill 1\noom_group_kill 0\n' });
    expect(cg.memoryEvents()).toEqual({ oomKills: 1, ooms: 2, limitHits: 131 });
    expect(cg.oomKilled()).toBe(true);
    // Limit hits alone are reclaim, not a kill.
    setFixture(dir(), { 'memory.events': 'low 0\nhigh 0\nmax 131\noom 0\noom_kill 0\noom_group_kill 0\n' });
    expect(cg.oomKilled()).toBe(false);
  });

  test('destroy with cgroup.kill: one write, then rmdir retried until the processes are gone', async () => {
    fakeV2Tree(root, ID);
    setFixture(dir(), { 'cgroup.procs': '501\n502\n' });
    const ops = fakeOps(root);
    let rmdirs = 0;
    const cg = new V2Driver(root, ID, {
      ops: {
        ...ops,
        rmdir: (d) => {
          rmdirs++;
          // The kernel empties the cgroup a little after cgroup.kill.
          if (rmdirs === 2) fs.writeFileSync(path.join(dir(), 'cgroup.procs'), '');
          ops.rmdir(d);
        },
      },
    });
    await cg.destroy();
    expect(read.bind(null, 'cgroup.kill')).toThrow();
    expect(fs.existsSync(dir())).toBe(false);
    expect(rmdirs).toBe(2);
    expect(ops.killed).toEqual([]);
  });

  test('destroy without cgroup.kill (before 5.14): freeze, kill each, thaw', async () => {
    fakeV2Tree(root, ID, { omit: ['cgroup.kill'] });
    setFixture(dir(), { 'cgroup.procs': '601\n', 'cgroup.events': 'populated 1\nfrozen 1\n' });
    const ops = fakeOps(root);
    const freezeStates: string[] = [];
    const cg = new V2Driver(root, ID, {
      ops: {
        ...ops,
        kill: (pid, signal) => {
          freezeStates.push(read('cgroup.freeze'));
          ops.kill(pid, signal);
        },
      },
    });
    await cg.destroy();
    expect(ops.killed).toEqual([601]);
    expect(freezeStates).toEqual(['1']);
    expect(cg.exists()).toBe(false);
  });

  test('leftovers on a unified host, and the parent removed once empty', async () => {
    fakeV2Tree(root, 'one');
    fakeV2Tree(root, 'two');
    const host = { mode: 'unified' as const, v1Mounts: {}, unifiedMount: root, own: {} };
    expect(listContainerCgroups({ host }).map((c) => [c.id, c.paths])).toEqual([
      ['one', [path.join(root, 'tsrun', 'one')]],
      ['two', [path.join(root, 'tsrun', 'two')]],
    ]);
    const ops = fakeOps(root);
    for (const id of ['one', 'two']) await new V2Driver(root, id, { ops }).destroy();
    expect(removeCgroupParent({ host, ops })).toBe(true);
    expect(fs.existsSync(path.join(root, 'tsrun'))).toBe(false);
    expect(fs.existsSync(root)).toBe(true);
  });
});
