import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { run } from '../../src';
import { ContentError, DigestMismatchError, RegistryError } from '../../src/errors';
import { pullImage, pullIfMissing } from '../../src/registry/pull';
import { Store } from '../../src/storage/store';
import { busyboxRootfs, describeAsRoot, useTempDir } from '../helpers/fixtures';
import { hex, sha256, storeSnapshot, tarOf, writeOciLayout, writeTree } from '../helpers/images';
import { checkLeaksAfterEach } from '../helpers/leaks';
import { freePort, startRegistry, useRegistry, useRegistryProxy } from '../helpers/registry';

const HOST_ARCH = ({ x64: 'amd64', arm64: 'arm64' } as Record<string, string>)[process.arch] ?? process.arch;
const OTHER_ARCH = HOST_ARCH === 'arm64' ? 'amd64' : 'arm64';
/** Fast retries: the tests break connections on purpose. */
const RETRY = { retries: 3, delayMs: 5 };
const TSRUN = path.resolve(__dirname, '..', '..', 'bin', 'tsrun');

/**
 * An OCI layout whose index has two images, one per platform, each with a
 * /platform file naming its architecture (the host's on top of busybox).
 */
function writeMultiPlatformLayout(dir: string, scratch: string): void {
  const blobs = path.join(dir, 'blobs', 'sha256');
  fs.mkdirSync(blobs, { recursive: true });
  const put = (data: Buffer): { digest: string; size: number } => {
    const digest = sha256(data);
    fs.writeFileSync(path.join(blobs, hex(digest)), data);
    return { digest, size: data.length };
  };
  const image = (architecture: string, layerTars: Buffer[]): { digest: string; size: number } => {
    const layers = layerTars.map((tar) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', ...put(zlib.gzipSync(tar)) }));
    const config = put(Buffer.from(JSON.stringify({ architecture, os: 'linux', config: { Cmd: ['sh'] }, rootfs: { type: 'layers', diff_ids: layerTars.map((t) => sha256(t)) } })));
    return put(Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config }, layers })));
  };
  const marker = (arch: string): Buffer => tarOf(writeTree(path.join(scratch, arch), { platform: `${arch}\n` }));
  const host = image(HOST_ARCH, [tarOf(busyboxRootfs()), marker(HOST_ARCH)]);
  const other = image(OTHER_ARCH, [marker(OTHER_ARCH)]);
  const entry = (m: { digest: string; size: number }, architecture: string): object => ({ mediaType: 'application/vnd.oci.image.manifest.v1+json', ...m, platform: { architecture, os: 'linux' } });
  // The other platform first: picking the first entry would be wrong.
  const index = put(Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: [entry(other, OTHER_ARCH), entry(host, HOST_ARCH)] })));
  fs.writeFileSync(path.join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  fs.writeFileSync(path.join(dir, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: 'application/vnd.oci.image.index.v1+json', ...index }] }));
}

function skopeoDigest(reference: string): string {
  return (JSON.parse(execFileSync('skopeo', ['inspect', '--tls-verify=false', `docker://${reference}`]).toString()) as { Digest: string }).Digest;
}

