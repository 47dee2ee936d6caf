import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { run } from '../../src';
import type { RunOptions } from '../../src';
import { overlayOptions } from '../../src/linux/overlay';
import { commitContainer, removeContainer } from '../../src/runtime/containers';
import { containerLayout } from '../../src/storage/container-layers';
import { Store } from '../../src/storage/store';
import { busyboxRootfs, describeAsRoot, useTempDir } from '../helpers/fixtures';
import { tarOf, umociImage, writeOciLayout, writeTree } from '../helpers/images';
import { checkLeaksAfterEach } from '../helpers/leaks';
import { collectOutput } from '../helpers/run';
import { tempPodman } from '../helpers/podman';

/** The kernel copies one page of mount options; the short links keep a deep image's under it. */
const PAGE_SIZE = 4096;

describeAsRoot('images across tools: made elsewhere and run here, made here and run elsewhere', () => {
  const tmp = useTempDir('tsrun-image-interop-');
  checkLeaksAfterEach();
  const stateDir = () => path.join(tmp(), 'state');
  let stores = 0;
  const newStore = (): Store => Store.open(path.join(tmp(), `store-${++stores}`));

  /** Runs `args` in a container of `image` in `store` and collects its output. */
  async function runImage(store: Store, image: string, args: string[], options: Partial<RunOptions> = {}): Promise<{ stdout: string; stderr: string; exitCode: number; id: string }> {
    return collectOutput(await run({ root: store.root, stateDir: stateDir(), image, args, stdio: 'pipe', autoRemove: true, ...options }));
  }

  describe('an image from umoci, and skopeo copies of it', () => {
    let made: ReturnType<typeof umociImage>;
    beforeAll(() => {
      made = umociImage(path.join(tmp(), 'umoci'), busyboxRootfs());
    });

    // What the container must see of the three layers: /data from the first
    // is replaced by the opaque /data of the third; /etc/group of the first
    // is hidden by the second's whiteout.
    const PROBE = 'ls -a /data; test -e /etc/group && echo group-present || echo group-absent; test -e /etc/passwd && echo passwd-present';

    test.each([
      ['the OCI layout directory umoci wrote', () => made.layout],
      ["skopeo's oci-archive", () => made.ociArchive],
      ["skopeo's docker-archive", () => made.dockerArchive],
    ])('%s: loads with the diff IDs umoci wrote, runs, the whiteout and the opaque dir hold in the container', async (_name, source) => {
      const store = newStore();
      const [image] = await store.load(source());
      expect(store.inspect(image.id).RootFS).toEqual({ Type: 'layers', Layers: made.written.diffIDs });

      const result = await runImage(store, image.id, ['sh', '-c', PROBE]);
      expect(result).toMatchObject({ stdout: '.\n..\nc\ngroup-absent\npasswd-present\n', stderr: '', exitCode: 0 });
      // Hidden by overlayfs in the container, not missing from the layer below.
      expect(fs.readdirSync(path.join(image.layers[0].dir, 'data')).sort()).toEqual(['a', 'b']);
      expect(fs.existsSync(path.join(image.layers[0].dir, 'etc', 'group'))).toBe(true);
    });
  });

  test('commit, save: skopeo copies the archive and tsrun loads the copy back; podman loads it and runs it', async () => {
    const store = newStore();
    const busyboxTar = path.join(tmp(), 'busybox.tar');
    fs.writeFileSync(busyboxTar, tarOf(busyboxRootfs()));
    const base = await store.importRootfs(busyboxTar, 'busybox:base', { changes: ['CMD ["sh"]'] });

    const first = await runImage(store, 'busybox:base', ['sh', '-c', 'echo new > /added && rm /etc/group && mkdir /data && echo kept > /data/file'], {
      name: 'to-commit',
      hostname: 'first-host',
      autoRemove: false,
    });
    expect(first).toMatchObject({ stderr: '', exitCode: 0 });
    const location = { root: store.root, stateDir: stateDir() };
    const committed = await commitContainer('to-commit', 'busybox:committed', { ...location, changes: ['CMD ["cat", "/added"]'] });
    await removeContainer('to-commit', location);
    const image = store.resolve('busybox:committed');
    expect(image.id).toBe(committed.id);
    expect(image.layers.map((l) => l.diffID)).toEqual([...base.layers.map((l) => l.diffID), expect.stringMatching(/^sha256:/)]);
    const top = image.layers[image.layers.length - 1].dir;
    expect(fs.readdirSync(top).sort()).toEqual(['added', 'data', 'etc']);
    // Only the whiteout: the first container's hostname, hosts and resolv.conf lived in its -init layer.
    expect(fs.readdirSync(path.join(top, 'etc'))).toEqual(['group']);
    expect(fs.lstatSync(path.join(top, 'etc', 'group')).isCharacterDevice()).toBe(true);
    const diffIDs = store.inspect('busybox:committed').RootFS.Layers;

    const archive = path.join(tmp(), 'committed.tar');
    await store.save(['busybox:committed'], archive);
    // What a container of the image must show, wherever it runs.
    const probe = ['sh', '-c', 'cat /added /data/file; test -e /etc/group || echo no-group; grep -c first-host /etc/hostname /etc/hosts'];
    const expected = 'new\nkept\nno-group\n/etc/hostname:0\n/etc/hosts:0\n';

    // skopeo reads the OCI side; its docker-archive copy loads back into another store and runs.
    const skopeoConfig = JSON.parse(execFileSync('skopeo', ['inspect', '--config', `oci-archive:${archive}:busybox:committed`], { encoding: 'utf8' }));
    expect(skopeoConfig.rootfs.diff_ids).toEqual(diffIDs);
    const copied = path.join(tmp(), 'copied-by-skopeo.tar');
    execFileSync('skopeo', ['copy', '-q', `oci-archive:${archive}:busybox:committed`, `docker-archive:${copied}:busybox:copied`]);
    const other = newStore();
    const [loaded] = await other.load(copied);
    expect(loaded.repoTags).toEqual(['busybox:copied']);
    expect(other.inspect('busybox:copied').RootFS.Layers).toEqual(diffIDs);
    expect(await runImage(other, 'busybox:copied', [])).toMatchObject({ stdout: 'new\n', exitCode: 0 });
    expect(await runImage(other, 'busybox:copied', probe, { hostname: 'elsewhere' })).toMatchObject({ stdout: expected, exitCode: 1 });

    const podman = tempPodman(path.join(tmp(), 'podman'));
    try {
      expect(podman.cli('load', '-i', archive)).toMatch(/Loaded image.*busybox:committed/);
      const [inspected] = JSON.parse(podman.cli('image', 'inspect', 'busybox:committed'));
      expect(inspected.RootFS.Layers).toEqual(diffIDs);
      expect(inspected.Config.Cmd).toEqual(['cat', '/added']);
      expect(podman.run('busybox:committed', [])).toMatchObject({ stdout: 'new\n', status: 0 });
      // grep -c exits 1 when it counts nothing, here in both files.
      expect(podman.run('busybox:committed', probe)).toMatchObject({ stdout: expected, status: 1 });
    } finally {
      podman.dispose();
    }
    expect(podman.cgroups()).toEqual([]);
  });

  describe('deep images: the container sees the lowest and the highest layer, and the mount options fit a page', () => {
    test.each([100, 128])(
      '%i layers',
      async (count) => {
        // Layer 0 is busybox; each layer above adds /layers/<i> and replaces /top.
        const tars = [tarOf(busyboxRootfs())];
        for (let i = 1; i < count; i++) tars.push(tarOf(writeTree(path.join(tmp(), `deep-${count}`, String(i)), { [`layers/${i}`]: `${i}\n`, top: `${i}\n` })));
        const layout = path.join(tmp(), `deep-${count}-layout`);
        writeOciLayout(layout, tars, { refName: `deep:${count}` });
        const store = newStore();
        const [image] = await store.load(layout);
        expect(image.layers).toHaveLength(count);

        const container = await runImage(store, `deep:${count}`, ['sh', '-c', 'head -1 /etc/passwd; cat /top /layers/1; ls /layers | wc -l; cat /proc/self/mountinfo'], { autoRemove: false, name: `deep-${count}` });
        expect(container.exitCode).toBe(0);
        const [passwd, top, lowest, listed, ...mountinfo] = container.stdout.trimEnd().split('\n');
        expect(passwd).toMatch(/^root:/);
        expect([top, lowest, listed.trim()]).toEqual([String(count - 1), '1', String(count - 1)]);

        // What tsrun asked for: the image's layers and the -init layer, each by its short link.
        const overlay = containerLayout(store.root, container.id);
        expect(overlay.lower).toHaveLength(count + 1);
        expect(overlay.lower.slice(1)).toEqual(image.layers.map((l) => `l/${l.link}`).reverse());
        expect(overlayOptions(overlay).length).toBeLessThan(PAGE_SIZE);
        // What the kernel mounted as the container's root: the same lower dirs.
        const rootMount = mountinfo.map((line) => line.split(' ')).find((f) => f[4] === '/' && f[f.indexOf('-') + 1] === 'overlay');
        expect(rootMount).toBeDefined();
        const superOptions = rootMount![rootMount!.length - 1].split(',');
        expect(superOptions.find((o) => o.startsWith('lowerdir='))).toBe(`lowerdir=${overlay.lower.join(':')}`);

        await removeContainer(`deep-${count}`, { root: store.root, stateDir: stateDir() });
        expect(fs.existsSync(path.join(store.root, 'overlay2', container.id))).toBe(false);
      },
      180_000,
    );
  });
});
