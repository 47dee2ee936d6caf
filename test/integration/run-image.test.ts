import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { run } from '../../src';
import { commitContainer, containerChanges, listContainers, removeContainer } from '../../src/runtime/containers';
import { Store } from '../../src/storage/store';
import { busyboxRootfs, describeAsRoot, useTempDir } from '../helpers/fixtures';
import { checkLeaksAfterEach } from '../helpers/leaks';
import { collectOutput } from '../helpers/run';

const TSRUN = path.resolve(__dirname, '..', '..', 'bin', 'tsrun');

describeAsRoot('tsrun run IMAGE', () => {
  const tmp = useTempDir('tsrun-image-run-');
  const root = () => path.join(tmp(), 'store');
  const stateDir = () => path.join(tmp(), 'state');
  checkLeaksAfterEach();

  beforeAll(async () => {
    const tar = path.join(tmp(), 'busybox.tar');
    execFileSync('tar', ['-C', busyboxRootfs(), '-cf', tar, '.']);
    await Store.open(root()).importRootfs(tar, 'busybox:test', { changes: ['CMD ["sh", "-c", "echo default command"]', 'ENV FROM_IMAGE=yes', 'WORKDIR /work'] });
  });

  async function collect(options: Parameters<typeof run>[0]): Promise<{ stdout: string; stderr: string; exitCode: number; id: string }> {
    return collectOutput(await run({ root: root(), stateDir: stateDir(), stdio: 'pipe', ...options }));
  }

  test('the image config gives the command, env and working dir; -e and args override', async () => {
    expect(await collect({ image: 'busybox:test', autoRemove: true })).toMatchObject({ stdout: 'default command\n', exitCode: 0 });
    const result = await collect({ image: 'busybox:test', args: ['sh', '-c', 'echo $FROM_IMAGE $EXTRA $(pwd)'], env: ['EXTRA=1'], autoRemove: true });
    expect(result).toMatchObject({ stdout: 'yes 1 /work\n', stderr: '', exitCode: 0 });
  });

  test('hostname, hosts and resolv.conf come from the -init layer', async () => {
    const result = await collect({ image: 'busybox:test', hostname: 'web1', args: ['sh', '-c', 'cat /etc/hostname; hostname; grep -c localhost /etc/hosts; grep -c nameserver /etc/resolv.conf'], autoRemove: true });
    expect(result.stdout).toMatch(/^web1\nweb1\n[1-9]\d*\n[1-9]\d*\n$/);
  });

  test('--rm leaves no record, no layer and no mount', async () => {
    const overlay = path.join(root(), 'overlay2');
    const before = fs.readdirSync(overlay).sort();
    const { id } = await collect({ image: 'busybox:test', args: ['touch', '/x'], autoRemove: true });
    expect(fs.readdirSync(overlay).sort()).toEqual(before);
    expect(listContainers({ root: root(), stateDir: stateDir() }).map((c) => c.id)).not.toContain(id);
  });

  test('write, delete, commit, run the new image: the changes are there and nothing of the -init layer', async () => {
    const first = await collect({
      image: 'busybox:test',
      name: 'writer',
      hostname: 'first-host',
      args: ['sh', '-c', 'echo new > /added; rm /etc/group; mkdir -p /data && echo kept > /data/file'],
    });
    expect(first.exitCode).toBe(0);
    const summary = listContainers({ root: root(), stateDir: stateDir() }).find((c) => c.name === 'writer');
    expect(summary).toMatchObject({ status: 'exited', exitCode: 0, image: 'busybox:test' });

    const changes = containerChanges('writer', { root: root(), stateDir: stateDir() });
    expect(changes).toEqual(expect.arrayContaining([
      { kind: 'A', path: '/added' },
      { kind: 'D', path: '/etc/group' },
      { kind: 'A', path: '/data' },
      { kind: 'A', path: '/data/file' },
    ]));
    expect(changes.map((c) => c.path)).not.toContain('/etc/hostname');

    const store = Store.open(root());
    const base = store.resolve('busybox:test');
    const committed = await commitContainer('writer', 'busybox:committed', { root: root(), stateDir: stateDir(), changes: ['CMD ["cat", "/added"]'] });
    const image = store.resolve('busybox:committed');
    expect(image.id).toBe(committed.id);
    expect(image.layers).toHaveLength(base.layers.length + 1);
    const newLayer = image.layers[image.layers.length - 1].dir;
    expect(fs.existsSync(path.join(newLayer, 'added'))).toBe(true);
    expect(fs.existsSync(path.join(newLayer, 'etc', 'hostname'))).toBe(false);
    expect(fs.existsSync(path.join(newLayer, 'etc', 'resolv.conf'))).toBe(false);

    const second = await collect({ image: 'busybox:committed', autoRemove: true });
    expect(second).toMatchObject({ stdout: 'new\n', exitCode: 0 });
    const check = await collect({ image: 'busybox:committed', args: ['sh', '-c', 'cat /data/file; test -e /etc/group || echo no-group; hostname'], hostname: 'second', autoRemove: true });
    expect(check.stdout).toBe('kept\nno-group\nsecond\n');

    await removeContainer('writer', { root: root(), stateDir: stateDir() });
    expect(fs.existsSync(path.join(root(), 'overlay2', first.id))).toBe(false);
    expect(fs.existsSync(path.join(root(), 'overlay2', `${first.id}-init`))).toBe(false);
  });

  test('the CLI: run, ps -a, diff, commit, rm', () => {
    const cli = (...args: string[]) => spawnSync(TSRUN, ['--root', root(), '--state', stateDir(), ...args], { encoding: 'utf8' });
    const ran = cli('run', '--name', 'cli-box', 'busybox:test', 'sh', '-c', 'echo hello > /hello; exit 3');
    expect(ran.stderr).toBe('');
    expect(ran.status).toBe(3);
    const ps = cli('ps', '-a');
    expect(ps.stdout).toMatch(/^CONTAINER ID\s+IMAGE\s+COMMAND\s+CREATED\s+STATUS\s+NAMES$/m);
    expect(ps.stdout).toMatch(/busybox:test .*Exited \(3\) .* cli-box$/m);
    expect(cli('ps').stdout).not.toMatch(/cli-box/);
    // As in Docker, the image's missing WORKDIR is made in the container's layer.
    expect(cli('diff', 'cli-box').stdout).toBe('A /hello\nA /work\n');
    const commit = cli('commit', '-c', 'CMD ["cat", "/hello"]', 'cli-box', 'cli-image:v1');
    expect(commit.stdout).toMatch(/^sha256:[0-9a-f]{64}\n$/);
    expect(cli('run', '--rm', 'cli-image:v1').stdout).toBe('hello\n');
    expect(cli('rm', 'cli-box')).toMatchObject({ status: 0, stdout: 'cli-box\n' });
    expect(cli('rm', 'cli-box')).toMatchObject({ status: 1, stderr: 'tsrun: No such container: cli-box\n' });
  });

  test('rm refuses a running container and -f kills it first', async () => {
    const container = await run({ root: root(), stateDir: stateDir(), image: 'busybox:test', name: 'sleeper', args: ['sleep', '1000'], stdio: 'ignore' });
    await expect(removeContainer('sleeper', { root: root(), stateDir: stateDir() })).rejects.toThrow(/cannot remove running container/);
    await removeContainer('sleeper', { root: root(), stateDir: stateDir(), force: true });
    expect((await container.wait()).signal).toBe('SIGKILL');
    expect(fs.existsSync(path.join(root(), 'overlay2', container.id))).toBe(false);
  });

  test('an unknown image, a missing command: clear errors and nothing left in the store', async () => {
    const overlay = path.join(root(), 'overlay2');
    const before = fs.readdirSync(overlay).sort();
    await expect(run({ root: root(), stateDir: stateDir(), image: 'nosuch:image', stdio: 'ignore' })).rejects.toThrow(/No such image: nosuch:image/);
    await expect(run({ root: root(), stateDir: stateDir(), image: 'busybox:test', args: ['/bin/nope'], stdio: 'ignore', autoRemove: true })).rejects.toThrow(
      'process: exec /bin/nope: ENOENT (no such file or directory)',
    );
    expect(fs.readdirSync(overlay).sort()).toEqual(before);
  });
});
