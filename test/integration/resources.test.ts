import { ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Container, ValidationError, run } from '../../src';
import type { RunOptions } from '../../src';
import { defaultCgroupParent, readHostCpus, sampleStats } from '../../src/linux/cgroups';
import { containerCgroup } from '../../src/runtime/container-cgroup';
import { inspectContainer } from '../../src/runtime/containers';
import { Store } from '../../src/storage/store';
import { hostTsrunCgroups } from '../helpers/cgroups';
import { busyboxRootfs, describeAsRoot, useTempDir } from '../helpers/fixtures';
import { until } from '../helpers/until';
import { checkLeaksAfterEach } from '../helpers/leaks';

const TSRUN = path.resolve(__dirname, '..', '..', 'bin', 'tsrun');
const MiB = 1024 * 1024;

function processAlive(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

/** This container's cgroup directories on the host, in every hierarchy. */
function cgroupDirs(id: string): string[] {
  return hostTsrunCgroups().filter((dir) => path.basename(dir) === id);
}

describeAsRoot('resource limits: run with limits, stats, update, and the cgroups cleaned up', () => {
  const tmp = useTempDir('tsrun-resources-');
  const root = (): string => path.join(tmp(), 'store');
  const stateDir = (): string => path.join(tmp(), 'state');
  const location = (): { root: string; stateDir: string } => ({ root: root(), stateDir: stateDir() });
  const containers: Container[] = [];
  const clis: ChildProcess[] = [];

  beforeAll(async () => {
    const tar = path.join(tmp(), 'busybox.tar');
    execFileSync('tar', ['-C', busyboxRootfs(), '-cf', tar, '.']);
    await Store.open(root()).importRootfs(tar, 'busybox:limits');
  });

  // Before the leak check: a failed test must not leave its containers running.
  afterEach(async () => {
    for (const c of containers.splice(0)) {
      c.kill('SIGKILL');
      await c.wait();
    }
    for (const child of clis.splice(0)) {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGKILL');
        await new Promise((resolve) => child.once('close', resolve));
      }
    }
  });
  checkLeaksAfterEach();

  async function start(args: string[], options: Partial<RunOptions> = {}): Promise<{ container: Container; output: () => string }> {
    const container = await run({ rootfs: busyboxRootfs(), args, stdio: ['ignore', 'pipe', 'pipe'], stateDir: stateDir(), root: root(), ...options });
    containers.push(container);
    let output = '';
    container.stdout?.setEncoding('utf8').on('data', (d: string) => (output += d));
    container.stderr?.setEncoding('utf8').on('data', (d: string) => (output += d));
    return { container, output: () => output };
  }

  function tsrun(...args: string[]): { status: number | null; stdout: string; stderr: string } {
    const result = spawnSync(TSRUN, ['--root', root(), '--state', stateDir(), ...args], { encoding: 'utf8', timeout: 30_000 });
    return { status: result.status, stdout: result.stdout, stderr: result.stderr };
  }

  /** A CLI tsrun running a container in the background, as another process. */
  function tsrunInBackground(...args: string[]): { child: ChildProcess; output: () => string; exit: Promise<number | null> } {
    const child = spawn(TSRUN, ['--root', root(), '--state', stateDir(), ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    clis.push(child);
    let output = '';
    child.stdout?.setEncoding('utf8').on('data', (d: string) => (output += d));
    child.stderr?.setEncoding('utf8').on('data', (d: string) => (output += d));
    const exit = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
    return { child, output: () => output, exit };
  }

  function idOf(name: string): string {
    return inspectContainer(name, location()).Id;
  }

  test('the init joins its cgroup before exec; with its own cgroup namespace it sees / there', async () => {
    const { container, output } = await start(['sh', '-c', 'cat /proc/self/cgroup; echo ready; exec sleep 60']);
    await until(() => output().includes('ready'), 'the container');
    const inside = output().trim().split('\n').slice(0, -1);
    expect(inside.length).toBeGreaterThan(0);
    for (const line of inside) expect(line).toMatch(/:\/$/);
    // From the host: in the container's cgroup of every hierarchy.
    const cgroup = containerCgroup(container.id);
    expect(cgroup.paths.length).toBeGreaterThan(0);
    for (const dir of cgroup.paths) expect(fs.readFileSync(path.join(dir, 'cgroup.procs'), 'utf8').split('\n')).toContain(String(container.pid));

    const shared = await start(['cat', '/proc/self/cgroup'], { cgroupns: 'host' });
    await shared.container.wait();
    expect(shared.output()).toContain(`:/${defaultCgroupParent()}/${shared.container.id}\n`);
  });

  test('every limit is in the cgroup: memory, swap, reservation, CPU quota, shares, cpuset, pids, blkio weight', async () => {
    const warnings: string[] = [];
    const logger = { debug: () => undefined, info: () => undefined, error: () => undefined, warn: (_: object, message?: string) => warnings.push(message ?? '') };
    const { container } = await start(['sleep', '60'], {
      memory: '64m',
      memorySwap: '128m',
      memoryReservation: '32m',
      cpuPeriod: 50000,
      cpuQuota: '25000',
      cpuShares: '512',
      cpusetCpus: '0',
      cpusetMems: '0',
      pidsLimit: 30,
      blkioWeight: '300',
      logger,
    });
    const limits = containerCgroup(container.id).limits();
    expect(limits.memory).toMatchObject({ limit: 64 * MiB, reservation: 32 * MiB });
    if (limits.memory?.swap !== undefined) expect(limits.memory.swap).toBe(128 * MiB);
    expect(limits.cpu).toMatchObject({ shares: 512, quota: 25000, period: 50000, cpus: '0', mems: '0' });
    expect(limits.pids).toEqual({ limit: 30 });
    // A kernel without a blkio weight (no BFQ) gets a warning, and the container runs all the same.
    if (limits.blockIO) expect(limits.blockIO).toEqual({ weight: 300 });
    else expect(warnings).toEqual(expect.arrayContaining([expect.stringMatching(/blkio weight/)]));
    expect(inspectContainer(container.id, location()).HostConfig).toMatchObject({
      Memory: 64 * MiB,
      MemorySwap: 128 * MiB,
      MemoryReservation: 32 * MiB,
      CpuShares: 512,
      CpuPeriod: 50000,
      CpuQuota: 25000,
      NanoCpus: 500_000_000,
      CpusetCpus: '0',
      CpusetMems: '0',
      PidsLimit: 30,
      BlkioWeight: 300,
    });
  });

  test('-m 32m: allocating past it is killed (137, OOMKilled), below it is not, and a plain SIGKILL is no OOM', async () => {
    const big = await start(['dd', 'if=/dev/zero', 'of=/dev/null', 'bs=64M', 'count=1'], { memory: '32m', name: 'oom-big' });
    expect(await big.container.wait()).toEqual({ exitCode: 137, signal: 'SIGKILL', oomKilled: true });
    expect(inspectContainer('oom-big', location()).State).toMatchObject({ Status: 'exited', OOMKilled: true, ExitCode: 137 });

    // The shell survives its child's OOM kill and reports it as 137.
    const viaShell = await start(['sh', '-c', 'dd if=/dev/zero of=/dev/null bs=64M count=1; exit $?'], { memory: '32m' });
    expect(await viaShell.container.wait()).toEqual({ exitCode: 137, signal: null, oomKilled: true });

    const small = await start(['dd', 'if=/dev/zero', 'of=/dev/null', 'bs=8M', 'count=4'], { memory: '32m', name: 'oom-small' });
    expect(await small.container.wait()).toEqual({ exitCode: 0, signal: null, oomKilled: false });
    expect(inspectContainer('oom-small', location()).State).toMatchObject({ OOMKilled: false, ExitCode: 0 });

    const killed = await start(['sleep', '60'], { memory: '32m' });
    killed.container.kill('SIGKILL');
    expect(await killed.container.wait()).toEqual({ exitCode: 137, signal: 'SIGKILL', oomKilled: false });
  });

  test('--pids-limit 20: the 21st process fails to fork and the container keeps running', async () => {
    // The init (1) runs a subshell (2) that starts sleeps until a fork fails;
    // it counts them in /dev/shm, since the shared root filesystem is read-only to tests.
    const script = 'i=0; (while [ $i -lt 30 ]; do sleep 60 & i=$((i+1)); echo $i > /dev/shm/n; done); read n < /dev/shm/n; echo "sleeps: $n"; echo alive; exec sleep 60';
    const { container, output } = await start(['sh', '-c', script], { pidsLimit: '20' });
    await until(() => output().includes('alive'), 'the forks to stop');
    expect(output()).toMatch(/can't fork/);
    // 1 init + 1 subshell + 18 sleeps = 20: the 19th sleep was the 21st process.
    expect(output()).toMatch(/^sleeps: 18$/m);
    expect(container.running).toBe(true);
    expect(containerCgroup(container.id).stats().pids).toEqual({ current: 19, limit: 20 });
  });

  test('--cpus 0.5: a busy loop gets at most 0.55 of a CPU over 3 s by the cgroup\'s own counter, and is throttled', async () => {
    const { container } = await start(['sh', '-c', 'while :; do :; done'], { cpus: '0.5' });
    const cgroup = containerCgroup(container.id);
    await new Promise((resolve) => setTimeout(resolve, 300));
    const first = sampleStats(cgroup);
    const t0 = process.hrtime.bigint();
    await new Promise((resolve) => setTimeout(resolve, 3000));
    const second = sampleStats(cgroup);
    const ratio = (second.stats.cpu.usageNs - first.stats.cpu.usageNs) / Number(process.hrtime.bigint() - t0);
    expect(ratio).toBeLessThanOrEqual(0.55);
    // The quota, not a busy host, holds it back (a loaded host may give it less than its half).
    expect(second.stats.cpu.throttledPeriods).toBeGreaterThan(first.stats.cpu.throttledPeriods);
    expect(ratio).toBeGreaterThanOrEqual(0.25);
  });

  test('--cpuset-cpus 0 pins the container to CPU 0', async () => {
    const { container, output } = await start(['grep', 'Cpus_allowed_list', '/proc/self/status'], { cpusetCpus: '0' });
    await container.wait();
    expect(output()).toMatch(/^Cpus_allowed_list:\s+0\n$/);
  });

  test('bad values: one error naming the option, and nothing is created', async () => {
    const before = hostTsrunCgroups();
    const online = readHostCpus().cpus;
    const cases: [Partial<RunOptions>, string, RegExp][] = [
      [{ memory: '1k' }, 'memory', /1 KiB is below the minimum of 6 MiB/],
      [{ cpus: 0 }, 'cpus', /must be more than 0/],
      [{ cpusetCpus: String(online[online.length - 1] + 1) }, 'cpusetCpus', /not available on this host/],
      [{ pidsLimit: 'many' }, 'pidsLimit', /not an integer/],
      [{ cpus: '1', cpuQuota: 1000 }, 'cpus', /cannot be combined/],
    ];
    for (const [options, field, message] of cases) {
      const error = await run({ rootfs: busyboxRootfs(), args: ['true'], stateDir: stateDir(), name: 'never', ...options }).catch((err: unknown) => err);
      expect(error).toBeInstanceOf(ValidationError);
      expect(error).toMatchObject({ field, message: expect.stringMatching(message) });
    }
    expect(fs.existsSync(path.join(stateDir(), 'names', 'never'))).toBe(false);
    expect(hostTsrunCgroups()).toEqual(before);
  });

  test('the cgroup goes when the container exits, and when its start fails', async () => {
    const { container } = await start(['sleep', '60'], { memory: '16m' });
    expect(cgroupDirs(container.id).length).toBeGreaterThan(0);
    container.kill('SIGKILL');
    await container.wait();
    expect(cgroupDirs(container.id)).toEqual([]);

    const before = hostTsrunCgroups();
    await expect(run({ rootfs: busyboxRootfs(), args: ['/bin/nope'], stateDir: stateDir(), pidsLimit: 5, stdio: 'ignore' })).rejects.toThrow(/exec \/bin\/nope: ENOENT/);
    expect(hostTsrunCgroups()).toEqual(before);
  });

  test('CLI: the limit flags on run IMAGE and run --rootfs; inspect and ps -a report the OOM kill', () => {
    const oom = tsrun('run', '--name', 'cli-oom', '-m', '32m', '--memory-swap', '32m', 'busybox:limits', 'dd', 'if=/dev/zero', 'of=/dev/null', 'bs=64M', 'count=1');
    expect(oom.status).toBe(137);
    const [inspected] = JSON.parse(tsrun('inspect', 'cli-oom').stdout) as { State: { OOMKilled: boolean; ExitCode: number }; HostConfig: Record<string, unknown> }[];
    expect(inspected.State).toMatchObject({ OOMKilled: true, ExitCode: 137 });
    expect(inspected.HostConfig).toMatchObject({ Memory: 32 * MiB, MemorySwap: 32 * MiB, AutoRemove: false });
    const listed = tsrun('ps', '-a', '--format', 'json').stdout.trim().split('\n').map((line) => JSON.parse(line) as { name: string; oomKilled: boolean; exitCode: number });
    expect(listed.find((c) => c.name === 'cli-oom')).toMatchObject({ oomKilled: true, exitCode: 137 });
    expect(tsrun('ps', '-a').stdout).toMatch(/Exited \(137\) .* cli-oom$/m);
    expect(tsrun('rm', 'cli-oom').status).toBe(0);

    const rootfs = tsrun(
      'run', '--rm', '-m', '48m', '--memory-reservation', '24m', '--cpus', '0.5', '-c', '256', '--cpuset-cpus', '0', '--cpuset-mems', '0', '--pids-limit', '10', '--blkio-weight', '200',
      '--rootfs', busyboxRootfs(), 'sh', '-c', 'grep Cpus_allowed_list /proc/self/status',
    );
    expect(rootfs).toMatchObject({ status: 0, stdout: expect.stringMatching(/^Cpus_allowed_list:\s+0\n$/) });
    // Docker's spelling of "unlimited" for swap and quota.
    expect(tsrun('run', '--rm', '-m', '16m', '--memory-swap', '-1', '--cpu-quota', '-1', '--rootfs', busyboxRootfs(), 'true').status).toBe(0);
  });

  test('CLI: a bad value is one line naming the flag, exit 125, nothing created', () => {
    const online = readHostCpus().cpus;
    const before = hostTsrunCgroups();
    const cases: [string[], RegExp][] = [
      [['-m', '1k'], /^tsrun: --memory: 1 KiB is below the minimum of 6 MiB a container needs\n$/],
      [['--cpus', '0'], /^tsrun: --cpus: must be more than 0 .*\n$/],
      [['--cpuset-cpus', `0-${online[online.length - 1] + 1}`], new RegExp(`^tsrun: --cpuset-cpus: CPUs ${online[online.length - 1] + 1} are not available on this host \\(online: .*\\)\\n$`)],
      [['--memory-swap', '8m', '-m', '16m'], /^tsrun: --memory-swap: 8 MiB is below the memory limit \(16 MiB\).*\n$/],
    ];
    for (const [flags, message] of cases) {
      for (const target of [['busybox:limits'], ['--rootfs', busyboxRootfs()]]) {
        const result = tsrun('run', '--name', 'bad-limits', ...flags, ...target, 'true');
        expect(result).toMatchObject({ status: 125, stdout: '' });
        expect(result.stderr).toMatch(message);
      }
    }
    expect(tsrun('ps', '-a').stdout).not.toMatch(/bad-limits/);
    expect(hostTsrunCgroups()).toEqual(before);
  });

  test('CLI: stats of a container another tsrun runs, as docker stats prints them', async () => {
    const busy = tsrunInBackground('run', '--rm', '--name', 'busy', '--cpus', '0.5', '-m', '64m', '--rootfs', busyboxRootfs(), 'sh', '-c', 'trap "exit 0" TERM; echo ready; while :; do :; done');
    await until(() => busy.output().includes('ready'), 'the container');
    const table = tsrun('stats', '--no-stream');
    expect(table.status).toBe(0);
    const [header, row, ...rest] = table.stdout.trimEnd().split('\n');
    expect(header).toMatch(/^CONTAINER ID\s+NAME\s+CPU %\s+MEM USAGE \/ LIMIT\s+MEM %\s+BLOCK I\/O\s+PIDS$/);
    expect(rest).toEqual([]);
    const [id, name, cpu, usage, , limit, memory, read, , write, pids] = row.split(/\s+/);
    expect(id).toBe(idOf('busy').slice(0, 12));
    expect(name).toBe('busy');
    // Half a CPU, by the cgroup's counter over about a second.
    expect(Number(cpu.replace('%', ''))).toBeGreaterThan(35);
    expect(Number(cpu.replace('%', ''))).toBeLessThan(65);
    expect(usage).toMatch(/^\d+(\.\d+)?(B|KiB|MiB)$/);
    expect(limit).toBe('64MiB');
    expect(memory).toMatch(/^\d+\.\d\d%$/);
    expect(`${read} / ${write}`).toMatch(/^\d+(\.\d+)?[kMG]?B \/ \d+(\.\d+)?[kMG]?B$/);
    expect(pids).toBe('1');

    const json = tsrun('stats', '--no-stream', '--format', 'json', 'busy');
    expect(JSON.parse(json.stdout)).toMatchObject({ Name: 'busy', ID: id, PIDs: '1', MemUsage: expect.stringMatching(/ \/ 64MiB$/), CPUPerc: expect.stringMatching(/^\d+\.\d\d%$/) });

    // Streaming: a table per second until stopped.
    const stream = spawn(TSRUN, ['--root', root(), '--state', stateDir(), 'stats', 'busy'], { stdio: ['ignore', 'pipe', 'inherit'] });
    clis.push(stream);
    let streamed = '';
    stream.stdout?.setEncoding('utf8').on('data', (d: string) => (streamed += d));
    await until(() => (streamed.match(/^CONTAINER ID/gm) ?? []).length >= 2, 'two rounds of stats');
    stream.kill('SIGTERM');

    const missing = tsrun('stats', '--no-stream', 'nosuch');
    expect(missing).toMatchObject({ status: 1, stderr: 'tsrun: No such container: nosuch\n' });
    busy.child.kill('SIGTERM');
    expect(await busy.exit).toBe(0);
  });

  test('CLI: update changes the limits of a container another tsrun runs, in its cgroup and its record', async () => {
    const box = tsrunInBackground('run', '--name', 'updatable', '-m', '32m', '--cpus', '0.5', '--pids-limit', '10', 'busybox:limits', 'sh', '-c', 'trap "exit 0" TERM; echo ready; while :; do sleep 0.1; done');
    await until(() => box.output().includes('ready'), 'the container');
    const id = idOf('updatable');

    const updated = tsrun('update', '-m', '128m', '--memory-swap', '256m', '--cpus', '1.5', '--pids-limit', '50', '--cpuset-cpus', '0', 'updatable');
    expect(updated).toMatchObject({ status: 0, stdout: 'updatable\n' });
    const limits = containerCgroup(id).limits();
    expect(limits.memory).toMatchObject({ limit: 128 * MiB });
    if (limits.memory?.swap !== undefined) expect(limits.memory.swap).toBe(256 * MiB);
    expect(limits.cpu).toMatchObject({ quota: 150000, period: 100000, cpus: '0' });
    expect(limits.pids).toEqual({ limit: 50 });
    expect((JSON.parse(tsrun('inspect', 'updatable').stdout) as { HostConfig: Record<string, unknown> }[])[0].HostConfig).toMatchObject({
      Memory: 128 * MiB,
      MemorySwap: 256 * MiB,
      NanoCpus: 1_500_000_000,
      PidsLimit: 50,
      CpusetCpus: '0',
    });

    expect(tsrun('update', '--cpus', '0', 'updatable')).toMatchObject({ status: 125, stderr: expect.stringMatching(/^tsrun: --cpus: must be more than 0/) });
    expect(tsrun('update', 'updatable')).toMatchObject({ status: 125, stderr: expect.stringMatching(/requires at least one limit/) });

    box.child.kill('SIGTERM');
    expect(await box.exit).toBe(0);
    // The record keeps the updated limits after the exit; a stopped container cannot be updated.
    expect(inspectContainer('updatable', location()).HostConfig).toMatchObject({ Memory: 128 * MiB, PidsLimit: 50 });
    expect(tsrun('update', '-m', '64m', 'updatable')).toMatchObject({ status: 1, stderr: 'tsrun: cannot update container updatable: it is not running\n' });
    expect(tsrun('rm', 'updatable').status).toBe(0);
  });

  test.each([
    ['tsrun ps', ['ps', '-a'], ['--rootfs', 'ROOTFS']],
    ['tsrun system prune', ['system', 'prune', '-f'], ['busybox:limits']],
  ])('after a SIGKILL of the CLI tsrun, %s removes the cgroup it left', async (_, command, target) => {
    const name = `killed-${command[0]}`;
    const args = target.map((a) => (a === 'ROOTFS' ? busyboxRootfs() : a));
    const { child, output, exit } = tsrunInBackground('run', '--name', name, '-m', '32m', ...args, 'sh', '-c', 'echo ready; exec sleep 1000');
    await until(() => output().includes('ready'), 'the container');
    const { Id: id, State } = inspectContainer(name, location());
    expect(cgroupDirs(id).length).toBeGreaterThan(0);
    child.kill('SIGKILL');
    await exit;
    // The init dies with tsrun (PR_SET_PDEATHSIG); its cgroup stays behind.
    await until(() => !processAlive(State.Pid), 'the container\'s init to die');
    expect(cgroupDirs(id).length).toBeGreaterThan(0);

    const result = tsrun(...command);
    expect(result.status).toBe(0);
    expect(cgroupDirs(id)).toEqual([]);
    if (command[0] === 'system') {
      // The container its tsrun abandoned goes with its cgroup (and so do the file's exited containers).
      expect(result.stdout).toMatch(/^Deleted Containers:\n/);
      expect(result.stdout.split('\n')).toContain(id);
      expect(tsrun('ps', '-a', '-q').stdout).not.toContain(id.slice(0, 12));
    } else {
      expect(tsrun('rm', name).status).toBe(0);
    }
  });

  test('a cgroup that no record of this state dir knows is left alone by ps and prune', async () => {
    const { container } = await start(['sleep', '60'], { stateDir: path.join(tmp(), 'other-state') });
    expect(tsrun('system', 'prune', '-f')).toMatchObject({ status: 0, stdout: 'Total reclaimed space: 0B\n' });
    expect(tsrun('ps', '-a').status).toBe(0);
    expect(container.running).toBe(true);
    expect(cgroupDirs(container.id).length).toBeGreaterThan(0);
  });
});
