import { ChildProcess, spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { MNT_DETACH, MS } from '../../src/linux/mounts';
import { loadNative } from '../../src/native';
import { Store } from '../../src/storage/store';
import { busyboxRootfs, describeAsRoot, useTempDir } from '../helpers/fixtures';
import { checkLeaksAfterEach } from '../helpers/leaks';
import { until } from '../helpers/until';

const TSRUN = path.resolve(__dirname, '..', '..', 'bin', 'tsrun');

describeAsRoot('volumes: -v, --mount, --tmpfs, tsrun volume', () => {
  const tmp = useTempDir('tsrun-volumes-');
  const root = () => path.join(tmp(), 'store');
  const state = () => path.join(tmp(), 'state');
  checkLeaksAfterEach();

  beforeAll(async () => {
    const tar = path.join(tmp(), 'busybox.tar');
    fs.mkdirSync(path.join(tmp(), 'extra', 'srv', 'seed'), { recursive: true });
    fs.writeFileSync(path.join(tmp(), 'extra', 'srv', 'seed', 'from-image'), 'seeded\n');
    // A link that, followed on the host, would leave the root for a host directory.
    fs.symlinkSync(`../../../..${path.join(tmp(), 'escape-target')}`, path.join(tmp(), 'extra', 'srv', 'evil'));
    spawnSync('tar', ['-cf', tar, '-C', busyboxRootfs(), '.', '-C', path.join(tmp(), 'extra'), './srv']);
    await Store.open(root()).importRootfs(tar, 'busybox:vol');
  });

  function tsrun(args: string[]): { status: number | null; stdout: string; stderr: string } {
    const result = spawnSync(TSRUN, ['--root', root(), '--state', state(), ...args], { encoding: 'utf8', timeout: 30_000 });
    return { status: result.status, stdout: result.stdout, stderr: result.stderr };
  }

  function hostDir(name: string): string {
    const dir = path.join(tmp(), name);
    fs.mkdirSync(dir, { recursive: true });
    return dir;
  }

  test('-v HOST:CTR:ro: reads work, writes fail with EROFS', () => {
    const dir = hostDir('ro');
    fs.writeFileSync(path.join(dir, 'in'), 'from host\n');
    const result = tsrun(['run', '--rm', '-v', `${dir}:/data:ro`, 'busybox:vol', 'sh', '-c', 'cat /data/in; touch /data/new']);
    expect(result.stdout).toBe('from host\n');
    expect(result.stderr).toMatch(/Read-only file system/);
    expect(result.status).not.toBe(0);
    expect(fs.existsSync(path.join(dir, 'new'))).toBe(false);
  });

  test('-v HOST:CTR (rw): a file written in the container appears on the host', () => {
    const dir = hostDir('rw');
    const result = tsrun(['run', '--rm', '-v', `${dir}:/data:rw`, 'busybox:vol', 'sh', '-c', 'echo written > /data/out']);
    expect(result).toMatchObject({ status: 0, stderr: '' });
    expect(fs.readFileSync(path.join(dir, 'out'), 'utf8')).toBe('written\n');
  });

  test('-v with a missing source creates it; --mount type=bind refuses one, naming the path', () => {
    const missing = path.join(tmp(), 'made-by-v');
    expect(tsrun(['run', '--rm', '-v', `${missing}:/m`, 'busybox:vol', 'true']).status).toBe(0);
    expect(fs.statSync(missing).isDirectory()).toBe(true);
    const refused = tsrun(['run', '--rm', '--mount', `type=bind,source=${path.join(tmp(), 'nope')},target=/m`, 'busybox:vol', 'true']);
    expect(refused.status).toBe(125);
    expect(refused.stderr).toContain(`bind source path does not exist: ${path.join(tmp(), 'nope')}`);
    expect(tsrun(['run', '--rm', '-v', 'relative:/m:bogus', 'busybox:vol', 'true']).stderr).toMatch(/unknown option "bogus"/);
  });

  test('a destination that is a symlink out of the root lands inside the root', () => {
    const dir = hostDir('escape-src');
    fs.writeFileSync(path.join(dir, 'f'), 'x');
    const outside = hostDir('escape-target');
    const bound = tsrun(['run', '--rm', '-v', `${dir}:/srv/evil`, 'busybox:vol', 'sh', '-c', `ls ${outside}`]);
    expect(bound).toMatchObject({ status: 0, stdout: 'f\n' });
    expect(fs.readdirSync(outside)).toEqual([]);
  });

  test('rshared: a mount made on the host under the volume appears in the running container, and one made in the container on the host', async () => {
    // The source must sit on a shared mount for anything to propagate (Docker checks the same).
    const shared = hostDir('shared');
    const native = loadNative();
    native.mount('tmpfs', shared, 'tmpfs', 0, 'size=1m');
    const sub = path.join(shared, 'sub');
    const fromContainer = path.join(shared, 'from-container');
    let child: ChildProcess | undefined;
    try {
      native.mount(null, shared, null, MS.SHARED, null);
      fs.mkdirSync(sub);
      fs.mkdirSync(fromContainer);
      const script = [
        'mount -t tmpfs -o size=1m tmpfs /vol/from-container && echo made-inside > /vol/from-container/marker',
        'touch /vol/ready',
        'while [ ! -e /vol/sub/marker ]; do sleep 0.05; done',
        'cat /vol/sub/marker',
      ].join('; ');
      child = spawn(TSRUN, ['--root', root(), '--state', state(), 'run', '--rm', '--cap-add', 'SYS_ADMIN', '-v', `${shared}:/vol:rshared`, 'busybox:vol', 'sh', '-c', script], { stdio: ['ignore', 'pipe', 'pipe'] });
      const running = child;
      let output = '';
      running.stdout?.setEncoding('utf8').on('data', (d: string) => (output += d));
      running.stderr?.setEncoding('utf8').on('data', (d: string) => (output += d));
      const exited = new Promise<number | null>((resolve) => running.on('close', resolve));
      await until(() => (fs.existsSync(path.join(shared, 'ready')) || running.exitCode !== null ? true : undefined), 'the container to be ready');
      expect(fs.readFileSync(path.join(fromContainer, 'marker'), 'utf8')).toBe('made-inside\n');
      native.mount('tmpfs', sub, 'tmpfs', 0, 'size=1m');
      fs.writeFileSync(path.join(sub, 'marker'), 'propagated\n');
      expect(await exited).toBe(0);
      expect(output).toBe('propagated\n');
    } finally {
      if (child && child.exitCode === null && child.signalCode === null) {
        // A failed check: the container waits for a marker that will not come. Its tsrun's death kills it; ps removes its cgroup.
        const closed = new Promise((resolve) => child?.once('close', resolve));
        child.kill('SIGKILL');
        await closed;
        tsrun(['ps', '-a']);
      }
      // Detaching the shared tmpfs takes the mounts under it along.
      native.umount2(shared, MNT_DETACH);
    }
  });

  test('rslave: host mounts come in, the container\'s own stay inside', async () => {
    const shared = hostDir('slave');
    const native = loadNative();
    native.mount('tmpfs', shared, 'tmpfs', 0, 'size=1m');
    try {
      native.mount(null, shared, null, MS.SHARED, null);
      fs.mkdirSync(path.join(shared, 'inner'));
      const result = spawnSync(TSRUN, ['--root', root(), '--state', state(), 'run', '--rm', '--cap-add', 'SYS_ADMIN', '-v', `${shared}:/vol:rslave`, 'busybox:vol', 'sh', '-c', 'mount -t tmpfs tmpfs /vol/inner && touch /vol/inner/x && grep -c " /vol/inner " /proc/self/mountinfo'], { encoding: 'utf8', timeout: 30_000 });
      expect(result).toMatchObject({ status: 0, stdout: '1\n' });
      expect(fs.readdirSync(path.join(shared, 'inner'))).toEqual([]);
    } finally {
      native.umount2(shared, MNT_DETACH);
    }
  });

  test('named volume: created on first use with the image\'s content, kept across containers, in use until the container goes', () => {
    const first = tsrun(['run', '--name', 'vol-user', '-v', 'data1:/srv/seed', 'busybox:vol', 'sh', '-c', 'cat /srv/seed/from-image; echo more > /srv/seed/added']);
    expect(first).toMatchObject({ status: 0, stdout: 'seeded\n' });
    expect(tsrun(['volume', 'ls', '-q']).stdout).toBe('data1\n');
    const info = JSON.parse(tsrun(['volume', 'inspect', 'data1']).stdout) as { Name: string; Mountpoint: string }[];
    expect(info[0]).toMatchObject({ Name: 'data1', Mountpoint: path.join(root(), 'volumes', 'data1', '_data') });
    expect(fs.readFileSync(path.join(info[0].Mountpoint, 'added'), 'utf8')).toBe('more\n');
    const [inspected] = JSON.parse(tsrun(['inspect', 'vol-user']).stdout) as { Mounts: unknown[] }[];
    expect(inspected.Mounts).toEqual([{ Type: 'volume', Name: 'data1', Source: info[0].Mountpoint, Destination: '/srv/seed', Mode: '', RW: true, Propagation: '' }]);

    const second = tsrun(['run', '--rm', '--mount', 'type=volume,source=data1,target=/other,readonly', 'busybox:vol', 'sh', '-c', 'cat /other/added; touch /other/x 2>/dev/null || echo ro']);
    expect(second.stdout).toBe('more\nro\n');

    const busy = tsrun(['volume', 'rm', 'data1']);
    expect(busy.status).not.toBe(0);
    expect(busy.stderr).toMatch(/volume is in use by container/);
    expect(tsrun(['rm', 'vol-user']).status).toBe(0);
    expect(tsrun(['volume', 'rm', 'data1'])).toMatchObject({ status: 0, stdout: 'data1\n' });
    expect(tsrun(['volume', 'inspect', 'data1']).stderr).toMatch(/No such volume: data1/);
  });

  test('an anonymous volume (-v /path) goes with its --rm container, or with rm -v; volume create makes an empty one', () => {
    expect(tsrun(['run', '--rm', '-v', '/srv/seed', 'busybox:vol', 'cat', '/srv/seed/from-image'])).toMatchObject({ status: 0, stdout: 'seeded\n' });
    expect(tsrun(['volume', 'ls', '-q']).stdout).toBe('');
    expect(tsrun(['volume', 'create', 'made']).stdout).toBe('made\n');
    expect(tsrun(['run', '--rm', '-v', 'made:/srv/seed:nocopy', 'busybox:vol', 'ls', '/srv/seed']).stdout).toBe('');
    expect(tsrun(['volume', 'rm', 'made']).status).toBe(0);

    expect(tsrun(['run', '--name', 'keeps-anon', '-v', '/srv/seed', 'busybox:vol', 'true']).status).toBe(0);
    expect(tsrun(['volume', 'ls', '-q']).stdout).toMatch(/^[0-9a-f]{64}\n$/);
    expect(tsrun(['rm', '-v', 'keeps-anon']).status).toBe(0);
    expect(tsrun(['volume', 'ls', '-q']).stdout).toBe('');
  });

  test('--tmpfs and --mount type=tmpfs: size, mode and noexec as asked', () => {
    const result = tsrun(['run', '--rm', '--tmpfs', '/scratch:size=2m', '--mount', 'type=tmpfs,target=/t2,tmpfs-mode=1770', 'busybox:vol', 'sh', '-c', 'grep -E " /(scratch|t2) " /proc/mounts; stat -c %a /t2']);
    expect(result.status).toBe(0);
    const lines = result.stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^tmpfs \/scratch tmpfs rw,nosuid,nodev,noexec,.*size=2048k/);
    expect(lines[1]).toMatch(/^tmpfs \/t2 tmpfs rw,nosuid,nodev,/);
    expect(lines[2]).toBe('1770');
  });
});
