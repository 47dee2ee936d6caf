import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { run } from '../../src';
import { NotFoundError, ValidationError } from '../../src/errors';
import { pushImage } from '../../src/registry/push';
import { commitContainer } from '../../src/runtime/containers';
import { Store } from '../../src/storage/store';
import { busyboxRootfs, describeAsRoot, useTempDir } from '../helpers/fixtures';
import { checkLeaksAfterEach } from '../helpers/leaks';
import { tempPodman } from '../helpers/podman';
import { useRegistry, useRegistryProxy } from '../helpers/registry';

const RETRY = { retries: 3, delayMs: 5 };
const TSRUN = path.resolve(__dirname, '..', '..', 'bin', 'tsrun');
/** Small enough that the busybox layer (about 1 MB gzipped) goes up in several PATCHes. */
const CHUNK = 256 * 1024;

describeAsRoot('push to a registry (docker-registry, checked with skopeo and umoci)', () => {
  const tmp = useTempDir('tsrun-registry-push-');
  const registry = useRegistry();
  const proxy = useRegistryProxy(registry);
  checkLeaksAfterEach();
  const root = (): string => path.join(tmp(), 'store');
  const stateDir = (): string => path.join(tmp(), 'state');
  /** A busybox image with one more layer, made by running a container and committing it. */
  let committed: string;

  beforeAll(async () => {
    const store = Store.open(root());
    const tar = path.join(tmp(), 'busybox.tar');
    execFileSync('tar', ['-C', busyboxRootfs(), '-cf', tar, '.']);
    await store.importRootfs(tar, 'busybox:base', { changes: ['CMD ["sh"]'] });
    const container = await run({ image: 'busybox:base', root: root(), stateDir: stateDir(), name: 'writer', args: ['sh', '-c', 'echo committed > /hello && mkdir /data && echo x > /data/x'], stdio: 'ignore' });
    expect(await container.wait()).toMatchObject({ exitCode: 0 });
    committed = `${registry().host}/committed:1`;
    await commitContainer('writer', committed, { root: root(), stateDir: stateDir() });
  });

  test('push a committed image (chunked and monolithic uploads); skopeo copies it back, umoci unpacks its files, podman loads and runs it', async () => {
    const store = Store.open(root());
    const image = store.resolve(committed);
    const result = await pushImage(store, committed, { retry: RETRY, chunkSize: CHUNK });
    expect(result).toMatchObject({ reference: committed, tag: '1', digest: image.manifest, mounted: [], existing: [] });
    expect(result.pushed).toHaveLength(3);
    const inspected = JSON.parse(execFileSync('skopeo', ['inspect', '--tls-verify=false', `docker://${committed}`]).toString()) as { Digest: string; Layers: string[] };
    expect(inspected.Digest).toBe(image.manifest);

    const layout = path.join(tmp(), 'copied');
    execFileSync('skopeo', ['copy', '-q', '--src-tls-verify=false', `docker://${committed}`, `oci:${layout}:copied`]);
    const bundle = path.join(tmp(), 'bundle');
    execFileSync('umoci', ['unpack', '--image', `${layout}:copied`, bundle]);
    expect(fs.readFileSync(path.join(bundle, 'rootfs', 'hello'), 'utf8')).toBe('committed\n');
    expect(fs.readFileSync(path.join(bundle, 'rootfs', 'data', 'x'), 'utf8')).toBe('x\n');
    expect(fs.statSync(path.join(bundle, 'rootfs', 'bin', 'busybox')).isFile()).toBe(true);
    fs.rmSync(bundle, { recursive: true, force: true });

    // podman loads the layout skopeo wrote (as an oci-archive: the layout in a tar) and runs the image.
    const archive = path.join(tmp(), 'copied.tar');
    execFileSync('tar', ['-C', layout, '-cf', archive, '.']);
    const podman = tempPodman(path.join(tmp(), 'podman'));
    try {
      const loaded = /Loaded image: (\S+)/.exec(podman.cli('load', '-i', archive))?.[1];
      expect(loaded).toBeDefined();
      expect(podman.run(loaded!, ['cat', '/hello', '/data/x'])).toMatchObject({ status: 0, stdout: 'committed\nx\n' });
    } finally {
      podman.dispose();
    }
  });

  test('pushing again finds every blob there; another repository mounts them from the first', async () => {
    const store = Store.open(root());
    await pushImage(store, committed, { retry: RETRY });
    // The proxy has its own host name: the image is tagged under it too, so that its repositories are on the same registry.
    await store.tag(committed, `${proxy().host}/committed:1`);
    const again = await pushImage(store, `${proxy().host}/committed:1`, { retry: RETRY });
    expect(again.pushed).toEqual([]);
    expect(again.existing).toHaveLength(3);
    expect(proxy().requests.filter((r) => r.method !== 'HEAD' && r.method !== 'GET' && !r.path.includes('/manifests/'))).toEqual([]);

    await store.tag(committed, `${proxy().host}/elsewhere:2`);
    proxy().reset();
    const mounted = await pushImage(store, `${proxy().host}/elsewhere:2`, { retry: RETRY });
    expect(mounted.mounted).toHaveLength(3);
    expect(mounted.pushed).toEqual([]);
    expect(proxy().requests.filter((r) => r.method === 'POST').map((r) => r.path)).toEqual(expect.arrayContaining([expect.stringMatching(/\/v2\/elsewhere\/blobs\/uploads\/\?mount=sha256%3A[0-9a-f]{64}&from=committed$/)]));
    expect(JSON.parse(execFileSync('skopeo', ['inspect', '--tls-verify=false', `docker://${registry().host}/elsewhere:2`]).toString()).Digest).toBe(mounted.digest);
  });

  test('a chunked upload that fails half-way resumes from where the registry stands', async () => {
    // A store of its own, with no other repository to mount from.
    const store = Store.open(path.join(tmp(), 'resume-store'));
    await store.importRootfs(path.join(tmp(), 'busybox.tar'), `${proxy().host}/resumed:1`);
    // The second chunk fails: the registry holds the first one.
    proxy().sabotage('PATCH', /\/v2\/resumed\/blobs\/uploads\//, { kind: 'respond', status: 503 }, 1, 1);
    const result = await pushImage(store, `${proxy().host}/resumed:1`, { retry: RETRY, chunkSize: CHUNK });
    expect(result.pushed).toHaveLength(2);
    const patches = proxy().requests.filter((r) => r.method === 'PATCH');
    expect(patches.slice(0, 3).map((r) => [r.contentRange, r.status])).toEqual([
      [`0-${CHUNK - 1}`, 202],
      [`${CHUNK}-${2 * CHUNK - 1}`, 503],
      [`${CHUNK}-${2 * CHUNK - 1}`, 202],
    ]);
    // Between the two, the client asked the session where it stands.
    const between = proxy().requests.slice(proxy().requests.indexOf(patches[1]), proxy().requests.indexOf(patches[2]));
    expect(between.filter((r) => r.method === 'GET' && r.path.includes('/blobs/uploads/'))).toHaveLength(1);
    execFileSync('skopeo', ['inspect', '--tls-verify=false', `docker://${registry().host}/resumed:1`]);
  });

  test("the CLI: Docker's lines, then the tag, digest and size", () => {
    const image = Store.open(root()).resolve(committed);
    const result = spawnSync(TSRUN, ['--root', root(), 'push', committed], { encoding: 'utf8', timeout: 60_000 });
    expect(result).toMatchObject({ status: 0, stderr: '' });
    const lines = result.stdout.trimEnd().split('\n');
    expect(lines[0]).toBe(`The push refers to repository [${registry().host}/committed]`);
    const size = fs.statSync(path.join(root(), 'blobs', 'sha256', image.manifest.slice(7))).size;
    expect(lines[lines.length - 1]).toBe(`1: digest: ${image.manifest} size: ${size}`);
    // Pushed by the tests before: every layer is there already.
    expect(lines.filter((l) => l.endsWith(': Layer already exists'))).toHaveLength(2);
    const quiet = spawnSync(TSRUN, ['--root', root(), 'push', '-q', committed], { encoding: 'utf8', timeout: 60_000 });
    expect(quiet).toMatchObject({ status: 0, stdout: `${committed}\n`, stderr: '' });
    expect(spawnSync(TSRUN, ['--root', root(), 'push', `${registry().host}/absent:1`], { encoding: 'utf8' })).toMatchObject({ status: 1, stderr: `tsrun: No such image: ${registry().host}/absent:1\n` });
  });

  test('push refuses a digest reference and an image the store does not have', async () => {
    const store = Store.open(root());
    await expect(pushImage(store, `${registry().host}/committed@sha256:${'0'.repeat(64)}`)).rejects.toBeInstanceOf(ValidationError);
    await expect(pushImage(store, `${registry().host}/absent:1`)).rejects.toBeInstanceOf(NotFoundError);
  });
});