describeAsRoot('pull from a registry (docker-registry, seeded by skopeo)', () => {
  const tmp = useTempDir('tsrun-registry-pull-');
  const registry = useRegistry();
  const proxy = useRegistryProxy(registry);
  checkLeaksAfterEach();
  let stores = 0;
  const newStore = (): Store => Store.open(path.join(tmp(), `store-${++stores}`));
  /** The busybox image's layers: the root filesystem, then /etc/marker. */
  let busybox: ReturnType<typeof writeOciLayout>;

  beforeAll(() => {
    const layout = path.join(tmp(), 'busybox-layout');
    const extra = writeTree(path.join(tmp(), 'extra'), { 'etc/marker': 'from the registry\n' });
    busybox = writeOciLayout(layout, [tarOf(busyboxRootfs()), tarOf(extra)], { cmd: ['cat', '/etc/marker'] });
    execFileSync('skopeo', ['copy', '-q', '--dest-tls-verify=false', `oci:${layout}`, `docker://${registry().host}/busybox:1`]);
    const multi = path.join(tmp(), 'multi-layout');
    writeMultiPlatformLayout(multi, path.join(tmp(), 'multi-scratch'));
    execFileSync('skopeo', ['copy', '-q', '--all', '--dest-tls-verify=false', `oci:${multi}`, `docker://${registry().host}/multi:1`]);
  });

  test("pull, then run it: the digest is skopeo inspect's, the image is tagged and has its repo digest", async () => {
    const store = newStore();
    const reference = `${registry().host}/busybox:1`;
    const result = await pullImage(store, reference, { retry: RETRY });
    expect(result.digest).toBe(skopeoDigest(reference));
    expect(result.digest).toBe(busybox.manifest);
    expect(result).toMatchObject({ reference, downloadedLayers: 2, upToDate: false, platform: { os: 'linux', architecture: HOST_ARCH } });
    expect(result.image.repoTags).toEqual([reference]);
    expect(store.inspect(reference).RepoDigests).toEqual([`${registry().host}/busybox@${busybox.manifest}`]);
    expect(store.resolve(`${registry().host}/busybox@${busybox.manifest}`).id).toBe(result.image.id);
    expect(result.image.layers.map((l) => l.diffID)).toEqual(busybox.diffIDs);
    for (const digest of busybox.layers) {
      expect(fs.readFileSync(path.join(store.root, 'blobs', 'sha256', hex(digest)))).toEqual(fs.readFileSync(path.join(tmp(), 'busybox-layout', 'blobs', 'sha256', hex(digest))));
    }

    const container = await run({ image: reference, root: store.root, stateDir: path.join(tmp(), 'state'), stdio: 'pipe', autoRemove: true });
    let stdout = '';
    container.stdout?.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    container.stdin?.end();
    expect(await container.wait()).toMatchObject({ exitCode: 0 });
    expect(stdout).toBe('from the registry\n');
  });

  test('pulling again downloads no blob; a pull by digest reuses it too', async () => {
    const store = newStore();
    const reference = `${proxy().host}/busybox:1`;
    const first = await pullImage(store, reference, { retry: RETRY });
    // The config and the two layers.
    expect(proxy().blobGets()).toHaveLength(3);
    proxy().reset();
    const again = await pullImage(store, reference, { retry: RETRY });
    expect(proxy().blobGets()).toEqual([]);
    expect(again).toMatchObject({ upToDate: true, downloadedLayers: 0, digest: first.digest });
    expect(again.image.id).toBe(first.image.id);
    const byDigest = await pullImage(store, `${proxy().host}/busybox@${first.digest}`, { retry: RETRY });
    expect(proxy().blobGets()).toEqual([]);
    expect(byDigest.image.id).toBe(first.image.id);
    expect(await pullIfMissing(store, reference, { retry: RETRY, onMissing: () => { throw new Error('should not pull'); } })).toMatchObject({ id: first.image.id });
  });

  test("a multi-platform index: the host's image by default, another with --platform", async () => {
    const store = newStore();
    const reference = `${registry().host}/multi:1`;
    const result = await pullImage(store, reference, { retry: RETRY });
    expect(result.digest).toBe(skopeoDigest(reference));
    expect(result.image.config.architecture).toBe(HOST_ARCH);
    const top = result.image.layers[result.image.layers.length - 1];
    expect(fs.readFileSync(path.join(top.dir, 'platform'), 'utf8')).toBe(`${HOST_ARCH}\n`);
    expect(store.inspect(reference).RepoDigests).toContain(`${registry().host}/multi@${result.digest}`);

    const other = await pullImage(store, reference, { retry: RETRY, platform: `linux/${OTHER_ARCH}` });
    expect(other.image.config.architecture).toBe(OTHER_ARCH);
    expect(fs.readFileSync(path.join(other.image.layers[0].dir, 'platform'), 'utf8')).toBe(`${OTHER_ARCH}\n`);
    await expect(pullImage(store, reference, { retry: RETRY, platform: 'linux/s390x' })).rejects.toThrow(/no image for linux\/s390x \(the index has linux\/(amd64|arm64), linux\/(amd64|arm64)\)/);
  });

  test('a layer whose bytes do not match its digest: the error names the digest, the store is unchanged', async () => {
    const store = newStore();
    await pullImage(store, `${registry().host}/multi:1`, { retry: RETRY, platform: `linux/${OTHER_ARCH}` });
    const before = storeSnapshot(store.root);
    const rootfsLayer = busybox.layers[0];
    proxy().sabotage('GET', new RegExp(`/blobs/${rootfsLayer}$`), { kind: 'corrupt' });
    const error = await pullImage(store, `${proxy().host}/busybox:1`, { retry: RETRY }).then(
      () => new Error('expected a failure'),
      (err: Error) => err,
    );
    expect(error).toBeInstanceOf(DigestMismatchError);
    expect(error.message).toContain(`layer ${rootfsLayer}`);
    expect(error.message).toMatch(/digest mismatch: expected sha256:[0-9a-f]{64}, got sha256:[0-9a-f]{64}/);
    expect(storeSnapshot(store.root)).toEqual(before);
  });

  test('a connection cut in the middle of a layer: the download resumes with Range', async () => {
    const store = newStore();
    const rootfsLayer = busybox.layers[0];
    proxy().sabotage('GET', new RegExp(`/blobs/${rootfsLayer}$`), { kind: 'cut', after: 100_000 });
    proxy().sabotage('GET', /\/manifests\/1$/, { kind: 'respond', status: 503 });
    const result = await pullImage(store, `${proxy().host}/busybox:1`, { retry: RETRY });
    expect(result.image.layers.map((l) => l.diffID)).toEqual(busybox.diffIDs);
    const layerGets = proxy().requests.filter((r) => r.path.endsWith(`/blobs/${rootfsLayer}`));
    // It resumes from what reached it: at most the 100,000 bytes the proxy sent before the cut
    // (the kernel may drop the tail of them with the connection), and never from the start.
    expect(layerGets).toHaveLength(2);
    expect(layerGets[0].range).toBeUndefined();
    const resumedAt = Number(/^bytes=(\d+)-$/.exec(layerGets[1].range ?? '')?.[1]);
    expect(resumedAt).toBeGreaterThan(0);
    expect(resumedAt).toBeLessThanOrEqual(100_000);
    expect(layerGets[1].status).toBe(206);
    // The 503 was retried.
    expect(proxy().requests.filter((r) => r.path.endsWith('/manifests/1')).map((r) => r.status)).toEqual([503, 200]);
  });

  test('a blob redirected elsewhere (as registries send them to storage) is followed', async () => {
    const store = newStore();
    const rootfsLayer = busybox.layers[0];
    const location = `http://${registry().host}/v2/busybox/blobs/${rootfsLayer}`;
    proxy().sabotage('GET', new RegExp(`/blobs/${rootfsLayer}$`), { kind: 'respond', status: 307, headers: { Location: location } });
    const result = await pullImage(store, `${proxy().host}/busybox:1`, { retry: RETRY });
    expect(result.image.layers.map((l) => l.diffID)).toEqual(busybox.diffIDs);
    expect(proxy().requests.filter((r) => r.path.endsWith(`/blobs/${rootfsLayer}`)).map((r) => r.status)).toEqual([307]);
  });

  test('a connection cut on every try: the pull fails cleanly and the store is unchanged', async () => {
    const store = newStore();
    const before = storeSnapshot(store.root);
    const rootfsLayer = busybox.layers[0];
    // Progress resets the retry count: only cuts before the first byte exhaust it.
    proxy().sabotage('GET', new RegExp(`/blobs/${rootfsLayer}$`), { kind: 'cut', after: 50_000 });
    proxy().sabotage('GET', new RegExp(`/blobs/${rootfsLayer}$`), { kind: 'cut', after: 0 }, 100);
    const error = await pullImage(store, `${proxy().host}/busybox:1`, { retry: { retries: 2, delayMs: 1 } }).catch((err: Error) => err);
    expect(error).toBeInstanceOf(RegistryError);
    expect((error as Error).message).toMatch(new RegExp(`layer ${rootfsLayer} of .*: download failed after 3 tries`));
    expect(storeSnapshot(store.root)).toEqual(before);
    expect(proxy().requests.filter((r) => r.path.endsWith(`/blobs/${rootfsLayer}`)).map((r) => r.range)).toEqual([undefined, 'bytes=50000-', 'bytes=50000-']);
  });

  test('an unknown repository or tag: a "not found" that names the reference; an unreachable registry says so', async () => {
    const store = newStore();
    const unknownRepo = `${registry().host}/nosuch:1`;
    await expect(pullImage(store, unknownRepo, { retry: RETRY })).rejects.toMatchObject({ status: 404, message: `manifest for ${unknownRepo} not found: manifest unknown` });
    const unknownTag = `${registry().host}/busybox:nope`;
    await expect(pullImage(store, unknownTag, { retry: RETRY })).rejects.toThrow(`manifest for ${unknownTag} not found: manifest unknown`);
    await expect(pullIfMissing(store, 'sha256:0123456789abcdef', { retry: RETRY })).rejects.toThrow('No such image: sha256:0123456789abcdef');
    const nobody = await freePort();
    await expect(pullImage(store, `127.0.0.1:${nobody}/busybox:1`, { retry: RETRY })).rejects.toThrow(
      `cannot reach registry 127.0.0.1:${nobody} (https: connect ECONNREFUSED 127.0.0.1:${nobody}; http: connect ECONNREFUSED 127.0.0.1:${nobody})`,
    );
  });

  test("the CLI: Docker's lines without a terminal; -q prints only the reference; errors exit 1 or 125", () => {
    const root = path.join(tmp(), 'cli-store');
    const reference = `${registry().host}/busybox:1`;
    const tsrun = (...args: string[]): { status: number | null; stdout: string; stderr: string } => spawnSync(TSRUN, ['--root', root, ...args], { encoding: 'utf8', timeout: 60_000 });
    const short = (digest: string): string => hex(digest).slice(0, 12);

    const first = tsrun('pull', reference);
    expect(first).toMatchObject({ status: 0, stderr: '' });
    const lines = first.stdout.trimEnd().split('\n');
    expect(lines[0]).toBe('1: Pulling from busybox');
    expect(lines.slice(-3)).toEqual([`Digest: ${busybox.manifest}`, `Status: Downloaded newer image for ${reference}`, reference]);
    for (const layer of busybox.layers) {
      const own = lines.filter((l) => l.startsWith(`${short(layer)}: `)).map((l) => l.slice(14));
      expect(own[0]).toBe('Pulling fs layer');
      expect(own.slice(-2)).toEqual(['Download complete', 'Pull complete']);
    }

    const again = tsrun('pull', reference);
    expect(again.stdout).toBe(
      [`1: Pulling from busybox`, ...busybox.layers.map((l) => `${short(l)}: Already exists`), `Digest: ${busybox.manifest}`, `Status: Image is up to date for ${reference}`, reference, ''].join('\n'),
    );
    expect(tsrun('pull', '-q', reference)).toMatchObject({ status: 0, stdout: `${reference}\n`, stderr: '' });
    expect(tsrun('image', 'inspect', reference).stdout).toContain(`"${registry().host}/busybox@${busybox.manifest}"`);

    expect(tsrun('pull', '-q', `${registry().host}/nosuch`)).toMatchObject({ status: 1, stdout: '', stderr: `tsrun: manifest for ${registry().host}/nosuch:latest not found: manifest unknown\n` });
    expect(tsrun('pull', '-q', 'Not/A/Reference')).toMatchObject({ status: 125, stderr: expect.stringContaining('invalid reference format') });
  });

  test('tsrun run of an image the store lacks pulls it first (stderr), then runs it; --pull never and always', () => {
    const root = path.join(tmp(), 'run-store');
    const state = path.join(tmp(), 'run-state');
    const reference = `${registry().host}/busybox:1`;
    const tsrun = (...args: string[]): { status: number | null; stdout: string; stderr: string } => spawnSync(TSRUN, ['--root', root, '--state', state, ...args], { encoding: 'utf8', timeout: 60_000 });

    expect(tsrun('run', '--rm', '--pull', 'never', reference)).toMatchObject({ status: 125, stdout: '', stderr: expect.stringContaining(`No such image: ${reference}`) });
    const first = tsrun('run', '--rm', reference);
    expect(first).toMatchObject({ status: 0, stdout: 'from the registry\n' });
    const lines = first.stderr.trimEnd().split('\n');
    expect(lines.slice(0, 2)).toEqual([`Unable to find image '${reference}' locally`, '1: Pulling from busybox']);
    expect(lines.slice(-2)).toEqual([`Digest: ${busybox.manifest}`, `Status: Downloaded newer image for ${reference}`]);

    expect(tsrun('run', '--rm', reference, 'echo', 'again')).toEqual(expect.objectContaining({ status: 0, stdout: 'again\n', stderr: '' }));
    const always = tsrun('run', '--rm', '--pull', 'always', reference, 'true');
    expect(always.status).toBe(0);
    expect(always.stderr).toContain(`Status: Image is up to date for ${reference}`);
    expect(tsrun('run', '--rm', `${registry().host}/nosuch:1`)).toMatchObject({ status: 125, stdout: '', stderr: expect.stringContaining(`manifest for ${registry().host}/nosuch:1 not found`) });
  });

  test('a registry that serves HTTPS with a self-signed certificate: reached over TLS (loopback registries are insecure)', async () => {
    const secure = await startRegistry({ tls: true });
    try {
      const layout = path.join(tmp(), 'busybox-layout');
      execFileSync('skopeo', ['copy', '-q', '--dest-tls-verify=false', `oci:${layout}`, `docker://${secure.host}/busybox:1`]);
      const result = await pullImage(newStore(), `${secure.host}/busybox:1`, { retry: RETRY });
      expect(result.digest).toBe(busybox.manifest);
      // Plain HTTP to a TLS port would have been answered 400: every request went over TLS.
      expect(secure.output()).not.toMatch(/" 400 /);
      expect(secure.output()).toMatch(new RegExp(`"GET /v2/busybox/blobs/${busybox.layers[0]} HTTP/1.1" 200`));
    } finally {
      await secure.stop();
    }
  });

  test('a schema 1 manifest is refused with a clear message', async () => {
    const store = newStore();
    const schema1 = JSON.stringify({ schemaVersion: 1, name: 'old', tag: '1', architecture: 'amd64', fsLayers: [], history: [] });
    proxy().sabotage('GET', /\/manifests\/1$/, { kind: 'respond', status: 200, headers: { 'Content-Type': 'application/vnd.docker.distribution.manifest.v1+prettyjws' }, body: schema1 });
    const error = await pullImage(store, `${proxy().host}/busybox:1`, { retry: RETRY }).catch((err: Error) => err);
    expect(error).toBeInstanceOf(ContentError);
    expect((error as Error).message).toMatch(/Docker image manifest schema 1 .*which tsrun does not support.*push the image again/);
  });
});
