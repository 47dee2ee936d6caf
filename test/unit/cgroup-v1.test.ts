import * as fs from 'node:fs';
import * as path from 'node:path';
import { SyscallError, TsrunError, ValidationError } from '../../src/errors';
import { cgroupHostFrom, findLeftoverCgroups, listContainerCgroups, removeCgroupParent, removeLeftoverCgroups } from '../../src/linux/cgroups';
import { V1Driver } from '../../src/linux/cgroups/v1';
import { serializePlan } from '../../src/runtime/plan';
import { fakeOps, fakeV1Tree, readFixture, setFixture, useBuiltInCgroupParent } from '../helpers/cgroups';
import { useTempDir } from '../helpers/fixtures';

const MiB = 1024 * 1024;
const ID = 'c0ffee';

useBuiltInCgroupParent();

describe('V1Driver on a fake cgroup v1 tree', () => {
  const tmp = useTempDir('tsrun-cgv1-');
  let root: string;
  let n = 0;
  beforeEach(() => {
    root = path.join(tmp(), `t${n++}`);
  });
  const dir = (controller: string, id = ID): string => path.join(root, controller, 'tsrun', id);
  const read = (controller: string, file: string): string => readFixture(dir(controller), file).trim();

  test('create applies every limit to its controller\'s file', () => {
    fakeV1Tree(root, ID, { unified: true });
    const cg = new V1Driver(root, ID, { unifiedMount: path.join(root, 'unified') });
    const warnings = cg.create({
      memory: { limit: 32 * MiB, swap: 64 * MiB, reservation: 16 * MiB },
      cpu: { shares: 512, quota: 50000, period: 100000, cpus: '0-1', mems: '0' },
      pids: { limit: 20 },
      blockIO: { weight: 300 },
    });
    expect(warnings).toEqual([]);
    expect(read('memory', 'memory.limit_in_bytes')).toBe(String(32 * MiB));
    expect(read('memory', 'memory.memsw.limit_in_bytes')).toBe(String(64 * MiB));
    expect(read('memory', 'memory.soft_limit_in_bytes')).toBe(String(16 * MiB));
    expect(read('cpu', 'cpu.shares')).toBe('512');
    expect(read('cpu', 'cpu.cfs_quota_us')).toBe('50000');
    expect(read('cpu', 'cpu.cfs_period_us')).toBe('100000');
    expect(read('cpuset', 'cpuset.cpus')).toBe('0-1');
    expect(read('cpuset', 'cpuset.mems')).toBe('0');
    expect(read('pids', 'pids.max')).toBe('20');
    expect(read('blkio', 'blkio.bfq.weight')).toBe('300');
    expect(cg.limits()).toEqual({
      memory: { limit: 32 * MiB, swap: 64 * MiB, reservation: 16 * MiB },
      cpu: { shares: 512, quota: 50000, period: 100000, cpus: '0-1', mems: '0' },
      pids: { limit: 20 },
      blockIO: { weight: 300 },
    });
  });

  test('the parent\'s cgroup.clone_children is set, so that the kernel gives each new container its cpuset', () => {
    fakeV1Tree(root, ID, { files: { cpuset: { 'cgroup.clone_children': '0\n' } } });
    new V1Driver(root, ID).create();
    expect(readFixture(path.join(root, 'cpuset', 'tsrun'), 'cgroup.clone_children').trim()).toBe('1');
    expect(read('cpuset', 'cpuset.cpus')).toBe('0-3');
  });

  test('a new cpuset, and the parent, take the CPUs and nodes of the level above (v1 starts them empty)', () => {
    fakeV1Tree(root, ID);
    new V1Driver(root, ID).create();
    expect(readFixture(path.join(root, 'cpuset', 'tsrun'), 'cpuset.cpus').trim()).toBe('0-3');
    expect(readFixture(path.join(root, 'cpuset', 'tsrun'), 'cpuset.mems').trim()).toBe('0');
    expect(read('cpuset', 'cpuset.cpus')).toBe('0-3');
    expect(read('cpuset', 'cpuset.mems')).toBe('0');
    // Untouched limits keep the kernel's defaults.
    expect(read('memory', 'memory.limit_in_bytes')).toBe('9223372036854771712');
    expect(read('pids', 'pids.max')).toBe('max');
  });

  test('a cpuset already set is not overwritten', () => {
    fakeV1Tree(root, ID);
    setFixture(dir('cpuset'), { 'cpuset.cpus': '1\n' });
    new V1Driver(root, ID).create();
    expect(read('cpuset', 'cpuset.cpus')).toBe('1');
  });

  test('unlimited values: -1 for memory and quota, max for pids', () => {
    fakeV1Tree(root, ID);
    const cg = new V1Driver(root, ID);
    cg.create({ memory: { limit: 32 * MiB, swap: 64 * MiB }, pids: { limit: 5 }, cpu: { quota: 20000 } });
    cg.update({ memory: { limit: -1 }, pids: { limit: -1 }, cpu: { quota: -1 } });
    // Unlimited memory lifts memory+swap too, or the kernel would refuse it.
    expect(read('memory', 'memory.limit_in_bytes')).toBe('-1');
    expect(read('memory', 'memory.memsw.limit_in_bytes')).toBe('-1');
    expect(read('pids', 'pids.max')).toBe('max');
    expect(read('cpu', 'cpu.cfs_quota_us')).toBe('-1');
  });

  test('memory and memory+swap updates end with both values (the write order is checked on the real kernel, which refuses memory > memsw)', () => {
    fakeV1Tree(root, ID);
    const cg = new V1Driver(root, ID);
    cg.create({ memory: { limit: 32 * MiB, swap: 64 * MiB } });
    cg.update({ memory: { limit: 256 * MiB, swap: 512 * MiB } });
    expect(cg.limits().memory).toMatchObject({ limit: 256 * MiB, swap: 512 * MiB });
    cg.update({ memory: { limit: 16 * MiB, swap: 24 * MiB } });
    expect(cg.limits().memory).toMatchObject({ limit: 16 * MiB, swap: 24 * MiB });
  });

  test('a swap limit below the current memory limit is refused before the kernel sees it', () => {
    fakeV1Tree(root, ID);
    const cg = new V1Driver(root, ID);
    cg.create({ memory: { limit: 64 * MiB, swap: 128 * MiB } });
    expect(() => cg.update({ memory: { swap: 32 * MiB } })).toThrow(ValidationError);
    cg.update({ memory: { swap: 96 * MiB } });
    expect(read('memory', 'memory.memsw.limit_in_bytes')).toBe(String(96 * MiB));
  });

  test('no swap accounting (no memsw file): a warning, the memory limit still applies', () => {
    fakeV1Tree(root, ID);
    fs.rmSync(path.join(dir('memory'), 'memory.memsw.limit_in_bytes'));
    const cg = new V1Driver(root, ID);
    const warnings = cg.create({ memory: { limit: 32 * MiB, swap: 64 * MiB } });
    expect(warnings).toEqual([expect.stringMatching(/does not account swap .*swapaccount=1/)]);
    expect(read('memory', 'memory.limit_in_bytes')).toBe(String(32 * MiB));
    expect(cg.limits().memory).toEqual({ limit: 32 * MiB, reservation: -1 });
  });

  test('blkio weight: CFQ\'s blkio.weight where BFQ\'s is missing, a warning where both are', () => {
    fakeV1Tree(root, ID);
    fs.rmSync(path.join(dir('blkio'), 'blkio.bfq.weight'));
    fs.writeFileSync(path.join(dir('blkio'), 'blkio.weight'), '500\n');
    const cg = new V1Driver(root, ID);
    expect(cg.create({ blockIO: { weight: 700 } })).toEqual([]);
    expect(read('blkio', 'blkio.weight')).toBe('700');
    fs.rmSync(path.join(dir('blkio'), 'blkio.weight'));
    expect(cg.update({ blockIO: { weight: 700 } })).toEqual([expect.stringMatching(/^blkio weight: this kernel has no blkio\.weight or blkio\.bfq\.weight/)]);
  });

  test('a limit whose controller is not mounted is an error naming it; other controllers are optional', () => {
    fakeV1Tree(root, ID, { controllers: ['cpu', 'cpuacct', 'memory', 'freezer'] });
    const cg = new V1Driver(root, ID);
    expect(cg.paths.map((p) => path.relative(root, p))).toEqual(['cpu/tsrun/c0ffee', 'cpuacct/tsrun/c0ffee', 'memory/tsrun/c0ffee', 'freezer/tsrun/c0ffee']);
    expect(() => cg.create({ pids: { limit: 5 } })).toThrow(TsrunError);
    expect(() => cg.create({ pids: { limit: 5 } })).toThrow('cgroups: a pids limit needs the pids controller, which this host does not mount');
    expect(cg.create({ memory: { limit: 32 * MiB } })).toEqual([]);
  });

  test('a file the kernel refuses: SyscallError naming the file and the value', () => {
    fakeV1Tree(root, ID);
    fs.rmSync(path.join(dir('cpu'), 'cpu.shares'));
    fs.mkdirSync(path.join(dir('cpu'), 'cpu.shares'));
    const cg = new V1Driver(root, ID);
    let error: unknown;
    try {
      cg.update({ cpu: { shares: 512 } });
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(SyscallError);
    expect((error as SyscallError).message).toMatch(/^cgroups: open .*cpu\/tsrun\/c0ffee\/cpu\.shares: EISDIR \(.*; cpu\.shares "512"\)$/);
  });

  test('create removes what it made when a limit fails', () => {
    fakeV1Tree(root, ID);
    // A fresh id: its directories do not exist, so create makes them, and then fails (no limit files).
    const cg = new V1Driver(root, 'fresh', { ops: fakeOps(root) });
    expect(() => cg.create({ pids: { limit: 5 } })).toThrow(SyscallError);
    expect(fs.existsSync(dir('pids', 'fresh'))).toBe(false);
    expect(fs.existsSync(dir('memory', 'fresh'))).toBe(false);
    // The parent was there before: kept.
    expect(fs.existsSync(path.join(root, 'pids', 'tsrun'))).toBe(true);
  });

  test('joinSteps: one write of "0" per hierarchy, O_WRONLY: to v1 tasks (the thread alone, no global lock), to cgroup2 cgroup.procs', () => {
    fakeV1Tree(root, ID, { unified: true });
    const cg = new V1Driver(root, ID, { unifiedMount: path.join(root, 'unified') });
    const steps = cg.joinSteps();
    expect(steps.map((s) => path.relative(root, s.strs?.[0] ?? ''))).toEqual([
      'cpu/tsrun/c0ffee/tasks',
      'cpuacct/tsrun/c0ffee/tasks',
      'cpuset/tsrun/c0ffee/tasks',
      'memory/tsrun/c0ffee/tasks',
      'pids/tsrun/c0ffee/tasks',
      'blkio/tsrun/c0ffee/tasks',
      'freezer/tsrun/c0ffee/tasks',
      'unified/tsrun/c0ffee/cgroup.procs',
    ]);
    for (const step of steps) {
      expect(step).toMatchObject({ op: 'WriteFile', args: [fs.constants.O_WRONLY], phase: 'cgroups', target: step.strs?.[0] });
      expect(step.strs?.[1]).toBe('0');
    }
    // They serialize into a plan (the executor's wire format).
    expect(() => serializePlan([...steps, { op: 'Exec', lists: [['/bin/true'], ['true'], []], phase: 'process' }])).not.toThrow();
  });

  test('addProcess writes the pid to every hierarchy', () => {
    fakeV1Tree(root, ID);
    const cg = new V1Driver(root, ID);
    cg.addProcess(4242);
    for (const p of cg.paths) expect(readFixture(p, 'cgroup.procs')).toBe('4242');
    expect(cg.openCgroupFd()).toBeNull();
  });

  test('stats from the v1 files', () => {
    fakeV1Tree(root, ID, {
      files: {
        cpuacct: { 'cpuacct.usage': '2500000000\n', 'cpuacct.usage_user': '2000000000\n', 'cpuacct.usage_sys': '500000000\n' },
        cpu: { 'cpu.stat': 'nr_periods 40\nnr_throttled 12\nthrottled_time 345000000\n' },
        memory: {
          'memory.usage_in_bytes': '10485760\n',
          'memory.limit_in_bytes': '33554432\n',
          'memory.max_usage_in_bytes': '20971520\n',
          'memory.stat': 'cache 4194304\nrss 6291456\ninactive_file 1\ntotal_inactive_file 2097152\n',
        },
        pids: { 'pids.current': '3\n', 'pids.max': '20\n' },
        blkio: {
          'blkio.throttle.io_service_bytes_recursive': '8:0 Read 4096\n8:0 Write 8192\n8:0 Sync 0\n8:0 Async 12288\n8:0 Discard 0\n8:0 Total 12288\n8:16 Read 100\n8:16 Write 0\nTotal 12388\n',
        },
      },
    });
    expect(new V1Driver(root, ID).stats()).toEqual({
      cpu: { usageNs: 2.5e9, userNs: 2e9, systemNs: 5e8, periods: 40, throttledPeriods: 12, throttledNs: 345000000 },
      memory: { usage: 10 * MiB, limit: 32 * MiB, maxUsage: 20 * MiB, inactiveFile: 2 * MiB, workingSet: 8 * MiB },
      pids: { current: 3, limit: 20 },
      blockIO: { readBytes: 4196, writeBytes: 8192 },
    });
  });

  test('stats: unlimited is null, old kernels\' cpuacct.stat ticks, bfq counters when throttle ones are empty', () => {
    fakeV1Tree(root, ID, {
      files: {
        cpuacct: { 'cpuacct.stat': 'user 150\nsystem 50\n' },
        blkio: { 'blkio.bfq.io_service_bytes_recursive': '8:0 Read 512\n8:0 Write 1024\nTotal 1536\n' },
      },
    });
    fs.rmSync(path.join(dir('cpuacct'), 'cpuacct.usage_user'));
    fs.rmSync(path.join(dir('cpuacct'), 'cpuacct.usage_sys'));
    const stats = new V1Driver(root, ID).stats();
    expect(stats.cpu.userNs).toBe(1.5e9);
    expect(stats.cpu.systemNs).toBe(0.5e9);
    expect(stats.memory.limit).toBeNull();
    expect(stats.pids.limit).toBeNull();
    expect(stats.blockIO).toEqual({ readBytes: 512, writeBytes: 1024 });
  });

  test('OOM: memory.oom_control oom_kill, failcnt as the limit hits', () => {
    fakeV1Tree(root, ID);
    const cg = new V1Driver(root, ID);
    expect(cg.memoryEvents()).toEqual({ oomKills: 0, ooms: null, limitHits: 0 });
    expect(cg.oomKilled()).toBe(false);
    setFixture(dir('memory'), { 'memory.failcnt': '57\n' });
    expect(cg.oomKilled()).toBe(false);
    setFixture(dir('memory'), { 'memory.oom_control': 'oom_kill_disable 0\nunder_oom 0\noom_kill 1\n' });
    expect(cg.memoryEvents()).toEqual({ oomKills: 1, ooms: null, limitHits: 57 });
    expect(cg.oomKilled()).toBe(true);
    // Before Linux 4.13 there is no oom_kill line: a hit limit is the best sign left.
    setFixture(dir('memory'), { 'memory.oom_control': 'oom_kill_disable 0\nunder_oom 0\n' });
    expect(cg.memoryEvents().oomKills).toBeNull();
    expect(cg.oomKilled()).toBe(true);
  });

  test('destroy: freeze, kill every pid, thaw, and rmdir again until the kernel lets go', async () => {
    fakeV1Tree(root, ID);
    for (const c of ['memory', 'pids', 'freezer']) setFixture(dir(c), { 'cgroup.procs': '101\n102\n' });
    // A sub-cgroup the container made.
    setFixture(path.join(dir('memory'), 'inner'), { 'cgroup.procs': '103\n' });
    const ops = fakeOps(root);
    const states: string[] = [];
    const cg = new V1Driver(root, ID, {
      ops: {
        ...ops,
        kill: (pid, signal) => {
          states.push(readFixture(dir('freezer'), 'freezer.state'));
          ops.kill(pid, signal);
        },
      },
    });
    expect(cg.pids()).toEqual([101, 102, 103]);
    await cg.destroy();
    expect(ops.killed.sort()).toEqual([101, 102, 103]);
    expect(states.every((s) => s === 'FROZEN')).toBe(true);
    expect(cg.exists()).toBe(false);
    expect(ops.removed.map((p) => path.relative(root, p))).toContain('memory/tsrun/c0ffee/inner');
    expect(fs.existsSync(path.join(root, 'memory', 'tsrun'))).toBe(true);
    // Destroying what is gone is fine.
    await cg.destroy();
  });

  test('destroy on a hybrid host: cgroup.kill of the cgroup2 cgroup', async () => {
    fakeV1Tree(root, ID, { unified: true });
    setFixture(dir('unified'), { 'cgroup.procs': '7\n' });
    const ops = fakeOps(root);
    const cg = new V1Driver(root, ID, { unifiedMount: path.join(root, 'unified'), ops });
    await cg.destroy();
    expect(fs.existsSync(dir('unified'))).toBe(false);
    expect(ops.killed).toEqual([7]);
    // The write went to cgroup.kill (the fake file keeps it).
    expect(ops.removed).toContain(dir('unified'));
  });

  test('destroy gives up after the timeout with EBUSY and the pids still inside', async () => {
    fakeV1Tree(root, ID);
    setFixture(dir('pids'), { 'cgroup.procs': '66\n' });
    const cg = new V1Driver(root, ID, { ops: fakeOps(root, [66]) });
    const err = await cg.destroy({ timeoutMs: 200 }).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(SyscallError);
    expect((err as SyscallError).code).toBe('EBUSY');
    expect((err as SyscallError).message).toMatch(/^cgroups: rmdir .*pids\/tsrun\/c0ffee: EBUSY \(.*; processes still inside: 66\)$/);
  });

  test('freeze and thaw through freezer.state', async () => {
    fakeV1Tree(root, ID);
    const cg = new V1Driver(root, ID, { ops: fakeOps(root) });
    expect(await cg.freeze()).toBe(true);
    expect(read('freezer', 'freezer.state')).toBe('FROZEN');
    cg.thaw();
    expect(read('freezer', 'freezer.state')).toBe('THAWED');
  });

  test('ids and parents that would leave the hierarchy are refused', () => {
    expect(() => new V1Driver(root, '../etc')).toThrow(ValidationError);
    expect(() => new V1Driver(root, '')).toThrow(ValidationError);
    expect(() => new V1Driver(root, 'ok', { parent: '../x' })).toThrow(/cgroupParent/);
    expect(() => new V1Driver(root, 'ok', { parent: '/abs' })).toThrow(/cgroupParent/);
    expect(new V1Driver(root, 'ok', { parent: 'tsrun/ci' }).paths.length).toBeGreaterThanOrEqual(0);
  });

  describe('leftovers', () => {
    const host = (): ReturnType<typeof cgroupHostFrom> => ({
      mode: 'hybrid',
      v1Mounts: Object.fromEntries(['cpu', 'cpuacct', 'cpuset', 'memory', 'pids', 'blkio', 'freezer'].map((c) => [c, path.join(root, c)])),
      unifiedMount: path.join(root, 'unified'),
      own: {},
    });

    test('lists every container cgroup under the parent, and those not active', () => {
      fakeV1Tree(root, 'aaa', { unified: true });
      fakeV1Tree(root, 'bbb', { unified: true });
      setFixture(path.join(root, 'memory', 'tsrun', 'bbb'), { 'cgroup.procs': '9\n' });
      const all = listContainerCgroups({ host: host() });
      expect(all.map((c) => c.id)).toEqual(['aaa', 'bbb']);
      expect(all[1].pids).toEqual([9]);
      expect(all[0].paths).toHaveLength(8);
      expect(findLeftoverCgroups((id) => id === 'aaa', { host: host() }).map((c) => c.id)).toEqual(['bbb']);
    });

    test('removes the leftovers (killing what is inside), then the empty parent', async () => {
      fakeV1Tree(root, 'aaa', { unified: true });
      fakeV1Tree(root, 'bbb', { unified: true });
      setFixture(path.join(root, 'pids', 'tsrun', 'bbb'), { 'cgroup.procs': '9\n' });
      const ops = fakeOps(root);
      const result = await removeLeftoverCgroups((id) => id === 'aaa', { host: host(), ops });
      expect(result).toEqual({ removed: ['bbb'], failed: [] });
      expect(ops.killed).toEqual([9]);
      expect(listContainerCgroups({ host: host() }).map((c) => c.id)).toEqual(['aaa']);
      expect(removeCgroupParent({ host: host(), ops })).toBe(false);
      await new V1Driver(root, 'aaa', { ops, unifiedMount: path.join(root, 'unified') }).destroy();
      expect(removeCgroupParent({ host: host(), ops })).toBe(true);
      expect(fs.existsSync(path.join(root, 'memory', 'tsrun'))).toBe(false);
      expect(fs.existsSync(path.join(root, 'unified', 'tsrun'))).toBe(false);
    });

    test('nothing under the parent (or no parent) is an empty list', () => {
      fakeV1Tree(root, 'aaa');
      fs.rmSync(path.join(root, 'memory', 'tsrun'), { recursive: true });
      expect(listContainerCgroups({ host: host(), parent: 'other' })).toEqual([]);
    });
  });
});
