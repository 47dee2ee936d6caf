import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import * as zlib from 'node:zlib';
import { ConflictError, ContentError, DigestMismatchError, NotFoundError, ValidationError } from '../../src/errors';
import { loadNative } from '../../src/native/index';
import { ContainerStore } from '../../src/storage/containers';
import { Store } from '../../src/storage/store';
import { busyboxRootfs, describeAsRoot, useTempDir } from '../helpers/fixtures';
import { PyEntry, hex, layoutConfig, pyTar, readJson, sha256, storeSnapshot, tarOf, umociImage, writeOciLayout, writeTree } from '../helpers/images';
import { checkLeaksAfterEach } from '../helpers/leaks';
import { tempPodman } from '../helpers/podman';

const HOST_ARCH = ({ x64: 'amd64', arm64: 'arm64' } as Record<string, string>)[process.arch] ?? process.arch;

describeAsRoot('image store: load, import, save, tag, rmi, prune', () => {
  const tmp = useTempDir('tsrun-images-');
  checkLeaksAfterEach();
  let stores = 0;
  /** A fresh, empty store for each test. */
  const newStore = (): Store => Store.open(path.join(tmp(), `store-${++stores}`));
  const fixture = (name: string): string => path.join(tmp(), 'fixtures', name);

  /** The umoci layout's image: busybox + /data/{a,b}; then /etc/group deleted; then /data made opaque holding only c. */
  let umoci: ReturnType<typeof layoutConfig>;

  beforeAll(() => {
    fs.mkdirSync(fixture(''), { recursive: true });
    fs.writeFileSync(fixture('busybox.tar'), tarOf(busyboxRootfs()));
    // fixture('umoci'), fixture('oci.tar'), fixture('docker.tar').
    umoci = umociImage(fixture(''), busyboxRootfs()).written;
    expect(umoci.diffIDs).toHaveLength(3);
  });

  function layerDir(store: Store, diffID: string): string {
    return path.join(store.root, 'overlay2', hex(diffID), 'diff');
  }

  /** Runs `body`, which must fail with `type` and `message`, and checks the store did not change at all. */
  async function refusedUnchanged(store: Store, body: () => Promise<unknown>, type: new (...args: never[]) => Error, message: RegExp): Promise<Error> {
    const before = storeSnapshot(store.root);
    const error = await body().then(
      () => new Error('expected a failure'),
      (err: Error) => err,
    );
    expect(error).toBeInstanceOf(type);
    expect(error.message).toMatch(message);
    expect(storeSnapshot(store.root)).toEqual(before);
    return error;
  }

  test('an OCI layout directory from umoci: its diff IDs, short links, whiteouts and opaque dirs', async () => {
    const store = newStore();
    const [image] = await store.load(fixture('umoci'));
    // umoci's ref.name is a bare tag ("base"): no repository to tag with.
    expect(image.repoTags).toEqual([]);
    expect(image.manifest).toBe(umoci.manifest);
    expect(store.inspect(image.id).RootFS).toEqual({ Type: 'layers', Layers: umoci.diffIDs });
    expect(image.layers.map((l) => l.diffID)).toEqual(umoci.diffIDs);

    for (const layer of image.layers) {
      expect(layer.link).toMatch(/^[A-Z2-7]{26}$/);
      expect(fs.readlinkSync(path.join(store.root, 'overlay2', 'l', layer.link))).toBe(`../${hex(layer.diffID)}/diff`);
      expect(fs.readFileSync(path.join(store.root, 'overlay2', hex(layer.diffID), 'link'), 'utf8')).toBe(layer.link);
      expect(readJson(path.join(store.root, 'overlay2', hex(layer.diffID), 'layer.json'))).toEqual({
        diffID: layer.diffID,
        blob: { digest: expect.stringMatching(/^sha256:/), mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', size: expect.any(Number) },
        size: layer.size,
      });
    }
    const [base, deletion, opaque] = image.layers.map((l) => l.dir);
    expect(fs.existsSync(path.join(base, 'bin', 'busybox'))).toBe(true);
    const whiteout = fs.lstatSync(path.join(deletion, 'etc', 'group'));
    expect(whiteout.isCharacterDevice() && whiteout.rdev === 0).toBe(true);
    expect(loadNative().lgetxattr(path.join(opaque, 'data'), 'trusted.overlay.opaque')?.toString()).toBe('y');
    expect(fs.readdirSync(path.join(opaque, 'data'))).toEqual(['c']);

    // The blobs are the layout's, byte for byte.
    for (const digest of [...umoci.layers, umoci.manifest]) {
      expect(fs.readFileSync(path.join(store.root, 'blobs', 'sha256', hex(digest)))).toEqual(fs.readFileSync(path.join(fixture('umoci'), 'blobs', 'sha256', hex(digest))));
    }
  });

  test("skopeo's docker-archive and oci-archive of one image: one image, two tags, each layer applied once", async () => {
    const store = newStore();
    const [fromDocker] = await store.load(fixture('docker.tar'));
    expect(fromDocker.repoTags).toEqual(['busybox:umoci']);
    expect(fromDocker.layers.map((l) => l.diffID)).toEqual(umoci.diffIDs);
    const inodes = fromDocker.layers.map((l) => fs.statSync(l.dir).ino);

    const [fromOci] = await store.load(fixture('oci.tar'));
    expect(fromOci.id).toBe(fromDocker.id);
    expect(fromOci.repoTags).toEqual(['busybox:oci', 'busybox:umoci']);
    expect(fromOci.layers.map((l) => fs.statSync(l.dir).ino)).toEqual(inodes);
    expect(store.images()).toHaveLength(1);
    expect(readJson(path.join(store.root, 'images', 'tags.json'))).toEqual({ 'busybox:oci': fromDocker.id, 'busybox:umoci': fromDocker.id });
    expect(readJson(path.join(store.root, 'images', `${hex(fromDocker.id)}.json`))).toEqual({ id: fromDocker.id, manifest: fromDocker.manifest, created: expect.any(String) });
    expect(store.resolve('docker.io/library/busybox:oci').id).toBe(fromDocker.id);
  });

  test('import: a root filesystem tar, plain, gzip or zstd, with changes; inspect is Docker-shaped', async () => {
    const store = newStore();
    const plain = await store.importRootfs(fixture('busybox.tar'), 'busybox:plain', {
      changes: ['CMD ["sh", "-c", "echo hi"]', 'ENV A=1 B="x y"', 'WORKDIR /work', 'EXPOSE 8080', 'LABEL org.example=yes', 'USER 1000'],
      message: 'from a test',
    });
    execFileSync('sh', ['-c', `gzip -c ${fixture('busybox.tar')} > ${fixture('busybox.tar.gz')}; zstd -q -f ${fixture('busybox.tar')} -o ${fixture('busybox.tar.zst')}`]);
    const gzipped = await store.importRootfs(fs.createReadStream(fixture('busybox.tar.gz')), 'busybox:gzip');
    const zstd = await store.importRootfs(fixture('busybox.tar.zst'), 'busybox:zstd');
    const diffID = sha256(fs.readFileSync(fixture('busybox.tar')));
    for (const image of [plain, gzipped, zstd]) expect(image.config.rootfs.diff_ids).toEqual([diffID]);
    // One layer for the three: the same diff ID is applied once.
    expect(fs.readdirSync(path.join(store.root, 'overlay2')).filter((e) => e !== 'l')).toEqual([hex(diffID)]);

    const inspect = store.inspect('busybox:plain');
    expect(inspect).toMatchObject({
      Id: plain.id,
      RepoTags: ['busybox:plain'],
      RepoDigests: [`busybox@${plain.manifest}`],
      Parent: '',
      Comment: 'from a test',
      Author: '',
      Architecture: HOST_ARCH,
      Os: 'linux',
      Size: fs.statSync(fixture('busybox.tar')).size,
      RootFS: { Type: 'layers', Layers: [diffID] },
      Config: {
        Cmd: ['sh', '-c', 'echo hi'],
        Env: ['A=1', 'B=x y'],
        WorkingDir: '/work',
        ExposedPorts: { '8080/tcp': {} },
        Labels: { 'org.example': 'yes' },
        User: '1000',
        Entrypoint: null,
      },
      GraphDriver: { Name: 'overlay2', Data: { UpperDir: layerDir(store, diffID), MergedDir: path.join(store.root, 'overlay2', hex(diffID), 'merged') } },
    });
    expect(Date.parse(inspect.Created)).toBeGreaterThan(Date.now() - 60_000);
    // The layer blob is gzip, with OCI media types throughout.
    const manifest = readJson<{ mediaType: string; config: { mediaType: string }; layers: { mediaType: string; digest: string }[] }>(
      path.join(store.root, 'blobs', 'sha256', hex(plain.manifest)),
    );
    expect(manifest.mediaType).toBe('application/vnd.oci.image.manifest.v1+json');
    expect(manifest.config.mediaType).toBe('application/vnd.oci.image.config.v1+json');
    expect(manifest.layers[0].mediaType).toBe('application/vnd.oci.image.layer.v1.tar+gzip');
    expect(fs.readFileSync(path.join(store.root, 'blobs', 'sha256', hex(manifest.layers[0].digest))).subarray(0, 2)).toEqual(Buffer.from([0x1f, 0x8b]));
  });

  test('save: skopeo reads it as oci-archive, and loading it into another store gives the same image', async () => {
    const store = newStore();
    const [image] = await store.load(fixture('oci.tar'));
    await store.tag('busybox:oci', 'other/name:v2');
    const archive = path.join(tmp(), 'saved.tar');
    await store.save(['busybox:oci', 'other/name:v2'], archive);
    expect(fs.readdirSync(tmp()).filter((f) => f.startsWith('saved.tar.'))).toEqual([]);

    const index = JSON.parse(execFileSync('tar', ['-xOf', archive, 'index.json'], { encoding: 'utf8' }));
    expect(index.manifests.map((m: { annotations: Record<string, string> }) => m.annotations)).toEqual([
      { 'io.containerd.image.name': 'docker.io/library/busybox:oci', 'org.opencontainers.image.ref.name': 'busybox:oci' },
      { 'io.containerd.image.name': 'docker.io/other/name:v2', 'org.opencontainers.image.ref.name': 'other/name:v2' },
    ]);
    expect(JSON.parse(execFileSync('tar', ['-xOf', archive, 'manifest.json'], { encoding: 'utf8' }))).toEqual([
      { Config: `blobs/sha256/${hex(image.id)}`, RepoTags: ['busybox:oci', 'other/name:v2'], Layers: umoci.layers.map((l) => `blobs/sha256/${hex(l)}`) },
    ]);

    const dir = path.join(tmp(), 'skopeo-dir');
    execFileSync('skopeo', ['copy', '-q', `oci-archive:${archive}:other/name:v2`, `dir:${dir}`]);
    const copied = readJson<{ config: { digest: string }; layers: { digest: string }[] }>(path.join(dir, 'manifest.json'));
    expect(copied.config.digest).toBe(image.id);
    expect(copied.layers.map((l) => l.digest)).toEqual(umoci.layers);

    // skopeo reads the docker side (manifest.json) as well.
    execFileSync('skopeo', ['inspect', `docker-archive:${archive}`]);

    const again = newStore();
    const loaded = await again.load(fs.createReadStream(archive));
    expect(loaded.map((i) => [i.id, i.manifest, i.repoTags])).toEqual([[image.id, image.manifest, ['busybox:oci', 'other/name:v2']]]);

    // Saving is reproducible.
    const second = path.join(tmp(), 'saved-again.tar');
    await store.save(['busybox:oci', 'other/name:v2'], second);
    expect(sha256(fs.readFileSync(second))).toBe(sha256(fs.readFileSync(archive)));
  });

  test('save: podman load accepts it (podman in a temp root, vfs)', async () => {
    const store = newStore();
    await store.importRootfs(fixture('busybox.tar'), 'tsrun/podman-test:v1', { changes: ['CMD ["echo", "hello"]'] });
    const archive = path.join(tmp(), 'for-podman.tar');
    await store.save(['tsrun/podman-test:v1'], archive);
    const podman = tempPodman(path.join(tmp(), 'podman'));
    try {
      expect(podman.cli('load', '-i', archive)).toMatch(/Loaded image.*tsrun\/podman-test:v1/);
      const [loaded] = JSON.parse(podman.cli('image', 'inspect', 'tsrun/podman-test:v1'));
      expect(loaded.RootFS.Layers).toEqual(store.inspect('tsrun/podman-test:v1').RootFS.Layers);
      expect(loaded.Config.Cmd).toEqual(['echo', 'hello']);
    } finally {
      podman.dispose();
    }
  });

  test('tag, rmi and prune: tags move, shared layers stay while an image uses them', async () => {
    const store = newStore();
    const base = await store.importRootfs(fixture('busybox.tar'), 'base:1');
    const child = await store.createLayerImage(base, Readable.from([tarOf(writeTree(path.join(tmp(), 'child-layer'), { 'hello.txt': 'hi\n' }))]), {
      reference: 'child:1',
      changes: ['CMD ["cat", "/hello.txt"]'],
      comment: 'a child',
      author: 'tester',
    });
    expect(child.layers.map((l) => l.diffID)).toEqual([base.layers[0].diffID, expect.any(String)]);
    expect(child.config).toMatchObject({ author: 'tester', config: { Cmd: ['cat', '/hello.txt'] } });
    expect(child.config.history?.map((h) => h.comment)).toEqual(['Imported from ' + fixture('busybox.tar'), 'a child']);

    await store.tag('base:1', 'base:2');
    await store.tag(child.id, 'child:latest');
    expect(store.images().map((i) => [i.id, i.repoTags])).toEqual(
      expect.arrayContaining([
        [base.id, ['base:1', 'base:2']],
        [child.id, ['child:1', 'child:latest']],
      ]),
    );
    expect(store.resolve(hex(child.id).slice(0, 8)).id).toBe(child.id);
    expect(store.resolve(`child@${child.manifest}`).id).toBe(child.id);

    // A tag of an image with several is only untagged; by id, several tags need force.
    expect(await store.removeImage('base:2')).toEqual(['Untagged: base:2']);
    await expect(store.removeImage(child.id)).rejects.toThrow(/must be forced\) - image is referenced in multiple repositories/);
    expect(await store.removeImage('base:1')).toEqual(['Untagged: base:1', `Deleted: ${base.id}`]);
    // The base layer stays: the child image uses it.
    expect(fs.existsSync(base.layers[0].dir)).toBe(true);
    expect(store.resolve('child:1').layers[0].dir).toBe(base.layers[0].dir);
    expect(fs.existsSync(path.join(store.root, 'blobs', 'sha256', hex(base.id)))).toBe(false);

    // Moving the only tag leaves the old image dangling; prune removes it and its own layer.
    const other = await store.createLayerImage(store.resolve('child:1'), Readable.from([tarOf(writeTree(path.join(tmp(), 'other-layer'), { 'other.txt': 'o\n' }))]), { reference: 'child:1' });
    await store.tag('child:1', 'child:latest');
    expect(store.images().find((i) => i.id === child.id)?.repoTags).toEqual([]);
    const pruned = await store.prune();
    expect(pruned.deleted).toEqual([child.id]);
    expect(pruned.reclaimedBytes).toBeGreaterThan(0);
    expect(store.images().map((i) => i.id)).toEqual([other.id]);
    expect(other.layers.every((l) => fs.existsSync(l.dir))).toBe(true);

    // Removing the last image removes everything but the empty directories.
    expect(await store.removeImage('child:latest')).toEqual(['Untagged: child:latest']);
    const removed = await store.removeImage('child:1');
    expect(removed.slice(0, 2)).toEqual(['Untagged: child:1', `Deleted: ${other.id}`]);
    expect(removed.slice(2).sort()).toEqual(other.layers.map((l) => `Deleted: ${l.diffID}`).sort());
    expect(fs.readdirSync(path.join(store.root, 'blobs', 'sha256'))).toEqual([]);
    expect(fs.readdirSync(path.join(store.root, 'overlay2'))).toEqual(['l']);
    expect(fs.readdirSync(path.join(store.root, 'overlay2', 'l'))).toEqual([]);
    expect(readJson(path.join(store.root, 'images', 'tags.json'))).toEqual({});
  });

  test("an image a container uses is refused by rmi and prune; rmi -f removes it but keeps the container's layers", async () => {
    const store = newStore();
    const image = await store.importRootfs(fixture('busybox.tar'), 'used:1');
    const containers = new ContainerStore(store.root);
    const record = {
      id: 'c'.repeat(64),
      name: 'user',
      created: new Date().toISOString(),
      image: 'used:1',
      imageId: image.id,
      layers: image.layers.map((l) => l.diffID),
      args: ['sh'],
      env: [],
      cwd: '/',
      user: '',
      hostConfig: { autoRemove: false, readOnly: false, network: 'none' },
      state: { status: 'exited' as const, pid: 0 },
    };
    containers.create(record);
    await refusedUnchanged(store, () => store.removeImage('used:1'), ConflictError, /unable to remove repository reference "used:1" \(must force\) - container cccccccccccc \(user\) is using its referenced image/);
    await refusedUnchanged(store, () => store.removeImage(image.id), ConflictError, /unable to delete .* \(must be forced\) - container cccccccccccc \(user\) is using it/);
    // An untagged image is not dangling while a container uses it.
    const untagged = await store.createLayerImage(image, Readable.from([tarOf(writeTree(path.join(tmp(), 'untagged-layer'), { u: 'u' }))]));
    containers.create({ ...record, id: 'd'.repeat(64), name: 'user2', imageId: untagged.id, layers: untagged.layers.map((l) => l.diffID) });
    await refusedUnchanged(store, async () => {
      if ((await store.prune()).deleted.length > 0) throw new Error('pruned an image in use');
      throw new ConflictError('nothing pruned');
    }, ConflictError, /nothing pruned/);
    containers.remove({ id: 'd'.repeat(64), name: 'user2' });
    expect((await store.prune()).deleted).toEqual([untagged.id, untagged.layers[1].diffID]);

    expect(await store.removeImage(image.id, { force: true })).toEqual(['Untagged: used:1', `Deleted: ${image.id}`]);
    expect(() => store.resolve(image.id)).toThrow(NotFoundError);
    expect(fs.existsSync(image.layers[0].dir)).toBe(true);
    containers.remove(record);
    expect((await store.prune()).deleted).toEqual([image.layers[0].diffID]);
    expect(fs.existsSync(image.layers[0].dir)).toBe(false);
  });

  describe('bad input is refused with a clear error and the store unchanged', () => {
    let store: Store;
    beforeAll(async () => {
      store = newStore();
      await store.importRootfs(fixture('busybox.tar'), 'existing:1');
    });

    test('a layer blob with a changed byte: digest mismatch naming the blob', async () => {
      const layout = path.join(tmp(), 'changed-byte');
      execFileSync('cp', ['-a', fixture('umoci'), layout]);
      const blob = path.join(layout, 'blobs', 'sha256', hex(umoci.layers[2]));
      const data = fs.readFileSync(blob);
      data[data.length - 10] ^= 0xff;
      fs.writeFileSync(blob, data);
      const err = await refusedUnchanged(store, () => store.load(layout), DigestMismatchError, new RegExp(`layer ${umoci.layers[2]}: digest mismatch: expected ${umoci.layers[2]}, got sha256:`));
      expect(err).toMatchObject({ expected: umoci.layers[2] });
    });

    test('a corrupt gzip layer whose digest is right', async () => {
      const good = zlib.gzipSync(tarOf(busyboxRootfs()));
      const corrupt = Buffer.from(good);
      corrupt.fill(0x55, 1000, 1100);
      const layout = path.join(tmp(), 'corrupt-gzip');
      const written = writeOciLayout(layout, [corrupt], { gzip: false, refName: 'bad:gzip', diffIDs: [sha256(tarOf(busyboxRootfs()))] });
      await refusedUnchanged(store, () => store.load(layout), ContentError, new RegExp(`layer ${written.layers[0]}`));
    });

    test('a truncated gzip layer whose digest is right', async () => {
      // Content the store does not have, so that the layer is applied (and cut short) rather than only hashed.
      const tar = tarOf(writeTree(path.join(tmp(), 'truncated-content'), { big: randomBytes(1 << 20).toString('base64') }));
      const gzipped = zlib.gzipSync(tar);
      const layout = path.join(tmp(), 'truncated-gzip');
      const written = writeOciLayout(layout, [gzipped.subarray(0, gzipped.length >> 1)], { gzip: false, refName: 'bad:truncated', diffIDs: [sha256(tar)] });
      await refusedUnchanged(store, () => store.load(layout), ContentError, new RegExp(`^layer ${written.layers[0]}: corrupt gzip stream: unexpected end of file$`));
    });

    test('a truncated archive', async () => {
      const data = fs.readFileSync(fixture('oci.tar'));
      const truncated = path.join(tmp(), 'truncated.tar');
      fs.writeFileSync(truncated, data.subarray(0, Math.floor(data.length * 0.6)));
      await refusedUnchanged(store, () => store.load(truncated), ContentError, /truncated|unexpected end|missing/i);
    });

    test('a docker-archive layer with a changed byte: the diff ID does not match the config', async () => {
      const dir = path.join(tmp(), 'docker-changed');
      fs.mkdirSync(dir);
      execFileSync('tar', ['-C', dir, '-xf', fixture('docker.tar')]);
      const layer = path.join(dir, `${hex(umoci.diffIDs[0])}.tar`);
      const data = fs.readFileSync(layer);
      // Inside a file's content (the middle of busybox), so the tar itself stays valid.
      data[Math.floor(data.length / 2)] ^= 0xff;
      fs.chmodSync(layer, 0o644);
      fs.writeFileSync(layer, data);
      const archive = path.join(tmp(), 'docker-changed.tar');
      execFileSync('tar', ['-C', dir, '-cf', archive, '.']);
      await refusedUnchanged(store, () => store.load(archive), DigestMismatchError, new RegExp(`expected ${umoci.diffIDs[0]}`));
    });

    test("a config claiming the diff ID of a layer the store has, for other content", async () => {
      const existing = store.resolve('existing:1').layers[0].diffID;
      const layout = path.join(tmp(), 'claims-existing');
      writeOciLayout(layout, [tarOf(writeTree(path.join(tmp(), 'claim'), { x: 'not busybox' }))], { diffIDs: [existing], refName: 'claim:1' });
      await refusedUnchanged(store, () => store.load(layout), DigestMismatchError, new RegExp(`\\(uncompressed\\): digest mismatch: expected ${existing}`));
    });

    describe('layers that aim outside their directory: refused, the host untouched', () => {
      /** A name in the host's /etc that nothing else uses; an escape would create it. */
      const planted = `tsrun-escape-test-${process.pid}`;
      /** Enough `..` to reach / from any layer directory in the store. */
      const toHostRoot = '../'.repeat(40);
      afterAll(() => {
        // Only if a test failed the way it must not.
        fs.rmSync(path.join('/etc', planted), { force: true });
      });

      function hostState(): Record<string, unknown> {
        const shadow = fs.statSync('/etc/shadow');
        return {
          planted: fs.existsSync(path.join('/etc', planted)),
          shadow: { ino: shadow.ino, nlink: shadow.nlink, mode: shadow.mode, uid: shadow.uid, mtime: shadow.mtimeMs, content: sha256(fs.readFileSync('/etc/shadow')) },
        };
      }

      const cases: [string, PyEntry[], RegExp][] = [
        ['a file at ../../etc/x', [{ name: '../../etc/x', data: 'escaped' }], /: \.\.\/\.\.\/etc\/x: the path escapes the layer$/],
        ["a file at ../ up to the host's /etc", [{ name: `${toHostRoot}etc/${planted}`, data: 'escaped' }], /: the path escapes the layer$/],
        [
          'an absolute symlink, then a write through it',
          [
            { name: 'etc', type: 'symlink', linkname: '/etc' },
            { name: `etc/${planted}`, data: 'escaped' },
          ],
          new RegExp(`: etc/${planted}: its parent etc is a symlink: writing through it is refused$`),
        ],
        [
          'a relative symlink up to the host root, then a write through it',
          [
            { name: 'up', type: 'symlink', linkname: toHostRoot },
            { name: `up/etc/${planted}`, data: 'escaped' },
          ],
          /its parent up is a symlink: writing through it is refused$/,
        ],
        ['a hard link to /etc/shadow', [{ name: 'shadow', type: 'hardlink', linkname: '/etc/shadow' }], /: shadow: the hard link's target "\/etc\/shadow" is not an earlier entry of this layer$/],
        ['a hard link to ../ up to /etc/shadow', [{ name: 'shadow', type: 'hardlink', linkname: `${toHostRoot}etc/shadow` }], /: shadow: the hard link's target ".*etc\/shadow" is outside the layer$/],
        [
          'a hard link to /etc/shadow through an absolute symlink',
          [
            { name: 'etc', type: 'symlink', linkname: '/etc' },
            { name: 'shadow', type: 'hardlink', linkname: 'etc/shadow' },
          ],
          /: shadow: the hard link's target goes through the symlink etc$/,
        ],
      ];

      test.each(cases)('%s: by load (an OCI layout) and by import', async (_name, entries, message) => {
        const before = hostState();
        const tar = pyTar(entries);
        const layout = path.join(tmp(), `hostile-${Math.random().toString(36).slice(2)}`);
        const written = writeOciLayout(layout, [tar], { refName: 'hostile:1' });
        const loadError = await refusedUnchanged(store, () => store.load(layout), ContentError, message);
        expect(loadError.message).toMatch(new RegExp(`^layer ${written.layers[0]}`));
        expect(hostState()).toEqual(before);
        await refusedUnchanged(store, () => store.importRootfs(Readable.from([tar]), 'hostile:2'), ContentError, message);
        expect(hostState()).toEqual(before);
      });
    });

    test('a missing blob, a manifest that is not JSON, not an archive at all', async () => {
      const missing = path.join(tmp(), 'missing-blob');
      const written = writeOciLayout(missing, [tarOf(writeTree(path.join(tmp(), 'm'), { m: 'm' }))]);
      fs.rmSync(path.join(missing, 'blobs', 'sha256', hex(written.layers[0])));
      await refusedUnchanged(store, () => store.load(missing), ContentError, new RegExp(`blob ${written.layers[0]} is missing`));

      const notJson = path.join(tmp(), 'not-json');
      const other = writeOciLayout(notJson, [tarOf(writeTree(path.join(tmp(), 'n'), { n: 'n' }))]);
      const text = Buffer.from('{not json');
      fs.writeFileSync(path.join(notJson, 'blobs', 'sha256', hex(sha256(text))), text);
      const index = readJson<{ manifests: { digest: string; size: number }[] }>(path.join(notJson, 'index.json'));
      index.manifests[0] = { ...index.manifests[0], digest: sha256(text), size: text.length };
      fs.writeFileSync(path.join(notJson, 'index.json'), JSON.stringify(index));
      expect(other.manifest).not.toBe(sha256(text));
      await refusedUnchanged(store, () => store.load(notJson), ContentError, /not valid JSON/);

      const random = path.join(tmp(), 'random.bin');
      fs.writeFileSync(random, Buffer.alloc(4096, 7));
      await refusedUnchanged(store, () => store.load(random), ContentError, /.+/);
      await refusedUnchanged(store, () => store.load(path.join(tmp(), 'no-such-file')), Error, /ENOENT/);
    });

    test('unknown and invalid references', async () => {
      await refusedUnchanged(store, async () => store.resolve('nosuch'), NotFoundError, /^No such image: nosuch$/);
      await refusedUnchanged(store, async () => store.inspect('sha256:0000'), NotFoundError, /No such image: sha256:0000/);
      await refusedUnchanged(store, () => store.removeImage('nosuch:1'), NotFoundError, /No such image: nosuch:1/);
      await refusedUnchanged(store, () => store.tag('nosuch', 'x:1'), NotFoundError, /No such image: nosuch/);
      await refusedUnchanged(store, () => store.save(['nosuch'], path.join(tmp(), 'never.tar')), NotFoundError, /No such image/);
      expect(fs.existsSync(path.join(tmp(), 'never.tar'))).toBe(false);
      await refusedUnchanged(store, () => store.tag('existing:1', 'Bad:Name'), ValidationError, /invalid reference format "Bad:Name": repository name must be lowercase/);
      await refusedUnchanged(store, () => store.removeImage('UPPER'), ValidationError, /must be lowercase/);
      await refusedUnchanged(store, () => store.importRootfs(fixture('busybox.tar'), 'bad name'), ValidationError, /invalid reference format/);
      await refusedUnchanged(store, () => store.importRootfs(fixture('busybox.tar'), 'ok:1', { changes: ['RUN rm -rf /'] }), ValidationError, /RUN is not supported/);
    });
  });

  test('Docker 25 style: an OCI index with a multi-platform index inside and manifest.json beside', async () => {
    const dir = path.join(tmp(), 'docker25');
    const image = writeOciLayout(dir, [tarOf(writeTree(path.join(tmp(), 'd25'), { 'etc/os-release': 'test\n' }))]);
    const blobs = path.join(dir, 'blobs', 'sha256');
    const manifestSize = fs.statSync(path.join(blobs, hex(image.manifest))).size;
    // The other platforms' blobs are missing, as in a real docker save: they must not be read.
    const platformIndex = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.index.v1+json',
        manifests: [
          { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: sha256('other arch'), size: 10, platform: { architecture: HOST_ARCH === 'amd64' ? 'arm64' : 'amd64', os: 'linux' } },
          { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: image.manifest, size: manifestSize, platform: { architecture: HOST_ARCH, os: 'linux' } },
          { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: sha256('attestation'), size: 11, platform: { architecture: 'unknown', os: 'unknown' } },
        ],
      }),
    );
    fs.writeFileSync(path.join(blobs, hex(sha256(platformIndex))), platformIndex);
    fs.writeFileSync(
      path.join(dir, 'index.json'),
      JSON.stringify({
        schemaVersion: 2,
        manifests: [
          {
            mediaType: 'application/vnd.oci.image.index.v1+json',
            digest: sha256(platformIndex),
            size: platformIndex.length,
            annotations: { 'io.containerd.image.name': 'docker.io/library/multi:1', 'org.opencontainers.image.ref.name': '1' },
          },
        ],
      }),
    );
    fs.writeFileSync(path.join(dir, 'manifest.json'), JSON.stringify([{ Config: `blobs/sha256/${hex(image.config)}`, RepoTags: ['multi:1', 'multi:extra'], Layers: image.layers.map((l) => `blobs/sha256/${hex(l)}`) }]));
    const archive = path.join(tmp(), 'docker25.tar');
    execFileSync('tar', ['-C', dir, '-cf', archive, '.']);

    const store = newStore();
    const [loaded] = await store.load(archive);
    expect(loaded).toMatchObject({ id: image.config, manifest: image.manifest, repoTags: ['multi:1', 'multi:extra'] });
  });

  test('two loads of one archive at once, in one process and in two: one image, one copy of each layer', async () => {
    const store = newStore();
    const [a, b] = await Promise.all([store.load(fixture('oci.tar')), Store.open(store.root).load(fixture('oci.tar'))]);
    expect(a[0].id).toBe(b[0].id);
    expect(store.images()).toHaveLength(1);
    expect(fs.readdirSync(path.join(store.root, 'overlay2', 'l'))).toHaveLength(3);

    const other = newStore();
    const tsrun = path.resolve(__dirname, '..', '..', 'bin', 'tsrun');
    const load = (): Promise<number | null> =>
      new Promise((resolve) => {
        const child = spawn(tsrun, ['--root', other.root, 'load', '-i', fixture('docker.tar')], { stdio: 'ignore' });
        child.on('close', resolve);
      });
    expect(await Promise.all([load(), load()])).toEqual([0, 0]);
    expect(other.images().map((i) => i.repoTags)).toEqual([['busybox:umoci']]);
    expect(fs.readdirSync(path.join(other.root, 'overlay2', 'l'))).toHaveLength(3);
    expect(fs.readdirSync(path.join(other.root, 'tmp'))).toEqual([]);
  });

  test('loads racing removals: whatever wins, an image in the store has all its layers and blobs', async () => {
    const store = newStore();
    for (let round = 0; round < 4; round++) {
      await Promise.all([store.load(fixture('oci.tar')), store.removeImage('busybox:oci').catch((err) => expect(err).toBeInstanceOf(NotFoundError))]);
      for (const summary of store.images()) {
        const image = store.resolve(summary.id);
        expect(image.layers.every((l) => fs.existsSync(path.join(l.dir, '..', 'layer.json')) && fs.existsSync(path.join(store.root, 'overlay2', 'l', l.link)))).toBe(true);
        const manifest = readJson<{ layers: { digest: string }[] }>(path.join(store.root, 'blobs', 'sha256', hex(image.manifest)));
        expect(manifest.layers.every((l) => fs.existsSync(path.join(store.root, 'blobs', 'sha256', hex(l.digest))))).toBe(true);
      }
    }
  });

  test('staging left by a dead process is removed by the next change to the store', async () => {
    const store = newStore();
    await store.importRootfs(fixture('busybox.tar'), 'stale:1');
    const stale = path.join(store.root, 'tmp', '999999999-1-abcdef-load');
    fs.mkdirSync(path.join(stale, 'layer-0', 'diff'), { recursive: true });
    await store.tag('stale:1', 'stale:2');
    expect(fs.readdirSync(path.join(store.root, 'tmp'))).toEqual([]);
  });

  test('an image of 100 layers loads, each layer with its short link', async () => {
    const layers = Array.from({ length: 100 }, (_, i) => tarOf(writeTree(path.join(tmp(), 'hundred', String(i)), { [`layer-${i}`]: `${i}\n` })));
    const layout = path.join(tmp(), 'hundred-layout');
    const written = writeOciLayout(layout, [tarOf(busyboxRootfs()), ...layers.slice(1)], { refName: 'hundred:1' });
    const store = newStore();
    const [image] = await store.load(layout);
    expect(image.repoTags).toEqual(['hundred:1']);
    expect(image.layers.map((l) => l.diffID)).toEqual(written.diffIDs);
    expect(new Set(image.layers.map((l) => l.link)).size).toBe(100);
    for (const layer of image.layers) expect(fs.realpathSync(path.join(store.root, 'overlay2', 'l', layer.link))).toBe(layer.dir);
    expect(fs.existsSync(path.join(image.layers[99].dir, 'layer-99'))).toBe(true);
  });
});
