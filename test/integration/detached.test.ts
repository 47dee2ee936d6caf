import { execFileSync, spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { create, startContainer, waitContainer } from '../../src';
import { removeContainer } from '../../src/runtime/containers';
import { isRunning } from '../../src/linux/proc';
import { Store } from '../../src/storage/store';
import { busyboxRootfs, describeAsRoot, useTempDir } from '../helpers/fixtures';
import { hostTsrunCgroups } from '../helpers/cgroups';
import { checkLeaksAfterEach } from '../helpers/leaks';
import { monitorOf, processesOf } from '../helpers/processes';
import { until } from '../helpers/until';
import { CliResult, TSRUN, runCli } from '../helpers/cli';

const TICKER = ['sh', '-c', 'while true; do echo tick; sleep 1; done'];

describeAsRoot('detached containers: run -d, create/start, logs, stop, kill, wait, rm', () => {
  const tmp = useTempDir('tsrun-detached-');
  const root = () => path.join(tmp(), 'store');
  const stateDir = () => path.join(tmp(), 'state');
  checkLeaksAfterEach();

  const tsrun = (...args: string[]): CliResult => runCli(['--root', root(), '--state', stateDir()], args);
  const ok = (...args: string[]): string => {
    const result = tsrun(...args);
    if (result.status !== 0) throw new Error(`tsrun ${args.join(' ')} exited ${result.status}: ${result.stderr}`);
    return result.stdout;
  };
  const inspect = (name: string): { Id: string; State: { Status: string; Pid: number; ExitCode: number } } => JSON.parse(ok('inspect', name))[0];

  beforeAll(async () => {
    const tar = path.join(tmp(), 'busybox.tar');
    execFileSync('tar', ['-C', busyboxRootfs(), '-cf', tar, '.']);
    await Store.open(root()).importRootfs(tar, 'busybox:test', { changes: ['CMD ["sh"]'] });
  });

  test('run -d outlives its tsrun: logs, stop, ps -a says Exited (137 or 143), rm leaves no mount, cgroup or process', async () => {
    const id = ok('run', '-d', '--name', 'web', 'busybox:test', ...TICKER).trim();
    expect(id).toMatch(/^[0-9a-f]{64}$/);
    // spawnSync returned: the tsrun that started it is gone, the container runs on.
    const { Pid: pid } = inspect('web').State;
    expect(isRunning(pid, undefined)).toBe(true);
    await until(() => ok('logs', 'web') === 'tick\ntick\n', 'two ticks in the log');
    expect(ok('ps')).toMatch(/Up .*\bweb\n/);
    // exec joins its pid namespace: the init is PID 1 there, and ps sees itself beside it.
    const ps = ok('exec', 'web', 'ps');
    expect(ps).toMatch(/^\s*1 root +sh -c while true/m);
    expect(ps).toMatch(/^\s*\d+ root +ps$/m);

    const stop = tsrun('stop', '-t', '2', 'web');
    expect(stop).toMatchObject({ status: 0, stdout: 'web\n' });
    expect(isRunning(pid, undefined)).toBe(false);
    expect(ok('ps', '-a')).toMatch(/Exited \((137|143)\) .*\bweb\n/);
    expect(ok('wait', 'web')).toMatch(/^(137|143)\n$/);
    // The log stays after the exit.
    expect(ok('logs', '--tail', '1', 'web')).toBe('tick\n');
    expect(ok('logs', '--timestamps', '--tail', '1', 'web')).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z tick\n$/);

    expect(ok('rm', 'web')).toBe('web\n');
    expect(tsrun('ps', '-a').stdout).not.toContain('web');
    await until(() => processesOf(id).length === 0, 'the monitor to exit');
    expect(fs.readFileSync('/proc/self/mountinfo', 'utf8')).not.toContain(id);
    expect(hostTsrunCgroups().filter((cg) => cg.includes(id))).toEqual([]);
    expect(fs.existsSync(path.join(stateDir(), 'monitors', id))).toBe(false);
  });

  test('exec: -e, -w, -u, exit codes, a missing command, a stopped container; top lists the processes', () => {
    ok('run', '-d', '--name', 'box', 'busybox:test', 'sh', '-c', 'echo $$ > /tmp/init-pid; exec sleep 1000');
    expect(ok('exec', '-e', 'GREETING=hi', '-w', '/tmp', '-u', '1000:1000', 'box', 'sh', '-c', 'echo $GREETING $(pwd) $(id -u):$(id -g) $(cat /tmp/init-pid)')).toBe('hi /tmp 1000:1000 1\n');
    expect(ok('exec', 'box', 'hostname')).toBe(`${inspect('box').Id.slice(0, 12)}\n`);
    expect(tsrun('exec', 'box', 'sh', '-c', 'exit 5').status).toBe(5);
    const missing = tsrun('exec', 'box', 'no-such-command');
    expect(missing.status).toBe(127);
    expect(missing.stderr).toMatch(/exec no-such-command: ENOENT/);
    // Without -i the command reads /dev/null, not the caller's stdin.
    expect(spawnSync(TSRUN, ['--root', root(), '--state', stateDir(), 'exec', 'box', 'cat'], { input: 'ignored', encoding: 'utf8' }).stdout).toBe('');
    expect(spawnSync(TSRUN, ['--root', root(), '--state', stateDir(), 'exec', '-i', 'box', 'cat'], { input: 'read', encoding: 'utf8' }).stdout).toBe('read');
    const top = ok('top', 'box');
    expect(top).toMatch(/^UID +PID +PPID +CMD\n0 +\d+ +\d+ +sleep 1000\n$/);
    ok('stop', '-t', '1', 'box');
    const stopped = tsrun('exec', 'box', 'true');
    expect(stopped.status).toBe(1);
    expect(stopped.stderr).toMatch(/cannot exec stopped container box: exec needs a running container/);
    ok('rm', 'box');
  });

  test("exec'd processes get the container's privileges: its capabilities, no_new_privs and seccomp filter", () => {
    const status = (name: string, ...user: string[]): string =>
      ok('exec', ...user, name, 'grep', '-E', '^(CapEff|CapBnd|NoNewPrivs|Seccomp):', '/proc/self/status').replace(/\t/g, ' ');
    ok('run', '-d', '--network', 'none', '--name', 'confined', '--cap-add', 'NET_ADMIN', 'busybox:test', 'sleep', '1000');
    expect(status('confined')).toBe('CapEff: 00000000a80435fb\nCapBnd: 00000000a80435fb\nNoNewPrivs: 1\nSeccomp: 2\n');
    // A non-root user keeps the bounding set only, as with Docker.
    expect(status('confined', '-u', '1000')).toBe('CapEff: 0000000000000000\nCapBnd: 00000000a80435fb\nNoNewPrivs: 1\nSeccomp: 2\n');
    expect(tsrun('exec', 'confined', 'unshare', '-m', 'true').status).not.toBe(0);
    ok('run', '-d', '--network', 'none', '--name', 'privileged', '--privileged', 'busybox:test', 'sleep', '1000');
    const hostBounding = /^CapBnd:\s*(\w+)$/m.exec(fs.readFileSync('/proc/self/status', 'utf8'))?.[1];
    expect(status('privileged')).toMatch(new RegExp(`^CapEff: ${hostBounding}\nCapBnd: ${hostBounding}\nNoNewPrivs: \\d\nSeccomp: 0\n$`));
    ok('rm', '-f', 'confined', 'privileged');
  });

  test('the monitor holds the exit code and the log in well under 3.5 MiB', async () => {
    const id = ok('run', '-d', '--name', 'small', '--rootfs', busyboxRootfs(), ...TICKER).trim();
    try {
      const monitor = await until(() => monitorOf(id), 'the monitor');
      const rssKiB = Number(/VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${monitor}/status`, 'utf8'))?.[1]);
      expect(rssKiB).toBeGreaterThan(0);
      expect(rssKiB).toBeLessThan(3.5 * 1024);
      // Not a Node process.
      expect(fs.readlinkSync(`/proc/${monitor}/exe`)).toMatch(/tsrun-monitor$/);
    } finally {
      ok('rm', '-f', 'small');
    }
  });

  test('create, then start; the states are checked: no second start, no rm of a running one without -f', async () => {
    const id = ok('create', '--name', 'later', 'busybox:test', 'sh', '-c', 'trap "echo got TERM; exit 3" TERM; echo started; while true; do sleep 0.1; done').trim();
    expect(ok('ps', '-a')).toMatch(/Created +later\n/);
    expect(ok('logs', 'later')).toBe('');
    expect(inspect('later').State.Status).toBe('created');

    expect(ok('start', 'later')).toBe('later\n');
    await until(() => ok('logs', 'later') === 'started\n', 'the init to start');
    expect(inspect('later').State.Status).toBe('running');
    // A second start of a running container is a no-op, as Docker's.
    expect(tsrun('start', 'later').status).toBe(0);

    const rm = tsrun('rm', 'later');
    expect(rm.status).toBe(1);
    expect(rm.stderr).toMatch(/cannot remove running container [0-9a-f]{12}: stop it first or use --force/);

    expect(ok('kill', '-s', 'TERM', 'later')).toBe('later\n');
    expect(ok('wait', 'later')).toBe('3\n');
    expect(ok('logs', 'later')).toBe('started\ngot TERM\n');
    const kill = tsrun('kill', 'later');
    expect(kill.stderr).toMatch(/cannot kill stopped container later/);
    // As Docker's: start of an exited container runs it again, and its log goes on.
    ok('start', 'later');
    await until(() => ok('logs', 'later') === 'started\ngot TERM\nstarted\n', 'the second run');
    ok('rm', '-f', 'later');
    await until(() => processesOf(id).length === 0, 'the monitor to exit');
  });

  test('a created container is removed without -f, its waiting init and monitor with it', async () => {
    const id = ok('create', '--name', 'never', '--rootfs', busyboxRootfs(), 'true').trim();
    const { Pid: pid } = inspect('never').State;
    expect(isRunning(pid, undefined)).toBe(true);
    ok('rm', 'never');
    expect(isRunning(pid, undefined)).toBe(false);
    await until(() => processesOf(id).length === 0, 'the monitor to exit');
  });

  test('logs -f follows until the exit; stderr stays stderr; a line without newline is kept', () => {
    ok('run', '-d', '--name', 'talker', '--rootfs', busyboxRootfs(), 'sh', '-c', 'for i in 1 2 3; do echo out $i; echo err $i >&2; sleep 0.2; done; printf end');
    const follow = tsrun('logs', '-f', 'talker');
    expect(follow).toMatchObject({ status: 0, stdout: 'out 1\nout 2\nout 3\nend', stderr: 'err 1\nerr 2\nerr 3\n' });
    expect(ok('wait', 'talker')).toBe('0\n');
    ok('rm', 'talker');
  });

  test('run -d with --rm: the container goes once it exits', async () => {
    const id = ok('run', '-d', '--rm', '--name', 'gone', 'busybox:test', 'sh', '-c', 'exit 4').trim();
    await until(() => !tsrun('ps', '-a').stdout.includes('gone') && processesOf(id).length === 0, 'the container to be removed');
    expect(fs.existsSync(path.join(root(), 'containers', id))).toBe(false);
    expect(fs.existsSync(path.join(stateDir(), 'monitors', id))).toBe(false);
  });

  test('a command that cannot start fails run -d with 127 and the step, and leaves the container exited', () => {
    const result = tsrun('run', '-d', '--name', 'broken', '--rootfs', busyboxRootfs(), 'no-such-command');
    expect(result.status).toBe(127);
    expect(result.stderr).toMatch(/exec no-such-command: ENOENT/);
    expect(ok('ps', '-a')).toMatch(/Exited \(127\).*\bbroken\n/);
    ok('rm', 'broken');
  });

  test('--init: PID 1 is tsrun-init, it reaps orphans and passes SIGTERM on, so stop ends a shell at once with 143', () => {
    const ps = ok('run', '--rm', '--init', '--rootfs', busyboxRootfs(), 'sh', '-c', 'cat /proc/1/cmdline | tr "\\0" " "; echo; (sleep 0.1 &); sleep 0.5; ps -o stat,comm');
    const [cmdline, ...processes] = ps.trim().split('\n');
    expect(cmdline.trim()).toBe('/dev/tsrun-init -- sh -c cat /proc/1/cmdline | tr "\\0" " "; echo; (sleep 0.1 &); sleep 0.5; ps -o stat,comm');
    // The orphaned sleep was reaped: no zombie is left.
    expect(processes.filter((p) => /^Z/.test(p))).toEqual([]);
    ok('run', '-d', '--init', '--name', 'initd', '--rootfs', busyboxRootfs(), 'sh', '-c', 'sleep 1000');
    ok('stop', '-t', '30', 'initd');
    expect(ok('wait', 'initd')).toBe('143\n');
    ok('rm', 'initd');
    const missing = tsrun('run', '--rm', '--init', '--rootfs', busyboxRootfs(), 'no-such-command');
    expect(missing).toMatchObject({ status: 127, stderr: expect.stringMatching(/tsrun-init: exec no-such-command: No such file or directory/) });
  });

  test('restart keeps the writable layer and the log; on-failure:N restarts N times; a stopped always-container stays stopped', async () => {
    ok('run', '-d', '--name', 'again', 'busybox:test', 'sh', '-c', 'echo run $(cat /counter 2>/dev/null); echo x >> /counter; trap "exit 0" TERM; while true; do sleep 0.1; done');
    await until(() => ok('logs', 'again') === 'run\n', 'the first run');
    expect(ok('restart', '-t', '5', 'again')).toBe('again\n');
    await until(() => ok('logs', 'again') === 'run\nrun x\n', 'the second run');
    expect(inspect('again').State.Status).toBe('running');
    ok('rm', '-f', 'again');

    ok('run', '-d', '--restart', 'on-failure:2', '--name', 'flaky', '--rootfs', busyboxRootfs(), 'sh', '-c', 'echo try; exit 3');
    await until(() => ok('logs', 'flaky') === 'try\ntry\ntry\n' && inspect('flaky').State.Status === 'exited' && inspect('flaky').State.ExitCode === 3, 'three tries');
    ok('rm', 'flaky');

    ok('run', '-d', '--restart', 'always', '--name', 'always', '--rootfs', busyboxRootfs(), 'sh', '-c', 'echo up; trap "exit 0" TERM; while true; do sleep 0.1; done');
    ok('stop', 'always');
    expect(inspect('always').State.Status).toBe('exited');
    expect(ok('logs', 'always')).toBe('up\n');
    ok('rm', 'always');
    expect(tsrun('run', '-d', '--restart', 'sometimes', '--rootfs', busyboxRootfs(), 'true').stderr).toMatch(/restart: "sometimes" is not a restart policy/);
  });

  test('stop and wait work on a container in the foreground of another tsrun too', async () => {
    const foreground = spawn(TSRUN, ['--root', root(), '--state', stateDir(), 'run', '--name', 'fg', '--rootfs', busyboxRootfs(), 'sh', '-c', 'trap "exit 5" TERM; echo up; while true; do sleep 0.1; done'], { stdio: ['ignore', 'pipe', 'inherit'] });
    const exited = new Promise<number | null>((resolve) => foreground.once('exit', (code) => resolve(code)));
    await new Promise((resolve) => foreground.stdout.once('data', resolve));
    const waited = spawn(TSRUN, ['--root', root(), '--state', stateDir(), 'wait', 'fg'], { stdio: ['ignore', 'pipe', 'inherit'] });
    let waitOutput = '';
    waited.stdout.setEncoding('utf8').on('data', (d: string) => (waitOutput += d));
    const waitDone = new Promise((resolve) => waited.once('close', resolve));
    expect(ok('stop', 'fg')).toBe('fg\n');
    expect(await exited).toBe(5);
    await waitDone;
    expect(waitOutput).toBe('5\n');
    ok('rm', 'fg');
  });

  test('library: create, startContainer, waitContainer', async () => {
    const created = await create({ rootfs: busyboxRootfs(), args: ['sh', '-c', 'exit 7'], stateDir: stateDir(), root: root() });
    expect(isRunning(created.pid, undefined)).toBe(true);
    await startContainer(created.id, { stateDir: stateDir(), root: root() });
    expect(await waitContainer(created.id, { stateDir: stateDir(), root: root() })).toMatchObject({ exitCode: 7, signal: null });
    await removeContainer(created.id, { stateDir: stateDir(), root: root() });
    await until(() => processesOf(created.id).length === 0, 'the monitor to exit');
  });
});
