import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as zlib from 'node:zlib';

export function sha256(data: Buffer | string): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

export function hex(digest: string): string {
  return digest.replace(/^sha256:/, '');
}

/** A tar of `dir`'s contents made by GNU tar (an independent implementation). */
export function tarOf(dir: string, options: string[] = []): Buffer {
  return execFileSync('tar', ['-C', dir, '--numeric-owner', '-cf', '-', ...options, '.'], { maxBuffer: 1 << 30 });
}

/** One entry for python's tarfile (an independent tar writer, and one that writes what it is told, `..` and all). */
export interface PyEntry {
  name: string;
  type?: 'file' | 'dir' | 'symlink' | 'hardlink' | 'char' | 'block' | 'fifo';
  data?: string;
  mode?: number;
  uid?: number;
  gid?: number;
  mtime?: number;
  linkname?: string;
  major?: number;
  minor?: number;
  pax?: Record<string, string>;
}

const PY_WRITER = `
import io, json, sys, tarfile
types = {"file": tarfile.REGTYPE, "dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE, "hardlink": tarfile.LNKTYPE,
         "char": tarfile.CHRTYPE, "block": tarfile.BLKTYPE, "fifo": tarfile.FIFOTYPE}
t = tarfile.open(fileobj=sys.stdout.buffer, mode="w|", format=tarfile.PAX_FORMAT)
for e in json.load(sys.stdin):
    i = tarfile.TarInfo(e["name"])
    i.type = types[e.get("type", "file")]
    data = e.get("data", "").encode()
    i.size = len(data)
    i.mode = e.get("mode", 0o755 if i.type == tarfile.DIRTYPE else 0o644)
    i.uid, i.gid = e.get("uid", 0), e.get("gid", 0)
    i.mtime = e.get("mtime", 1600000000)
    i.linkname = e.get("linkname", "")
    i.devmajor, i.devminor = e.get("major", 0), e.get("minor", 0)
    i.pax_headers = e.get("pax", {})
    t.addfile(i, io.BytesIO(data))
t.close()
`;

/** A tar of `entries` written by python's tarfile. */
export function pyTar(entries: PyEntry[]): Buffer {
  return execFileSync('python3', ['-c', PY_WRITER], { input: JSON.stringify(entries), maxBuffer: 1 << 28 });
}

/** A directory tree from `files` (path -> content), for building layers. */
export function writeTree(dir: string, files: Record<string, string>): string {
  for (const [name, content] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(dir, name)), { recursive: true });
    fs.writeFileSync(path.join(dir, name), content);
  }
  return dir;
}

export interface LayoutImage {
  manifest: string;
  config: string;
  layers: string[];
  diffIDs: string[];
}

/**
 * Writes an OCI image layout by hand, from layer tars: each is gzipped
 * (unless `gzip` is false) and described truthfully unless the test
 * overrides a part. What tsrun is tested against, not built with.
 */
export function writeOciLayout(
  dir: string,
  layerTars: Buffer[],
  options: { refName?: string; gzip?: boolean; diffIDs?: string[]; blobs?: (blob: Buffer, index: number) => Buffer; cmd?: string[] } = {},
): LayoutImage {
  const blobs = path.join(dir, 'blobs', 'sha256');
  fs.mkdirSync(blobs, { recursive: true });
  const put = (data: Buffer): string => {
    const digest = sha256(data);
    fs.writeFileSync(path.join(blobs, hex(digest)), data);
    return digest;
  };
  const compressed = layerTars.map((t) => (options.gzip === false ? t : zlib.gzipSync(t)));
  const diffIDs = options.diffIDs ?? layerTars.map((t) => sha256(t));
  const config = Buffer.from(
    JSON.stringify({
      created: '2024-01-02T03:04:05Z',
      architecture: { x64: 'amd64', arm64: 'arm64' }[process.arch as string] ?? process.arch,
      os: 'linux',
      config: { Cmd: options.cmd ?? ['sh'] },
      rootfs: { type: 'layers', diff_ids: diffIDs },
      history: layerTars.map(() => ({ created_by: 'test' })),
    }),
  );
  const configDigest = put(config);
  const layers = compressed.map((blob, i) => {
    const digest = sha256(blob);
    fs.writeFileSync(path.join(blobs, hex(digest)), options.blobs ? options.blobs(blob, i) : blob);
    return { mediaType: `application/vnd.oci.image.layer.v1.tar${options.gzip === false ? '' : '+gzip'}`, digest, size: blob.length };
  });
  const manifest = Buffer.from(
    JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: configDigest, size: config.length }, layers }),
  );
  const manifestDigest = put(manifest);
  fs.writeFileSync(path.join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  const annotations = options.refName ? { 'org.opencontainers.image.ref.name': options.refName } : undefined;
  fs.writeFileSync(
    path.join(dir, 'index.json'),
    JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: manifestDigest, size: manifest.length, annotations }] }),
  );
  return { manifest: manifestDigest, config: configDigest, layers: layers.map((l) => l.digest), diffIDs };
}

