import { ChildProcess, spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { busyboxRootfs, describeAsRoot, useTempDir } from '../helpers/fixtures';
import { until } from '../helpers/until';
import { hostTsrunCgroups } from '../helpers/cgroups';
import { snapshot } from '../helpers/leaks';

const TSRUN = path.resolve(__dirname, '..', '..', 'bin', 'tsrun');

function mountsUnder(dir: string): string[] {
  return snapshot().mounts.filter((m) => m.split(' ')[0].startsWith(dir));
}

function processAlive(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

describeAsRoot('tsrun CLI', () => {
  const tmp = useTempDir('tsrun-cli-');
  const state = () => path.join(tmp(), 'state');
  let mountsBefore: string[];
  const started: ChildProcess[] = [];

  beforeEach(() => {
    mountsBefore = snapshot().mounts;
  });
  afterEach(() => {
    for (const child of started.splice(0)) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    expect(snapshot().mounts).toEqual(mountsBefore);
  });

  function tsrun(args: string[], input = ''): { status: number | null; stdout: string; stderr: string } {
    const result = spawnSync(TSRUN, ['--state', state(), ...args], { input, encoding: 'utf8', timeout: 30_000 });
    return { status: result.status, stdout: result.stdout, stderr: result.stderr };
  }

  function runInBusybox(command: string[], options: string[] = [], input = ''): ReturnType<typeof tsrun> {
    return tsrun(['run', '--rm', ...options, '--rootfs', busyboxRootfs(), ...command], input);
  }

  function startInBackground(args: string[]): { child: ChildProcess; output: () => string; exit: Promise<number | null> } {
    const child = spawn(TSRUN, ['--state', state(), ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    started.push(child);
    let output = '';
    child.stdout?.setEncoding('utf8').on('data', (d: string) => (output += d));
    child.stderr?.setEncoding('utf8').on('data', (d: string) => (output += d));
    const exit = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
    return { child, output: () => output, exit };
  }


  test('security flags: --cap-add/--cap-drop, --security-opt, --ulimit, --tmpfs, --device, --privileged', () => {
    const caps = runInBusybox(['sh', '-c', 'grep -E "^(CapEff|NoNewPrivs|Seccomp):" /proc/self/status; ulimit -n; touch /tmp/x && echo tmp-rw; [ -c /dev/fuse ] && echo fuse'], [
      '--cap-drop',
      'ALL',
      '--cap-add',
      'net_admin',
      '--security-opt',
      'no-new-privileges=false',
      '--security-opt',
      'seccomp=unconfined',
      '--ulimit',
      'nofile=64:128',
      '--read-only',
      '--tmpfs',
      '/tmp:size=1m',
      ...(fs.existsSync('/dev/fuse') ? ['--device', '/dev/fuse'] : []),
    ]);
    expect(caps.stderr).toBe('');
    expect(caps.stdout.replace(/[ \t]+/g, ' ')).toBe(`CapEff: 0000000000001000\nNoNewPrivs: 0\nSeccomp: 0\n64\ntmp-rw\n${fs.existsSync('/dev/fuse') ? 'fuse\n' : ''}`);
    const privileged = runInBusybox(['grep', '^Seccomp:', '/proc/self/status'], ['--privileged']);
    expect(privileged.stdout).toMatch(/^Seccomp:\s+0\n$/);
    const unknown = runInBusybox(['true'], ['--cap-add', 'FLY']);
    expect(unknown.status).toBe(125);
    expect(unknown.stderr).toMatch(/--cap-add.*unknown capability "FLY"|capAdd\[0\]: unknown capability "FLY"/);
    const badOpt = runInBusybox(['true'], ['--security-opt', 'apparmor=x']);
    expect(badOpt.status).toBe(125);
    expect(badOpt.stderr).toMatch(/--security-opt: unknown option "apparmor=x"/);
    const noRange = runInBusybox(['true'], ['--userns-remap', 'tsrun-no-such-user']);
    expect(noRange.status).toBe(125);
    expect(noRange.stderr).toMatch(/usernsRemap: tsrun-no-such-user has no range in \/etc\/subuid/);
  });
  test('the exit code of the container is the exit code of tsrun', () => {
    expect(runInBusybox(['sh', '-c', 'exit 7']).status).toBe(7);
    expect(runInBusybox(['true']).status).toBe(0);
  });

  test('a container killed by a signal exits 128+N', () => {
    // In its own pid namespace, init cannot be killed by its own SIGKILL; --pid host lets it die.
    expect(runInBusybox(['sh', '-c', 'kill -KILL $$'], ['--pid', 'host']).status).toBe(137);
  });

  test('the container command keeps its own flags, and stdin, stdout and stderr are the terminal\'s', () => {
    const result = runInBusybox(['sh', '-c', 'read line; echo "out:$line" "$@"; echo err >&2', 'sh', '-e', '--rm'], ['-i', '-e', 'A=1'], 'hello\n');
    expect(result).toMatchObject({ status: 0, stdout: 'out:hello -e --rm\n', stderr: 'err\n' });
  });

  test('Docker\'s flags: -e, -w, --user, --hostname, --network', () => {
    const result = runInBusybox(['sh', '-c', 'echo $A $(pwd) $(id -u):$(id -g) $(hostname); ls /sys/class/net'], [
      '-e', 'A=x', '-w', '/tmp', '--user', 'tester', '--hostname', 'box', '--network', 'none',
    ]);
    expect(result.stderr).toBe('');
    expect(result.stdout).toBe('x /tmp 1000:1000 box\nlo\n');
  });

  test.each([
    [['/bin/nope'], 127, /^tsrun: process: exec \/bin\/nope: ENOENT \(no such file or directory\)\n$/],
    [['nope'], 127, /^tsrun: .*exec nope: ENOENT .*executable file not found in \$PATH.*\n$/],
    [['/etc/passwd'], 126, /^tsrun: process: exec \/etc\/passwd: EACCES .*\n$/],
  ])('%j fails with one line and exit code %d', (command, status, message) => {
    const result = runInBusybox(command);
    expect(result.status).toBe(status);
    expect(result.stderr).toMatch(message);
  });

  test('an unknown user, a missing working dir and a bad rootfs each name the cause', () => {
    const user = runInBusybox(['true'], ['--user', 'nosuchuser']);
    expect(user.status).toBe(125);
    expect(user.stderr).toMatch(/^tsrun: .*nosuchuser.*\n$/);

    const workdir = runInBusybox(['true'], ['-w', '/does/not/exist']);
    expect(workdir.status).toBe(126);
    expect(workdir.stderr).toMatch(/^tsrun: .*chdir \/does\/not\/exist: ENOENT.*\n$/);

    const rootfs = tsrun(['run', '--rm', '--rootfs', path.join(tmp(), 'missing'), 'true']);
    expect(rootfs.status).toBe(125);
    expect(rootfs.stderr).toMatch(/^tsrun: .*rootfs.*missing does not exist\n$/);
  });

  test('usage errors exit 125 and point at --help', () => {
    const noCommand = tsrun(['run', '--rootfs', busyboxRootfs()]);
    expect(noCommand.status).toBe(125);
    expect(noCommand.stderr).toBe('tsrun: "tsrun run" requires a command to run\nSee \'tsrun --help\'.\n');

    const unknown = tsrun(['frobnicate']);
    expect(unknown.status).toBe(125);
    expect(unknown.stderr).toMatch(/Unknown command: frobnicate/);

    const badChoice = tsrun(['run', '--network', 'bridge0', '--rootfs', busyboxRootfs(), 'true']);
    expect(badChoice.status).toBe(125);
    expect(badChoice.stderr).toMatch(/network/);
  });

  test('--help and --version print and exit 0', () => {
    const help = tsrun(['run', '--help']);
    expect(help.status).toBe(0);
    expect(help.stdout).toMatch(/tsrun run \[options\] --rootfs DIR COMMAND/);
    expect(help.stdout).toMatch(/--rootfs/);
    const version = tsrun(['--version']);
    expect(version.status).toBe(0);
    expect(version.stdout.trim()).toBe(JSON.parse(fs.readFileSync(path.join(__dirname, '..', '..', 'package.json'), 'utf8')).version);
  });

  test('a name is unique while its container exists, and free again after --rm', async () => {
    const first = startInBackground(['run', '--rm', '--name', 'dup', '--rootfs', busyboxRootfs(), 'sh', '-c', 'echo ready; sleep 30']);
    await until(() => first.output().includes('ready'), 'the first container');
    const second = runInBusybox(['true'], ['--name', 'dup']);
    expect(second.status).toBe(125);
    expect(second.stderr).toMatch(/name "dup" is already in use/);
    first.child.kill('SIGKILL');
    await first.exit;
  });

  test.each(['SIGTERM', 'SIGINT', 'SIGHUP', 'SIGUSR1'] as const)('%s sent to tsrun reaches the container\'s init', async (signal) => {
    const short = signal.slice(3);
    const { child, output, exit } = startInBackground([
      'run', '--rm', '--rootfs', busyboxRootfs(), 'sh', '-c', `trap 'echo got ${short}; exit 42' ${short}; echo ready; while :; do sleep 0.05; done`,
    ]);
    await until(() => output().includes('ready'), 'the container to start');
    child.kill(signal);
    expect(await exit).toBe(42);
    expect(output()).toBe(`ready\ngot ${short}\n`);
  });

  test('when tsrun is SIGKILLed, its container dies with it and nothing stays mounted', async () => {
    const { child, output, exit } = startInBackground(['run', '--name', 'orphan', '--rootfs', busyboxRootfs(), 'sh', '-c', 'echo ready; sleep 1000']);
    await until(() => output().includes('ready'), 'the container to start');
    const id = path.basename(fs.readlinkSync(path.join(state(), 'names', 'orphan')));
    const stateOf = (): { status: string; pid: number } => JSON.parse(fs.readFileSync(path.join(state(), id, 'state.json'), 'utf8')) as { status: string; pid: number };
    // The init may print before its tsrun has recorded it as running.
    await until(() => stateOf().status === 'running', 'the state to say running');
    const { pid } = stateOf();
    expect(processAlive(pid)).toBe(true);
    child.kill('SIGKILL');
    await exit;
    await until(() => !processAlive(pid), `container init ${pid} to die`);
    expect(mountsUnder(busyboxRootfs())).toEqual([]);
    // Its cgroup stays until the next tsrun command sees that nothing looks after it.
    const cgroupsOf = (): string[] => hostTsrunCgroups().filter((dir) => path.basename(dir) === id);
    expect(cgroupsOf()).not.toEqual([]);
    expect(tsrun(['ps', '-a']).stdout).toMatch(/Exited \(-1\) .* orphan$/m);
    expect(cgroupsOf()).toEqual([]);
  });
});
