import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { busyboxRootfs, describeAsRoot, useTempDir } from '../helpers/fixtures';
import { hex, readJson, storeSnapshot, tarOf, writeTree } from '../helpers/images';
import { checkLeaksAfterEach } from '../helpers/leaks';

const TSRUN = path.resolve(__dirname, '..', '..', 'bin', 'tsrun');

interface Result {
  status: number | null;
  stdout: string;
  stderr: string;
}

describeAsRoot('tsrun system check, df and prune', () => {
  const tmp = useTempDir('tsrun-system-');
  checkLeaksAfterEach();
  /** A store with busybox, an image one layer above it, and an exited container that wrote a file. */
  const pristine = (): string => path.join(tmp(), 'pristine');
  let stores = 0;

  function tsrun(root: string, ...args: string[]): Result {
    return spawnSync(TSRUN, ['--root', root, '--state', path.join(tmp(), 'state'), ...args], { encoding: 'utf8', input: '', timeout: 60_000 });
  }

  /** A copy of the pristine store to damage. */
  function copy(): string {
    const root = path.join(tmp(), `store-${++stores}`);
    execFileSync('cp', ['-a', pristine(), root]);
    return root;
  }

  function layerOf(root: string, reference: string, index: number): { diffID: string; dir: string } {
    const inspect = JSON.parse(tsrun(root, 'image', 'inspect', reference).stdout) as { RootFS: { Layers: string[] } }[];
    const diffID = inspect[0].RootFS.Layers[index];
    return { diffID, dir: path.join(root, 'overlay2', hex(diffID)) };
  }

  function blobsOf(root: string, reference: string): { manifest: string; layers: string[] } {
    const id = tsrun(root, 'images', '-q', '--no-trunc', reference).stdout.trim();
    const record = readJson<{ manifest: string }>(path.join(root, 'images', `${hex(id)}.json`));
    const manifest = readJson<{ layers: { digest: string }[] }>(path.join(root, 'blobs', 'sha256', hex(record.manifest)));
    return { manifest: record.manifest, layers: manifest.layers.map((l) => l.digest) };
  }

  beforeAll(() => {
    const tar = path.join(tmp(), 'busybox.tar');
    fs.writeFileSync(tar, tarOf(busyboxRootfs()));
    expect(tsrun(pristine(), 'import', '-c', 'CMD ["sh"]', tar, 'busybox:base').status).toBe(0);
    const extra = path.join(tmp(), 'extra.tar');
    fs.writeFileSync(extra, tarOf(writeTree(path.join(tmp(), 'extra'), { 'etc/motd': 'hello\n', 'srv/data/a': 'a\n' })));
    expect(tsrun(pristine(), 'import', extra, 'extra:1').status).toBe(0);
    expect(tsrun(pristine(), 'run', '--name', 'writer', 'busybox:base', 'sh', '-c', 'echo x > /written')).toMatchObject({ status: 0 });
  });

  test('a whole store checks clean, with --content too', () => {
    expect(tsrun(pristine(), 'system', 'check')).toMatchObject({ status: 0, stdout: 'store OK: 2 images, 2 layers, 6 blobs, 1 containers\n' });
    expect(tsrun(pristine(), 'system', 'check', '--content')).toMatchObject({ status: 0, stdout: 'store OK: 2 images, 2 layers, 6 blobs, 1 containers\n' });
  });

  test('--content finds a changed, an added and a removed file in a layer, and a chmod; a repair drops the image, not the layer a container uses', () => {
    const root = copy();
    const busybox = layerOf(root, 'busybox:base', 0);
    const extra = layerOf(root, 'extra:1', 0);
    fs.writeFileSync(path.join(extra.dir, 'diff', 'etc', 'motd'), 'HELLO\n');
    fs.writeFileSync(path.join(extra.dir, 'diff', 'planted'), 'x');
    fs.rmSync(path.join(extra.dir, 'diff', 'srv', 'data', 'a'));
    fs.chmodSync(path.join(busybox.dir, 'diff', 'bin'), 0o777);

    expect(tsrun(root, 'system', 'check').status).toBe(0);
    const check = tsrun(root, 'system', 'check', '--content');
    expect(check.status).toBe(1);
    const lines = check.stdout.trimEnd().split('\n');
    const extraLine = lines.find((l) => l.startsWith(`corrupt-layer ${extra.diffID}: `));
    expect(extraLine).toContain('/etc/motd has other content');
    expect(extraLine).toContain('/srv/data/a is missing');
    expect(extraLine).toContain('/planted is not in the layer');
    expect(lines).toContain(`corrupt-layer ${busybox.diffID}: its files differ from blob ${blobsOf(root, 'busybox:base').layers[0]}: /bin has mode 777, not 755`);
    // Both images are broken by their damaged layers, and so are their tags; the container's image layer is damaged.
    expect(lines.filter((l) => l.startsWith('broken-image '))).toHaveLength(2);
    expect(lines.filter((l) => l.startsWith('dangling-tag '))).toEqual([expect.stringMatching(/^dangling-tag busybox:base: tag of broken image/), expect.stringMatching(/^dangling-tag extra:1: tag of broken image/)]);
    expect(lines).toContainEqual(expect.stringMatching(new RegExp(`^container-layers [0-9a-f]{64}: container writer lacks image layer ${busybox.diffID}; remove it with tsrun rm$`)));
    expect(lines.at(-1)).toBe('7 problems in 2 images, 2 layers, 6 blobs, 1 containers; run with --repair to fix them');

    const repaired = tsrun(root, 'system', 'check', '--content', '--repair');
    expect(repaired.status).toBe(1);
    expect(repaired.stdout).toContain(`corrupt-layer ${extra.diffID}: `);
    expect(repaired.stdout).toMatch(/corrupt-layer \S+: .*\(repaired\)\n/);
    expect(repaired.stdout).toContain('; a container uses it: remove the container, then repair again\n');
    expect(tsrun(root, 'images', '--format', 'json').stdout).not.toContain('extra:1');
    expect(tsrun(root, 'rm', 'writer').status).toBe(0);
    expect(tsrun(root, 'system', 'check', '--content', '--repair').status).toBe(0);
    expect(tsrun(root, 'system', 'check', '--content')).toMatchObject({ status: 0, stdout: 'store OK: 0 images, 0 layers, 0 blobs, 0 containers\n' });
  });

  test('a damaged blob, a missing layer, a dangling tag, a bad record: named; --repair leaves a consistent store', () => {
    const root = copy();
    const blobs = blobsOf(root, 'extra:1');
    fs.appendFileSync(path.join(root, 'blobs', 'sha256', hex(blobs.layers[0])), 'x');
    const tags = readJson<Record<string, string>>(path.join(root, 'images', 'tags.json'));
    fs.writeFileSync(path.join(root, 'images', 'tags.json'), JSON.stringify({ ...tags, 'ghost:1': `sha256:${'e'.repeat(64)}` }));
    fs.writeFileSync(path.join(root, 'images', `${'f'.repeat(64)}.json`), '{"id": trunc');

    const check = tsrun(root, 'system', 'check', '--content');
    expect(check.status).toBe(1);
    expect(check.stdout).toContain(`corrupt-blob ${blobs.layers[0]}: content hashes to sha256:`);
    expect(check.stdout).toMatch(new RegExp(`broken-image sha256:[0-9a-f]{64}: its layer blob ${blobs.layers[0]} is damaged\n`));
    expect(check.stdout).toContain('dangling-tag extra:1: tag of broken image');
    expect(check.stdout).toContain(`dangling-tag ghost:1: tag of missing image sha256:${'e'.repeat(64)}`);
    expect(check.stdout).toContain(`bad-record ${'f'.repeat(64)}.json: not a readable image record`);

    expect(tsrun(root, 'system', 'check', '--content', '--repair').status).toBe(0);
    expect(tsrun(root, 'system', 'check', '--content')).toMatchObject({ status: 0, stdout: 'store OK: 1 images, 1 layers, 3 blobs, 1 containers\n' });
    expect(tsrun(root, 'run', '--rm', 'busybox:base', 'cat', '/etc/hostname').status).toBe(0);

    const missing = copy();
    const layer = layerOf(missing, 'extra:1', 0);
    fs.rmSync(layer.dir, { recursive: true });
    const broken = tsrun(missing, 'system', 'check');
    expect(broken.stdout).toMatch(new RegExp(`broken-image sha256:[0-9a-f]{64}: its layer ${layer.diffID} is missing\n`));
    expect(broken.stdout).toMatch(/broken-link l\/[A-Z0-9]{26}: a short link whose layer is gone\n/);
    expect(tsrun(missing, 'system', 'check', '--repair').status).toBe(0);
    expect(tsrun(missing, 'system', 'check')).toMatchObject({ status: 0, stdout: 'store OK: 1 images, 1 layers, 3 blobs, 1 containers\n' });
  });

  test('leftovers of interrupted operations: a stray overlay2 dir, dead staging, an unused blob; a container without its layers', () => {
    const root = copy();
    fs.mkdirSync(path.join(root, 'overlay2', 'c0ffee', 'diff'), { recursive: true });
    fs.mkdirSync(path.join(root, 'tmp', '999999999-1-abcdef-pull', 'layer'), { recursive: true });
    const orphan = Buffer.from('nobody uses me');
    const orphanDigest = `sha256:${require('node:crypto').createHash('sha256').update(orphan).digest('hex')}`;
    fs.writeFileSync(path.join(root, 'blobs', 'sha256', hex(orphanDigest)), orphan);

    const check = tsrun(root, 'system', 'check');
    expect(check.stdout).toContain(`unused-dir ${path.join(root, 'overlay2', 'c0ffee')}: neither a layer nor a container's`);
    expect(check.stdout).toContain(`stale-staging ${path.join(root, 'tmp', '999999999-1-abcdef-pull')}: staging of a process that is gone`);
    expect(check.stdout).toContain(`unused-blob ${orphanDigest}: no image uses it`);
    expect(tsrun(root, 'system', 'check', '--repair').status).toBe(0);
    expect(tsrun(root, 'system', 'check').stdout).toBe('store OK: 2 images, 2 layers, 6 blobs, 1 containers\n');

    const id = tsrun(root, 'ps', '-a', '-q', '--no-trunc').stdout.trim();
    fs.rmSync(path.join(root, 'overlay2', id), { recursive: true });
    const lost = tsrun(root, 'system', 'check', '--repair');
    expect(lost.status).toBe(1);
    expect(lost.stdout).toContain(`container-layers ${id}: container writer lacks its layer overlay2/${id}; remove it with tsrun rm\n`);
  });

  test('system df: images with shared layers once, containers by their writable layers', () => {
    const df = tsrun(pristine(), 'system', 'df');
    expect(df.status).toBe(0);
    const [header, images, containers, volumes] = df.stdout.trimEnd().split('\n');
    expect(header).toMatch(/^TYPE\s+TOTAL\s+ACTIVE\s+SIZE\s+RECLAIMABLE$/);
    expect(images).toMatch(/^Images\s+2\s+1\s+\d+(\.\d+)?MB\s+\d+(\.\d+)?kB \(0%\)$/);
    expect(containers).toMatch(/^Containers\s+1\s+0\s+2B\s+2B \(100%\)$/);
    expect(volumes).toMatch(/^Local Volumes\s+0\s+0\s+0B\s+0B$/);
  });

  test('--volumes: prune takes the anonymous volumes no container uses; volume prune -a the named ones too; df counts them', () => {
    const root = copy();
    const run = (...args: string[]): void => expect(tsrun(root, 'run', '--network', 'none', ...args)).toMatchObject({ status: 0 });
    expect(tsrun(root, 'volume', 'create', 'kept').status).toBe(0);
    run('--name', 'user', '-v', 'used:/data', 'busybox:base', 'sh', '-c', 'echo 1234 > /data/f');
    run('--name', 'anon', '-v', '/scratch', 'busybox:base', 'sh', '-c', 'echo 12345678 > /scratch/f');
    expect(tsrun(root, 'rm', 'anon').status).toBe(0);
    const anonymous = tsrun(root, 'volume', 'ls', '-q').stdout.split('\n').filter((n) => n && !['kept', 'used'].includes(n));
    expect(anonymous).toHaveLength(1);
    expect(tsrun(root, 'system', 'df').stdout).toMatch(/\nLocal Volumes\s+3\s+1\s+14B\s+9B \(64%\)\n$/);

    const pruned = tsrun(root, 'system', 'prune', '-f', '--volumes');
    expect(pruned.status).toBe(0);
    expect(pruned.stdout).toContain(`Deleted Volumes:\n${anonymous[0]}\n\n`);
    expect(tsrun(root, 'volume', 'ls', '-q').stdout).toBe('kept\nused\n');
    expect(tsrun(root, 'volume', 'prune', '-a', '-f')).toMatchObject({ status: 0, stdout: 'Deleted Volumes:\nkept\nused\n\nTotal reclaimed space: 5B\n' });
    expect(tsrun(root, 'volume', 'ls', '-q').stdout).toBe('');
  });

  test('system prune asks first; -f removes the stopped container and dangling images, -a every unused image', () => {
    const root = copy();
    expect(tsrun(root, 'system', 'prune')).toMatchObject({ status: 0, stdout: '', stderr: expect.stringContaining('Are you sure you want to continue? [y/N] ') });
    expect(tsrun(root, 'ps', '-a', '-q').stdout).not.toBe('');
    // A start keeps its compiled seccomp program for the next one; prune drops it.
    expect(tsrun(root, 'run', '--rm', 'busybox:base', 'true').status).toBe(0);
    const seccompCache = path.join(tmp(), 'state', '.seccomp-cache');
    const before = storeSnapshot(root);
    expect(fs.readdirSync(seccompCache)).toEqual(['programs']);

    const pruned = tsrun(root, 'system', 'prune', '-f');
    expect(pruned.status).toBe(0);
    expect(fs.existsSync(seccompCache)).toBe(false);
    expect(pruned.stdout).toMatch(/^Deleted Containers:\n[0-9a-f]{64}\n\nTotal reclaimed space: 2B\n$/);
    expect(tsrun(root, 'ps', '-a', '-q').stdout).toBe('');
    expect(Object.keys(storeSnapshot(root)).filter((f) => f.startsWith('overlay2/') && !(f in before))).toEqual([]);

    const all = tsrun(root, 'system', 'prune', '-a', '-f');
    expect(all.status).toBe(0);
    expect(all.stdout).toMatch(/^Deleted Images:\n(deleted: sha256:[0-9a-f]{64}\n){4}\nTotal reclaimed space: \d+(\.\d+)?MB\n$/);
    expect(tsrun(root, 'images', '-q').stdout).toBe('');
    expect(tsrun(root, 'system', 'check')).toMatchObject({ status: 0, stdout: 'store OK: 0 images, 0 layers, 0 blobs, 0 containers\n' });
  });
});
