import { ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { SyscallError, TsrunError } from '../../src/errors';
import {
  CgroupDriver,
  cpuPercent,
  createCgroupDriver,
  detectCgroupHost,
  listContainerCgroups,
  removeCgroupParent,
  removeLeftoverCgroups,
  sampleStats,
} from '../../src/linux/cgroups';
import { V1Driver } from '../../src/linux/cgroups/v1';
import { V2Driver } from '../../src/linux/cgroups/v2';
import type { CgroupHost } from '../../src/linux/cgroups';
import { silentLogger } from '../../src/logger';
import type { Spec } from '../../src/oci/runtime-spec';
import { Container } from '../../src/runtime/container';
import type { ContainerPlan } from '../../src/runtime/container-plan';
import type { PlanStep } from '../../src/runtime/plan';
import { spawnContainer } from '../../src/runtime/spawn';
import { hostTsrunCgroups } from '../helpers/cgroups';
import { isRoot } from '../helpers/env';
import { describeAsRoot, useTempDir } from '../helpers/fixtures';
import { checkLeaksAfterEach } from '../helpers/leaks';

const MiB = 1024 * 1024;
const CLONE_NEWPID = 0x20000000;
const CLONE_NEWUSER = 0x10000000;
const ENV = ['PATH=/usr/sbin:/usr/bin:/sbin:/bin'];
// Its own parent, so that a failing run cannot touch real containers' cgroups.
const PARENT = `tsrun-test-${process.pid}`;

const host: CgroupHost | null = isRoot() ? detectCgroupHost() : null;
const v1Host = host !== null && host.mode !== 'unified' && host.v1Mounts.memory !== undefined;
const unifiedHost = host !== null && host.mode === 'unified';

function exec(argv: string[]): PlanStep {
  return { op: 'Exec', lists: [[argv[0]], argv, ENV], phase: 'process', target: argv[0] };
}

/**
 * Starts argv through the plan engine (the container's path: clone, plan,
 * execve) with `before` steps first, as the runtime will put joinSteps.
 */
function startWithPlan(before: PlanStep[], argv: string[], options: { cloneFlags?: number; mode?: 'vfork' | 'fork'; spec?: Partial<Spec> } = {}): Container {
  const plan: ContainerPlan = {
    steps: [...before, { op: 'CloseFrom', args: [3], phase: 'process' }, exec(argv)],
    cloneFlags: options.cloneFlags ?? 0,
    mode: options.mode ?? 'vfork',
  };
  const spawned = spawnContainer((options.spec ?? {}) as Spec, plan);
  return new Container(`test-${spawned.pid}`, 'test', undefined, spawned, { stdin: null, stdout: null, stderr: null }, () => undefined, silentLogger);
}

function cgroupLines(pid: number): string[] {
  return fs.readFileSync(`/proc/${pid}/cgroup`, 'utf8').trim().split('\n');
}

async function until(check: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

function readFile(file: string): string {
  return fs.readFileSync(file, 'utf8').trim();
}

/** Cleanup that runs even when a test fails: kill and remove every cgroup under the test parent. */
function useCgroupCleanup(): { track: (c: Container | ChildProcess) => void } {
  const processes: (Container | ChildProcess)[] = [];
  let before: string[] = [];
  beforeAll(() => {
    before = hostTsrunCgroups();
  });
  afterEach(async () => {
    await removeLeftoverCgroups(() => false, { host: host as CgroupHost, parent: PARENT });
    for (const p of processes.splice(0)) {
      if (p instanceof Container) {
        p.kill('SIGKILL');
        await p.wait();
      } else if (p.exitCode === null && p.signalCode === null) {
        p.kill('SIGKILL');
        await new Promise((r) => p.once('exit', r));
      }
    }
  });
  afterAll(() => {
    removeCgroupParent({ host: host as CgroupHost, parent: PARENT });
    // Nothing of tsrun's is left in any hierarchy (the parent included).
    expect(hostTsrunCgroups().filter((p) => !before.includes(p))).toEqual([]);
  });
  return { track: (c) => processes.push(c) };
}

let serial = 0;
const newId = (): string => `t${process.pid}-${serial++}`;

(v1Host ? describeAsRoot : describe.skip)('cgroups v1 on this host (hybrid: v1 controllers + cgroup2 without controllers)', () => {
  if (!v1Host && isRoot()) console.warn(`skipped the cgroup v1 tests: this host's cgroups are ${host?.mode} without a v1 memory hierarchy`);
  const tmp = useTempDir('tsrun-cgroups-');
  const { track } = useCgroupCleanup();
  checkLeaksAfterEach();

  const driver = (id = newId(), options: { unified?: boolean } = {}): CgroupDriver =>
    createCgroupDriver(id, { host: options.unified === false ? { ...(host as CgroupHost), mode: 'legacy', unifiedMount: null } : (host as CgroupHost), parent: PARENT });

  test('the driver for this host is V1, with a cgroup in every v1 hierarchy (and the cgroup2 one on a hybrid host)', () => {
    const cg = driver('layout');
    expect(cg).toBeInstanceOf(V1Driver);
    cg.create();
    for (const p of cg.paths) expect(fs.statSync(p).isDirectory()).toBe(true);
    if (host?.mode === 'hybrid') expect(cg.paths).toContain(path.join(host.unifiedMount as string, PARENT, 'layout'));
    // v1 starts a cpuset empty; both levels took the root's.
    const cpuset = (cg as V1Driver).dirOf('cpuset');
    if (cpuset) {
      expect(readFile(path.join(cpuset, 'cpuset.cpus'))).toBe(readFile(path.join(host?.v1Mounts.cpuset as string, 'cpuset.cpus')));
      expect(readFile(path.join(cpuset, 'cpuset.mems'))).not.toBe('');
    }
  });

  test('limits are written to the real files and read back', () => {
    const cg = driver();
    const warnings = cg.create({
      memory: { limit: 32 * MiB, swap: 64 * MiB, reservation: 16 * MiB },
      cpu: { shares: 512, quota: 50000, period: 100000, cpus: '0', mems: '0' },
      pids: { limit: 20 },
      blockIO: { weight: 300 },
    });
    const v1 = cg as V1Driver;
    const memory = v1.dirOf('memory') as string;
    expect(readFile(path.join(memory, 'memory.limit_in_bytes'))).toBe(String(32 * MiB));
    expect(readFile(path.join(v1.dirOf('pids') as string, 'pids.max'))).toBe('20');
    expect(readFile(path.join(v1.dirOf('cpu') as string, 'cpu.cfs_quota_us'))).toBe('50000');
    expect(readFile(path.join(v1.dirOf('cpuset') as string, 'cpuset.cpus'))).toBe('0');
    const limits = cg.limits();
    expect(limits.memory).toMatchObject({ limit: 32 * MiB, reservation: 16 * MiB });
    if (fs.existsSync(path.join(memory, 'memory.memsw.limit_in_bytes'))) expect(limits.memory?.swap).toBe(64 * MiB);
    expect(limits.cpu).toMatchObject({ shares: 512, quota: 50000, period: 100000, cpus: '0', mems: '0' });
    expect(limits.pids).toEqual({ limit: 20 });
    // Where the kernel has no blkio weight (no BFQ) that is a warning, not a failure.
    if (limits.blockIO) expect(limits.blockIO).toEqual({ weight: 300 });
    else expect(warnings).toEqual(expect.arrayContaining([expect.stringMatching(/blkio weight/)]));
  });

  test('the kernel refuses what validation would catch: a cpuset outside the host is an error naming the file and value', () => {
    const cg = driver();
    cg.create();
    let error: unknown;
    try {
      cg.update({ cpu: { cpus: '4000' } });
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(SyscallError);
    expect((error as SyscallError).message).toMatch(/^cgroups: write .*cpuset\.cpus: (EINVAL|ERANGE) \(.*; cpuset\.cpus "4000"\)$/);
  });

  test('joinSteps: a process started by the plan engine is in every cgroup before it execs', async () => {
    const cg = driver();
    cg.create();
    const out = path.join(tmp(), 'joined');
    // The shell reads its own cgroup first thing after execve.
    const c = startWithPlan(cg.joinSteps(), ['/bin/sh', '-c', `cat /proc/self/cgroup > ${out}; exec sleep 60`]);
    track(c);
    // cat may not have exited yet when its output is there: wait for the shell alone (then sleep).
    await until(() => fs.existsSync(out) && readFile(out).includes('\n') && cg.pids().length === 1);
    const lines = readFile(out).split('\n');
    for (const controller of ['memory', 'pids', 'cpu', 'cpuset', 'blkio', 'freezer']) {
      expect(lines).toContainEqual(expect.stringMatching(new RegExp(`^\\d+:([^:]*,)?${controller}(,[^:]*)?:/${PARENT}/${cg.id}$`)));
    }
    if (host?.mode === 'hybrid') expect(lines).toContain(`0::/${PARENT}/${cg.id}`);
    expect(cg.pids()).toEqual([c.pid]);
  });

  test('joinSteps in a new PID namespace: "0" still names the child (pid 1 there)', async () => {
    const cg = driver();
    cg.create();
    const out = path.join(tmp(), 'pidns');
    const c = startWithPlan(cg.joinSteps(), ['/bin/sh', '-c', `echo $$ > ${out}; exec sleep 60`], { cloneFlags: CLONE_NEWPID });
    track(c);
    await until(() => fs.existsSync(out) && readFile(out) !== '');
    expect(readFile(out)).toBe('1');
    expect(cg.pids()).toEqual([c.pid]);
  });

  test('joinSteps in a user namespace: before the uid change they work; after it the host files are out of reach', async () => {
    const cg = driver();
    cg.create();
    const userns = {
      linux: {
        namespaces: [{ type: 'user' as const }],
        uidMappings: [{ containerID: 0, hostID: 100000, size: 65536 }],
        gidMappings: [{ containerID: 0, hostID: 100000, size: 65536 }],
      },
    } as unknown as Partial<Spec>;
    const becomeRoot: PlanStep[] = [
      { op: 'SyncSignal', args: [1], phase: 'user namespace' },
      { op: 'SyncWait', phase: 'user namespace' },
      { op: 'Setresgid', args: [0, 0, 0], phase: 'user namespace' },
      { op: 'Setresuid', args: [0, 0, 0], phase: 'user namespace' },
    ];
    const c = startWithPlan([...cg.joinSteps(), ...becomeRoot], ['/bin/sleep', '60'], { cloneFlags: CLONE_NEWUSER, mode: 'fork', spec: userns });
    track(c);
    expect(cg.pids()).toEqual([c.pid]);
    expect(fs.readFileSync(`/proc/${c.pid}/status`, 'utf8')).toMatch(/^Uid:\s+100000\s/m);

    const late = driver();
    late.create();
    let error: unknown;
    try {
      track(startWithPlan([...becomeRoot, ...late.joinSteps()], ['/bin/sleep', '60'], { cloneFlags: CLONE_NEWUSER, mode: 'fork', spec: userns }));
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(SyscallError);
    expect(error).toMatchObject({ step: 'cgroups', syscall: 'write' });
    expect(['EACCES', 'EPERM']).toContain((error as SyscallError).code);
  });

  test('addProcess: a sleep started with child_process is moved in, then killed', async () => {
    const cg = driver();
    cg.create({ pids: { limit: 10 } });
    const child = spawn('sleep', ['60'], { stdio: 'ignore' });
    track(child);
    await new Promise((r) => child.once('spawn', r));
    cg.addProcess(child.pid as number);
    expect(cg.pids()).toEqual([child.pid]);
    expect(cgroupLines(child.pid as number)).toContainEqual(expect.stringMatching(new RegExp(`:pids:/${PARENT}/${cg.id}$`)));
    expect(cg.stats().pids).toEqual({ current: 1, limit: 10 });
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    await until(() => cg.pids().length === 0);
    await cg.destroy();
    expect(cg.exists()).toBe(false);
  });

  test('OOM: a process allocating past the limit is killed and reported; one below it is not', async () => {
    const cg = driver();
    cg.create({ memory: { limit: 32 * MiB, swap: 32 * MiB } });
    // dd allocates its block buffer and fills it: 64 MiB of anonymous memory in a 32 MiB cgroup.
    const big = startWithPlan(cg.joinSteps(), ['/bin/dd', 'if=/dev/zero', 'of=/dev/null', 'bs=64M', 'count=1', 'status=none']);
    track(big);
    expect(await big.wait()).toEqual({ exitCode: 137, signal: 'SIGKILL' });
    expect(cg.oomKilled()).toBe(true);
    expect(cg.memoryEvents().oomKills).toBeGreaterThanOrEqual(1);
    await cg.destroy();

    const ok = driver();
    ok.create({ memory: { limit: 32 * MiB, swap: 32 * MiB } });
    const small = startWithPlan(ok.joinSteps(), ['/bin/dd', 'if=/dev/zero', 'of=/dev/null', 'bs=8M', 'count=4', 'status=none']);
    track(small);
    expect(await small.wait()).toEqual({ exitCode: 0, signal: null });
    expect(ok.oomKilled()).toBe(false);
    expect(ok.memoryEvents().oomKills).toBe(0);
  });

  test('pids limit 20: the 21st process fails to fork, the process that forks keeps running', async () => {
    const cg = driver();
    cg.create({ pids: { limit: 20 } });
    const out = path.join(tmp(), 'forks');
    const script = `open(my $o, '>', '${out}'); my $n = 1; for (1..30) { my $p = fork; if (!defined $p) { print $o "failed at $n: $!\\n"; last } if ($p == 0) { sleep 60; exit 0 } $n++ } print $o "alive with $n\\n"; close $o; sleep 60`;
    const c = startWithPlan(cg.joinSteps(), ['/usr/bin/perl', '-e', script]);
    track(c);
    await until(() => fs.existsSync(out) && readFile(out).includes('alive'));
    expect(readFile(out)).toBe('failed at 20: Resource temporarily unavailable\nalive with 20');
    expect(cg.stats().pids).toEqual({ current: 20, limit: 20 });
    expect(c.running).toBe(true);
    const events = readFile(path.join((cg as V1Driver).dirOf('pids') as string, 'pids.events'));
    expect(events).toMatch(/^max [1-9]/);
  });

  test('--cpus 0.5: a busy loop gets 0.45-0.55 of a CPU over 3 s by the cgroup\'s own counter', async () => {
    const cg = driver();
    cg.create({ cpu: { quota: 50000, period: 100000 } });
    const c = startWithPlan(cg.joinSteps(), ['/bin/sh', '-c', 'while :; do :; done']);
    track(c);
    await new Promise((r) => setTimeout(r, 300));
    const first = sampleStats(cg);
    const t0 = process.hrtime.bigint();
    await new Promise((r) => setTimeout(r, 3000));
    const second = sampleStats(cg);
    const wallNs = Number(process.hrtime.bigint() - t0);
    const ratio = (second.stats.cpu.usageNs - first.stats.cpu.usageNs) / wallNs;
    expect(ratio).toBeGreaterThanOrEqual(0.45);
    expect(ratio).toBeLessThanOrEqual(0.55);
    // docker stats' CPU %: half a CPU is 50%.
    expect(cpuPercent(first, second)).toBeGreaterThan(40);
    expect(cpuPercent(first, second)).toBeLessThan(60);
    expect(second.stats.cpu.throttledPeriods).toBeGreaterThan(first.stats.cpu.throttledPeriods);
  });

  test('--cpuset-cpus 0 pins to CPU 0, and an update moves the running process', async () => {
    const cg = driver();
    cg.create({ cpu: { cpus: '0' } });
    const c = startWithPlan(cg.joinSteps(), ['/bin/sleep', '60']);
    track(c);
    const allowed = (): string => /Cpus_allowed_list:\s*(\S+)/.exec(fs.readFileSync(`/proc/${c.pid}/status`, 'utf8'))?.[1] ?? '';
    expect(allowed()).toBe('0');
    const online = readFile('/sys/devices/system/cpu/online');
    if (online !== '0') {
      cg.update({ cpu: { cpus: online } });
      expect(allowed()).toBe(online);
    }
  });

  test('update on a live cgroup: memory+swap grown and shrunk in the order the kernel accepts', async () => {
    const cg = driver();
    cg.create({ memory: { limit: 32 * MiB, swap: 64 * MiB }, pids: { limit: 5 } });
    const c = startWithPlan(cg.joinSteps(), ['/bin/sleep', '60']);
    track(c);
    const memory = (cg as V1Driver).dirOf('memory') as string;
    const memsw = fs.existsSync(path.join(memory, 'memory.memsw.limit_in_bytes'));
    // Grow: the kernel refuses memory > memsw, so memsw must go first.
    cg.update({ memory: { limit: 256 * MiB, swap: 512 * MiB } });
    expect(cg.limits().memory).toMatchObject({ limit: 256 * MiB, ...(memsw ? { swap: 512 * MiB } : {}) });
    // Shrink: memory must go first.
    cg.update({ memory: { limit: 16 * MiB, swap: 24 * MiB } });
    expect(cg.limits().memory).toMatchObject({ limit: 16 * MiB, ...(memsw ? { swap: 24 * MiB } : {}) });
    if (memsw) {
      // Memory alone past memory+swap: the kernel's EINVAL, explained.
      expect(() => cg.update({ memory: { limit: 200 * MiB } })).toThrow(/above the memory\+swap limit 25165824; change both together/);
    }
    cg.update({ pids: { limit: -1 }, cpu: { shares: 2048, quota: 20000 } });
    expect(cg.limits()).toMatchObject({ pids: { limit: -1 }, cpu: { shares: 2048, quota: 20000 } });
    cg.update({ memory: { limit: -1 } });
    expect(cg.limits().memory).toMatchObject({ limit: -1, ...(memsw ? { swap: -1 } : {}) });
    expect(c.running).toBe(true);
  });

  test('stats from the real files: CPU, memory, pids, block I/O', async () => {
    const cg = driver();
    cg.create({ memory: { limit: 64 * MiB } });
    const blkio = (cg as V1Driver).dirOf('blkio');
    // v1 blkio counts a device's I/O only while it has a throttle rule (Linux 5.x+); give it one that never throttles.
    const device = fs.statSync(tmp()).dev;
    const majmin = `${Math.floor(device / 256) & 0xfff}:${(device & 0xff) | ((device >> 12) & 0xfff00)}`;
    let counted = false;
    if (blkio) {
      try {
        fs.writeFileSync(path.join(blkio, 'blkio.throttle.write_bps_device'), `${majmin} 100000000000`);
        counted = true;
      } catch {
        // Not a block device (overlay, tmpfs): no I/O to count.
      }
    }
    const file = path.join(tmp(), 'io');
    const c = startWithPlan(cg.joinSteps(), ['/bin/sh', '-c', `dd if=/dev/zero of=${file} bs=1M count=4 oflag=direct status=none; i=0; while [ $i -lt 100000 ]; do i=$((i+1)); done; exec sleep 60`]);
    track(c);
    await until(() => cg.pids().length === 1 && fs.existsSync(file) && fs.statSync(file).size === 4 * MiB && /sleep/.test(fs.readFileSync(`/proc/${c.pid}/cmdline`, 'utf8')), 20000);
    const stats = cg.stats();
    expect(stats.cpu.usageNs).toBeGreaterThan(0);
    expect(stats.memory.usage).toBeGreaterThan(0);
    expect(stats.memory.limit).toBe(64 * MiB);
    expect(stats.pids).toEqual({ current: 1, limit: null });
    if (counted) expect(stats.blockIO.writeBytes).toBeGreaterThanOrEqual(4 * MiB);
    fs.rmSync(file, { force: true });
  });

  test('removal with live, forking processes inside (cgroup.kill on the cgroup2 side)', async () => {
    const cg = driver();
    cg.create({ pids: { limit: 50 } });
    const c = startWithPlan(cg.joinSteps(), ['/bin/sh', '-c', 'while :; do sleep 1 & sleep 0.01; done']);
    track(c);
    await until(() => cg.pids().length > 5);
    await cg.destroy();
    expect(cg.exists()).toBe(false);
    expect(await c.wait()).toMatchObject({ signal: 'SIGKILL' });
  });

  test('removal through the freezer (no cgroup2 cgroup: a legacy host): freeze, kill, thaw, rmdir', async () => {
    const cg = driver(undefined, { unified: false });
    cg.create({ pids: { limit: 50 } });
    expect(cg.paths.every((p) => !p.includes('unified'))).toBe(true);
    const c = startWithPlan(cg.joinSteps(), ['/bin/sh', '-c', 'while :; do sleep 1 & sleep 0.01; done']);
    track(c);
    await until(() => cg.pids().length > 5);
    expect(await cg.freeze()).toBe(true);
    cg.thaw();
    await cg.destroy();
    expect(cg.exists()).toBe(false);
    expect(await c.wait()).toMatchObject({ signal: 'SIGKILL' });
  });

  test('leftovers: cgroups of containers that are not running are found and removed', async () => {
    const live = driver();
    const dead = driver();
    live.create();
    dead.create();
    const orphan = startWithPlan(dead.joinSteps(), ['/bin/sleep', '60']);
    track(orphan);
    const found = listContainerCgroups({ host: host as CgroupHost, parent: PARENT });
    expect(found.map((f) => f.id).sort()).toEqual([live.id, dead.id].sort());
    expect(found.find((f) => f.id === dead.id)?.pids).toEqual([orphan.pid]);
    const result = await removeLeftoverCgroups((id) => id === live.id, { host: host as CgroupHost, parent: PARENT });
    expect(result).toEqual({ removed: [dead.id], failed: [] });
    expect(await orphan.wait()).toMatchObject({ signal: 'SIGKILL' });
    expect(dead.exists()).toBe(false);
    expect(live.exists()).toBe(true);
  });
});

(host?.mode === 'hybrid' ? describeAsRoot : describe.skip)('V2Driver on this host\'s cgroup2 mount (no controllers there)', () => {
  const { track } = useCgroupCleanup();
  checkLeaksAfterEach();
  const v2 = (): V2Driver => new V2Driver(host?.unifiedMount as string, newId(), { parent: PARENT });

  test('create, join through the plan, cgroup.kill, rmdir retried until the process is gone', async () => {
    const cg = v2();
    expect(cg.create()).toEqual([]);
    const c = startWithPlan(cg.joinSteps(), ['/bin/sleep', '60']);
    track(c);
    expect(cg.pids()).toEqual([c.pid]);
    expect(cgroupLines(c.pid)).toContain(`0::/${PARENT}/${cg.id}`);
    expect(await cg.freeze()).toBe(true);
    cg.thaw();
    await cg.destroy();
    expect(cg.exists()).toBe(false);
    expect(await c.wait()).toMatchObject({ signal: 'SIGKILL' });
  });

  test('a limit without its controller: an error that says the controller is not passed down', () => {
    const cg = v2();
    cg.create();
    expect(() => cg.update({ memory: { limit: 32 * MiB } })).toThrow(TsrunError);
    expect(() => cg.update({ memory: { limit: 32 * MiB } })).toThrow(/a memory limit needs the memory controller, which .* does not pass down \(its cgroup.controllers has: none\)/);
  });

  test('an fd of the cgroup for CLONE_INTO_CGROUP', () => {
    const cg = v2();
    cg.create();
    const fd = cg.openCgroupFd();
    try {
      expect(fs.readlinkSync(`/proc/self/fd/${fd}`)).toBe(cg.dir);
    } finally {
      fs.closeSync(fd);
    }
  });
});

(unifiedHost ? describeAsRoot : describe.skip)('cgroups v2 with controllers (a unified host)', () => {
  if (!unifiedHost && isRoot()) {
    console.warn(`skipped "cgroups v2 with controllers": needs cgroup v2 controllers; this host is ${host?.mode} (its cgroup2 mount ${host?.unifiedMount ?? 'is absent'} has none). The v2 driver is tested against a fake tree in test/unit/cgroup-v2.test.ts.`);
  }
  const { track } = useCgroupCleanup();
  const driver = (): CgroupDriver => createCgroupDriver(newId(), { host: host as CgroupHost, parent: PARENT });

  test('limits written and read back', () => {
    const cg = driver();
    cg.create({ memory: { limit: 32 * MiB, swap: 64 * MiB }, cpu: { shares: 1024, quota: 50000, period: 100000 }, pids: { limit: 20 } });
    expect(cg.limits()).toMatchObject({ memory: { limit: 32 * MiB }, cpu: { shares: 1024, quota: 50000, period: 100000 }, pids: { limit: 20 } });
  });

  test('OOM through memory.events', async () => {
    const cg = driver();
    cg.create({ memory: { limit: 32 * MiB, swap: 32 * MiB } });
    const big = startWithPlan(cg.joinSteps(), ['/bin/dd', 'if=/dev/zero', 'of=/dev/null', 'bs=64M', 'count=1', 'status=none']);
    track(big);
    expect(await big.wait()).toEqual({ exitCode: 137, signal: 'SIGKILL' });
    expect(cg.oomKilled()).toBe(true);
  });

  test('removal with a live process', async () => {
    const cg = driver();
    cg.create();
    const c = startWithPlan(cg.joinSteps(), ['/bin/sleep', '60']);
    track(c);
    await cg.destroy();
    expect(cg.exists()).toBe(false);
    await c.wait();
  });
});