/**
 * An OCI image layout made by umoci at `dir`/umoci, tag `base`, of three
 * layers: `rootfs` plus /data/{a,b}; then a whiteout of /etc/group; then
 * /data made opaque, holding only c. skopeo's oci-archive and
 * docker-archive of it are `dir`/oci.tar (busybox:oci) and `dir`/docker.tar
 * (busybox:umoci).
 */
export function umociImage(dir: string, rootfs: string): { layout: string; ociArchive: string; dockerArchive: string; written: ReturnType<typeof layoutConfig> } {
  const layout = path.join(dir, 'umoci');
  const bundle = path.join(dir, 'umoci-bundle');
  fs.mkdirSync(dir, { recursive: true });
  execFileSync('umoci', ['init', '--layout', layout]);
  execFileSync('umoci', ['new', '--image', `${layout}:base`]);
  execFileSync('umoci', ['unpack', '--image', `${layout}:base`, bundle]);
  execFileSync('cp', ['-a', `${rootfs}/.`, path.join(bundle, 'rootfs')]);
  writeTree(path.join(bundle, 'rootfs'), { 'data/a': 'a\n', 'data/b': 'b\n' });
  execFileSync('umoci', ['repack', '--image', `${layout}:base`, bundle]);
  execFileSync('umoci', ['insert', '--image', `${layout}:base`, '--whiteout', '/etc/group']);
  const opaque = writeTree(path.join(dir, 'umoci-opaque'), { c: 'c\n' });
  execFileSync('umoci', ['insert', '--image', `${layout}:base`, '--opaque', opaque, '/data']);
  const ociArchive = path.join(dir, 'oci.tar');
  const dockerArchive = path.join(dir, 'docker.tar');
  execFileSync('skopeo', ['copy', '-q', `oci:${layout}:base`, `docker-archive:${dockerArchive}:busybox:umoci`]);
  execFileSync('skopeo', ['copy', '-q', `oci:${layout}:base`, `oci-archive:${ociArchive}:busybox:oci`]);
  return { layout, ociArchive, dockerArchive, written: layoutConfig(layout, 'base') };
}

/** Every entry under `root` (but the lock file) with its type, mode, size and content hash or link target. */
export function treeSnapshot(root: string): Record<string, string> {
  const result: Record<string, string> = {};
  const walk = (dir: string): void => {
    let entries: string[];
    try {
      entries = fs.readdirSync(dir).sort();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw err;
    }
    for (const entry of entries) {
      const full = path.join(dir, entry);
      const rel = path.relative(root, full);
      if (rel === 'lock') continue;
      const st = fs.lstatSync(full);
      if (st.isDirectory()) {
        result[rel] = `dir ${st.mode.toString(8)}`;
        walk(full);
      } else if (st.isSymbolicLink()) {
        result[rel] = `link ${fs.readlinkSync(full)}`;
      } else if (st.isFile()) {
        result[rel] = `file ${st.mode.toString(8)} ${st.size} ${sha256(fs.readFileSync(full))}`;
      } else {
        result[rel] = `other ${st.mode.toString(8)} ${st.rdev}`;
      }
    }
  };
  walk(root);
  return result;
}

/** The store's tree without tmp/, which must be empty whenever no operation runs. */
export function storeSnapshot(root: string): Record<string, string> {
  const tmp = path.join(root, 'tmp');
  if (fs.existsSync(tmp)) expect(fs.readdirSync(tmp)).toEqual([]);
  return Object.fromEntries(Object.entries(treeSnapshot(root)).filter(([rel]) => rel !== 'tmp'));
}

export function readJson<T = unknown>(file: string): T {
  return JSON.parse(fs.readFileSync(file, 'utf8')) as T;
}

/** The config (diff IDs and all) of the manifest `ref` names in an OCI layout directory. */
export function layoutConfig(layout: string, refName?: string): { manifest: string; diffIDs: string[]; layers: string[] } {
  const index = readJson<{ manifests: { digest: string; annotations?: Record<string, string> }[] }>(path.join(layout, 'index.json'));
  const entry = refName === undefined ? index.manifests[0] : index.manifests.find((m) => m.annotations?.['org.opencontainers.image.ref.name'] === refName);
  if (!entry) throw new Error(`no ${refName} in ${layout}`);
  const manifest = readJson<{ config: { digest: string }; layers: { digest: string }[] }>(path.join(layout, 'blobs', 'sha256', hex(entry.digest)));
  const config = readJson<{ rootfs: { diff_ids: string[] } }>(path.join(layout, 'blobs', 'sha256', hex(manifest.config.digest)));
  return { manifest: entry.digest, diffIDs: config.rootfs.diff_ids, layers: manifest.layers.map((l) => l.digest) };
}
