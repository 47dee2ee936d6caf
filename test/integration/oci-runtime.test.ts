import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { isRunning } from '../../src/linux/proc';
import { busyboxRootfs, describeAsRoot, useTempDir } from '../helpers/fixtures';
import { hostTsrunCgroups } from '../helpers/cgroups';
import { checkLeaksAfterEach } from '../helpers/leaks';
import { until } from '../helpers/until';

const OCI = path.resolve(__dirname, '..', '..', 'bin', 'tsrun-oci');

/** Receives a pty master on a unix socket (as conmon does) and prints "ready", the message, then all the pty says. */
const CONSOLE_RECEIVER = `
import os, socket, sys
server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
server.bind(sys.argv[1])
server.listen(1)
print("ready", flush=True)
conn, _ = server.accept()
msg, fds, _, _ = socket.recv_fds(conn, 1024, 1)
out = b""
while True:
    try:
        data = os.read(fds[0], 4096)
    except OSError:
        break
    if not data:
        break
    out += data
sys.stdout.write(msg.decode() + "\\n" + out.decode())
`;

interface Result {
  status: number | null;
  stdout: string;
  stderr: string;
}

interface State {
  ociVersion: string;
  id: string;
  status: string;
  pid?: number;
  bundle: string;
}

describeAsRoot('tsrun-oci: runc\'s command line over bundles', () => {
  const tmp = useTempDir('tsrun-oci-');
  const stateRoot = () => path.join(tmp(), 'state');

  /**
   * Output goes to files: a container created or run detached inherits
   * tsrun-oci's stdout and stderr (as runc's does), and a pipe it holds
   * would keep spawnSync waiting for its end.
   */
  let calls = 0;
  const oci = (args: string[], options: { cwd?: string } = {}): Result => {
    const out = path.join(tmp(), `out-${calls}`);
    const err = path.join(tmp(), `err-${calls++}`);
    const fds = [fs.openSync(out, 'w'), fs.openSync(err, 'w')];
    let status: number | null;
    try {
      status = spawnSync(OCI, ['--root', stateRoot(), ...args], { stdio: ['ignore', fds[0], fds[1]], timeout: 60_000, ...options }).status;
    } finally {
      fds.forEach((fd) => fs.closeSync(fd));
    }
    return { status, stdout: fs.readFileSync(out, 'utf8'), stderr: fs.readFileSync(err, 'utf8') };
  };
  const ok = (args: string[], options: { cwd?: string } = {}): string => {
    const result = oci(args, options);
    if (result.status !== 0) throw new Error(`tsrun-oci ${args.join(' ')} exited ${result.status}: ${result.stderr}`);
    return result.stdout;
  };
  const state = (id: string): State => JSON.parse(ok(['state', id])) as State;

  // A failed test must not leave its containers running.
  afterEach(() => {
    for (const id of ok(['list', '-q']).split('\n').filter(Boolean)) oci(['delete', '--force', id]);
  });
  // Registered after the cleanup above, which jest runs first.
  checkLeaksAfterEach();

  /** A bundle with the busybox rootfs (bound read-only) and `tsrun-oci spec`'s config.json, changed by `edit`. */
  let bundles = 0;
  const bundle = (edit: (config: Record<string, any>) => void): string => {
    const dir = path.join(tmp(), `bundle-${bundles++}`);
    fs.mkdirSync(path.join(dir, 'rootfs'), { recursive: true });
    ok(['spec', '--bundle', dir]);
    const config = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'));
    config.root.path = busyboxRootfs();
    edit(config);
    fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(config));
    return dir;
  };
  const sleeper = (edit: (config: Record<string, any>) => void = () => undefined): string =>
    bundle((c) => {
      c.process.args = ['sh', '-c', 'trap "exit 42" TERM; while true; do sleep 0.1; done'];
      edit(c);
    });

  test('the runc bundle workflow: spec, edit config.json, run ID prints and exits with the process\'s code', () => {
    const dir = bundle((c) => {
      c.process.args = ['sh', '-c', 'echo hello from $(hostname) as $(id -u); exit 3'];
    });
    expect(oci(['spec', '--bundle', dir]).stderr).toMatch(/config\.json exists/);
    const result = oci(['run', 'first'], { cwd: dir });
    expect(result).toMatchObject({ status: 3, stdout: 'hello from tsrun as 0\n' });
    expect(ok(['list', '-q'])).toBe('');
  });

  test('create waits for start; state follows created, running, stopped; delete refuses a created container without --force', async () => {
    const dir = sleeper();
    const pidFile = path.join(tmp(), 'c1.pid');
    ok(['create', '--bundle', dir, '--pid-file', pidFile, 'c1']);
    const created = state('c1');
    expect(created).toMatchObject({ ociVersion: '1.2.0', id: 'c1', status: 'created', bundle: dir });
    expect(Number(fs.readFileSync(pidFile, 'utf8'))).toBe(created.pid);
    expect(isRunning(created.pid as number, undefined)).toBe(true);
    expect(JSON.parse(ok(['list', '--format', 'json']))).toEqual([expect.objectContaining({ id: 'c1', status: 'created' })]);

    const refused = oci(['delete', 'c1']);
    expect(refused.status).toBe(1);
    expect(refused.stderr).toMatch(/cannot delete created container c1: stop it first or use --force/);
    expect(oci(['create', '--bundle', dir, 'c1']).stderr).toMatch(/container c1 already exists/);

    ok(['start', 'c1']);
    expect(state('c1').status).toBe('running');
    expect(oci(['start', 'c1']).stderr).toMatch(/cannot start running container c1: start needs a created container/);
    expect(JSON.parse(ok(['ps', '--format', 'json', 'c1']))).toContain(created.pid);

    ok(['kill', 'c1', 'TERM']);
    await until(() => state('c1').status === 'stopped', 'the init to stop');
    expect(state('c1').pid).toBeUndefined();
    expect(oci(['kill', 'c1', 'KILL']).stderr).toMatch(/cannot kill stopped container c1/);
    ok(['delete', 'c1']);
    expect(oci(['state', 'c1'])).toMatchObject({ status: 1, stderr: expect.stringMatching(/container c1 does not exist/) });
    expect(hostTsrunCgroups().filter((cg) => cg.endsWith('/c1'))).toEqual([]);
  });

  test('delete --force kills a created or running container; kill takes numbers and names without SIG', async () => {
    ok(['create', '--bundle', sleeper(), 'forced']);
    const { pid } = state('forced');
    ok(['delete', '--force', 'forced']);
    expect(isRunning(pid as number, undefined)).toBe(false);

    ok(['run', '--detach', '--bundle', sleeper(), 'numbered']);
    ok(['kill', 'numbered', '9']);
    await until(() => state('numbered').status === 'stopped', 'the init to die');
    ok(['delete', 'numbered']);
    // --force on a container that is not there is not an error, as runc's.
    ok(['delete', '--force', 'never-existed']);
  });

  test('exec: a command, a process.json, its exit code; pause and resume through the freezer', async () => {
    ok(['run', '-d', '--bundle', sleeper(), 'ex']);
    expect(ok(['exec', 'ex', 'sh', '-c', 'echo $$ $(cat /proc/1/cmdline | tr "\\0" " ")'])).toMatch(/^\d+ sh -c trap/);
    expect(oci(['exec', '--cwd', '/tmp', '-e', 'X=1', 'ex', 'sh', '-c', 'echo $X $(pwd); exit 7'])).toMatchObject({ status: 7, stdout: '1 /tmp\n' });
    const processFile = path.join(tmp(), 'process.json');
    fs.writeFileSync(processFile, JSON.stringify({ args: ['sh', '-c', 'id -u'], env: ['PATH=/bin:/usr/bin'], cwd: '/', user: { uid: 1000, gid: 1000 } }));
    expect(ok(['exec', '--process', processFile, 'ex'])).toBe('1000\n');

    ok(['pause', 'ex']);
    expect(state('ex').status).toBe('paused');
    expect(oci(['pause', 'ex']).stderr).toMatch(/cannot pause paused container ex/);
    ok(['resume', 'ex']);
    expect(state('ex').status).toBe('running');
    ok(['delete', '-f', 'ex']);
  });

  test('hooks get the state on stdin at their points; a failing createRuntime hook fails create and leaves nothing', () => {
    const out = path.join(tmp(), 'hooks');
    fs.mkdirSync(out);
    const hook = (name: string) => ({ path: '/bin/sh', args: ['sh', '-c', `cat > ${out}/${name}`] });
    const dir = sleeper((c) => {
      c.hooks = {
        createRuntime: [hook('createRuntime')],
        // Run in the container: its own root, where /hooks is the test's dir bound in.
        startContainer: [{ path: '/bin/sh', args: ['sh', '-c', 'cat > /hooks/startContainer; echo >> /hooks/startContainer; hostname >> /hooks/startContainer'] }],
        poststart: [hook('poststart')],
        poststop: [hook('poststop')],
      };
      c.mounts.push({ destination: '/hooks', source: out, options: ['bind'] });
      c.hostname = 'hooked-host';
    });
    ok(['create', '--bundle', dir, 'hooked']);
    const atCreate = JSON.parse(fs.readFileSync(path.join(out, 'createRuntime'), 'utf8'));
    expect(atCreate).toMatchObject({ id: 'hooked', status: 'creating', bundle: dir, pid: state('hooked').pid });
    expect(fs.existsSync(path.join(out, 'poststart'))).toBe(false);
    expect(fs.existsSync(path.join(out, 'startContainer'))).toBe(false);
    ok(['start', 'hooked']);
    const [startState, hostname] = fs.readFileSync(path.join(out, 'startContainer'), 'utf8').split('\n');
    expect(JSON.parse(startState)).toMatchObject({ id: 'hooked', status: 'created' });
    expect(hostname).toBe('hooked-host');
    expect(JSON.parse(fs.readFileSync(path.join(out, 'poststart'), 'utf8'))).toMatchObject({ id: 'hooked', status: 'running' });
    ok(['delete', '-f', 'hooked']);
    expect(JSON.parse(fs.readFileSync(path.join(out, 'poststop'), 'utf8'))).toMatchObject({ id: 'hooked', status: 'stopped' });

    const failing = sleeper((c) => {
      c.hooks = { createRuntime: [{ path: '/bin/sh', args: ['sh', '-c', 'echo no way >&2; exit 9'] }] };
    });
    const result = oci(['create', '--bundle', failing, 'unhooked']);
    expect(result.status).toBe(1);
    expect(result.stderr).toMatch(/createRuntime hook \/bin\/sh exited 9: no way/);
    expect(oci(['state', 'unhooked']).status).toBe(1);
  });

  test('config.json is checked: unknown capabilities, versions past 1.3, bad rlimits are refused; errors go to --log as JSON', () => {
    const log = path.join(tmp(), 'runtime.log');
    const badCap = bundle((c) => {
      c.process.capabilities.bounding.push('CAP_NOT_A_THING');
    });
    const result = spawnSync(OCI, ['--root', stateRoot(), '--log', log, '--log-format', 'json', 'create', '--bundle', badCap, 'badcap'], { encoding: 'utf8' });
    expect(result.status).toBe(1);
    expect(result.stderr).toMatch(/process\.capabilities\.bounding\[3\]: unknown capability "CAP_NOT_A_THING"/);
    const line = JSON.parse(fs.readFileSync(log, 'utf8').trim().split('\n').pop() as string);
    expect(line).toMatchObject({ level: 'error', msg: expect.stringMatching(/unknown capability/) });

    expect(oci(['create', '--bundle', bundle((c) => (c.ociVersion = '2.0.0')), 'v2']).stderr).toMatch(/ociVersion: 2\.0\.0 is not supported/);
    expect(oci(['create', '--bundle', bundle((c) => (c.process.rlimits = [{ type: 'RLIMIT_BOGUS', soft: 1, hard: 1 }])), 'rl']).stderr).toMatch(/unknown rlimit/);
    expect(ok(['list', '-q'])).toBe('');
  });

  test('ociVersion 1.3, rlimits, sysctl, oomScoreAdj, joined network and pid namespaces are applied', () => {
    ok(['run', '-d', '--bundle', sleeper(), 'netowner']);
    const owner = state('netowner').pid as number;
    const dir = bundle((c) => {
      c.ociVersion = '1.3.0';
      c.process.args = ['sh', '-c', 'ulimit -n; cat /proc/sys/net/ipv4/ip_forward; cat /proc/self/oom_score_adj; readlink /proc/self/ns/net'];
      c.process.rlimits = [{ type: 'RLIMIT_NOFILE', soft: 512, hard: 512 }];
      c.process.oomScoreAdj = 123;
      c.root.readonly = false;
      c.linux.sysctl = { 'net.ipv4.ip_forward': '1' };
      c.linux.namespaces = c.linux.namespaces.map((ns: { type: string }) => (ns.type === 'network' ? { type: 'network', path: `/proc/${owner}/ns/net` } : ns));
    });
    const result = oci(['run', 'joiner'], { cwd: dir });
    expect(result.stderr).toBe('');
    expect(result.stdout).toBe(`512\n1\n123\n${fs.readlinkSync(`/proc/${owner}/ns/net`)}\n`);

    // Joining its pid namespace: the owner's init is PID 1 there too.
    const pidJoiner = bundle((c) => {
      c.process.args = ['sh', '-c', 'tr "\\0" " " < /proc/1/cmdline; echo; readlink /proc/self/ns/pid'];
      c.linux.namespaces = c.linux.namespaces.map((ns: { type: string }) => (ns.type === 'pid' ? { type: 'pid', path: `/proc/${owner}/ns/pid` } : ns));
    });
    const joined = oci(['run', 'pidjoiner'], { cwd: pidJoiner });
    expect(joined.stderr).toBe('');
    expect(joined.stdout).toBe(`sh -c trap "exit 42" TERM; while true; do sleep 0.1; done \n${fs.readlinkSync(`/proc/${owner}/ns/pid`)}\n`);
    ok(['delete', '-f', 'netowner']);
  });

  test('process.terminal: the init gets a pty of its own devpts as its stdio and controlling terminal; the master goes to --console-socket', async () => {
    const socketPath = path.join(tmp(), 'console.sock');
    // An independent receiver: python's socket.recv_fds takes the master and reads the container's output from it.
    const receiver = spawn('python3', ['-c', CONSOLE_RECEIVER, socketPath], { stdio: ['ignore', 'pipe', 'inherit'] });
    let received = '';
    receiver.stdout.setEncoding('utf8').on('data', (d: string) => (received += d));
    const done = new Promise((resolve) => receiver.once('close', resolve));
    await until(() => received.startsWith('ready\n'), 'the console socket');
    const dir = bundle((c) => {
      c.process.terminal = true;
      c.process.args = ['sh', '-c', '[ -t 0 ] && [ -t 1 ] && echo both-ttys; stty size; tty; ls -l $(tty) | cut -c1; exit 4'];
      c.process.consoleSize = { height: 33, width: 101 };
    });
    expect(oci(['run', '--console-socket', socketPath, '--bundle', dir, 'tty1']).status).toBe(4);
    await done;
    const [, , ...output] = received.split('\n');
    // The container's own devpts: its first pty, a character device that exists in there.
    expect(output.join('\n').replace(/\r/g, '')).toBe('both-ttys\n33 101\n/dev/pts/0\nc\n');
    expect(oci(['run', '--bundle', dir, 'tty2']).stderr).toMatch(/process\.terminal: a terminal needs --console-socket/);
  });

  test('features says what is supported', () => {
    const features = JSON.parse(ok(['features']));
    expect(features).toMatchObject({ ociVersionMin: '1.0.0', ociVersionMax: '1.3.0' });
    expect(features.hooks).toEqual(expect.arrayContaining(['createRuntime', 'poststop']));
    expect(features.linux.capabilities).toContain('CAP_SYS_ADMIN');
  });
});
