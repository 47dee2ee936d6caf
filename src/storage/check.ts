import { createHash } from 'node:crypto';
import fs = require('node:fs');
import path = require('node:path');
import type { Logger } from '../logger';
import { loadNative } from '../native/index';
import { parseImageConfig, parseManifest } from '../oci/image-spec';
import { withReadStream } from '../util/streams';
import type { BlobStore } from './blobs';
import { decompress } from './compression';
import { initLayerName } from './container-layers';
import type { ContainerStore } from './containers';
import { collectGarbage } from './gc';
import type { ImageRecords, TagTable } from './image-records';
import type { LayerStore, StoredLayer } from './layers';
import type { Staging } from './staging';
import type { TarHeader } from './tar/header';
import { readTar } from './tar/reader';

/**
 * `tsrun system check`: what a consistent store holds, checked from its
 * files alone. Every image record names a manifest and a config that are
 * stored, whose layers (by diff ID) and layer blobs are stored; every tag
 * and repo digest names an image; every layer directory is complete and
 * reachable by its short link; every container has its layers; nothing
 * is stored that nothing uses. With `content`, every blob is hashed again
 * and every layer's files are compared with the tar it was applied from.
 */

export type ProblemKind =
  | 'bad-record'
  | 'missing-blob'
  | 'corrupt-blob'
  | 'missing-layer'
  | 'corrupt-layer'
  | 'broken-image'
  | 'dangling-tag'
  | 'broken-link'
  | 'container-layers'
  | 'unused-layer'
  | 'unused-blob'
  | 'unused-dir'
  | 'stale-staging';

export interface StoreProblem {
  kind: ProblemKind;
  /** The digest, diff ID, tag, container id or path at fault. */
  subject: string;
  message: string;
  /** Whether `repair` fixed it. */
  repaired: boolean;
}

export interface CheckReport {
  problems: StoreProblem[];
  checked: { images: number; layers: number; blobs: number; containers: number };
}

export interface CheckOptions {
  /** Hash every blob and compare every layer's files with its blob (reads the whole store). */
  content?: boolean;
  /** Fix what can be fixed: drop what is damaged or unused (images with a damaged part go, as a pull or load can bring them back). */
  repair?: boolean;
}

export interface CheckStores {
  records: ImageRecords;
  blobs: BlobStore;
  layers: LayerStore;
  containers: ContainerStore;
  staging: Staging;
  logger: Logger;
}

/** How many differences of one layer are listed before the rest are counted. */
const MAX_LAYER_DIFFERENCES = 5;

/** The caller holds the store lock: shared to check, exclusive to repair. */
export async function checkStore(stores: CheckStores, options: CheckOptions = {}): Promise<CheckReport> {
  const problems: StoreProblem[] = [];
  const report = (kind: ProblemKind, subject: string, message: string): StoreProblem => {
    const problem = { kind, subject, message, repaired: false };
    problems.push(problem);
    return problem;
  };
  const blobs = new Set(stores.blobs.list());
  const layers = new Set(stores.layers.list());

  const damagedBlobs = new Set<string>();
  if (options.content) {
    for (const digest of blobs) {
      const actual = await hashFile(stores.blobs.path(digest));
      if (actual !== digest) {
        report('corrupt-blob', digest, `content hashes to ${actual}`);
        damagedBlobs.add(digest);
      }
    }
  }

  const damagedLayers = new Set<string>();
  for (const diffID of layers) {
    const problem = layerProblem(stores.layers, diffID);
    if (problem) {
      report(problem.kind, diffID, problem.message);
      damagedLayers.add(diffID);
    }
  }

  if (options.content) {
    for (const diffID of layers) {
      if (damagedLayers.has(diffID)) continue;
      // The blob it was applied from; a layer loaded from several blobs (gzip, zstd) was applied once.
      const blob = stores.layers.get(diffID).record.blob.digest;
      if (!blobs.has(blob) || damagedBlobs.has(blob)) continue;
      const differences = await compareLayerWithBlob(stores.layers.get(diffID), stores.blobs.path(blob));
      if (differences.length > 0) {
        report('corrupt-layer', diffID, `its files differ from blob ${blob}: ${differences.join('; ')}`);
        damagedLayers.add(diffID);
      }
    }
  }

  // Images: each whole, or broken by a missing or damaged part.
  const { records, badFiles } = readRecords(stores.records);
  for (const file of badFiles) report('bad-record', file, 'not a readable image record');
  const brokenImages = new Map<string, string>();
  for (const record of records) {
    const why = imageProblem(stores, record, blobs, layers, damagedBlobs, damagedLayers);
    if (why) brokenImages.set(record.id, why);
  }
  for (const [id, why] of brokenImages) report('broken-image', id, why);

  const tagProblems = [...danglingNames(stores.records.tags(), records, brokenImages, 'tag'), ...danglingNames(stores.records.digests(), records, brokenImages, 'repo digest')];
  for (const { name, message } of tagProblems) report('dangling-tag', name, message);

  const containers = stores.containers.list();
  const containerDirs = new Set<string>();
  for (const container of containers) {
    containerDirs.add(container.id).add(initLayerName(container.id));
    const missing = (container.layers ?? []).filter((d) => !layers.has(d) || damagedLayers.has(d));
    const dirs = [container.id, initLayerName(container.id)].filter((d) => !fs.existsSync(path.join(stores.layers.overlay, d, 'diff')));
    if (missing.length + dirs.length > 0) {
      report('container-layers', container.id, `container ${container.name} lacks ${[...missing.map((d) => `image layer ${d}`), ...dirs.map((d) => `its layer overlay2/${d}`)].join(', ')}; remove it with tsrun rm`);
    }
  }

  for (const link of brokenLinks(stores.layers)) report('broken-link', link, 'a short link whose layer is gone');
  for (const dir of unknownOverlayDirs(stores.layers.overlay, layers, containerDirs)) report('unused-dir', path.join(stores.layers.overlay, dir), 'neither a layer nor a container\'s (left by an interrupted operation)');
  for (const entry of stores.staging.staleEntries()) report('stale-staging', path.join(stores.staging.dir, entry), 'staging of a process that is gone');

  // What no image or container uses (what only broken images use goes with them in a repair).
  const usedLayers = new Set(containers.flatMap((c) => c.layers ?? []));
  const usedBlobs = new Set<string>();
  for (const record of records) {
    const parts = imageParts(stores, record);
    parts.layers.forEach((d) => usedLayers.add(d));
    parts.blobs.forEach((b) => usedBlobs.add(b));
  }
  for (const diffID of layers) if (!usedLayers.has(diffID) && !damagedLayers.has(diffID)) report('unused-layer', diffID, 'no image or container uses it');
  for (const digest of blobs) if (!usedBlobs.has(digest) && !damagedBlobs.has(digest)) report('unused-blob', digest, 'no image uses it');

  if (options.repair) {
    // A container's overlay mount may have a damaged layer below it: that layer stays until the container is removed.
    const inUse = new Set(containers.flatMap((c) => c.layers ?? []));
    const removable = new Set([...damagedLayers].filter((d) => !inUse.has(d)));
    repair(stores, problems, { brokenImages, damagedBlobs, damagedLayers: removable });
    for (const problem of problems) {
      problem.repaired = problem.kind !== 'container-layers' && !(problem.kind === 'corrupt-layer' && inUse.has(problem.subject));
      if (!problem.repaired && problem.kind === 'corrupt-layer') problem.message += '; a container uses it: remove the container, then repair again';
    }
  }
  return { problems, checked: { images: records.length, layers: layers.size, blobs: blobs.size, containers: containers.length } };
}

function repair(stores: CheckStores, problems: StoreProblem[], damaged: { brokenImages: Map<string, string>; damagedBlobs: Set<string>; damagedLayers: Set<string> }): void {
  const trash = stores.staging.create('repair');
  try {
    // Damaged parts first, then the images they broke and the names of those, then what nothing uses any more.
    for (const digest of damaged.damagedBlobs) stores.blobs.remove(digest);
    for (const diffID of damaged.damagedLayers) removeLayerDir(stores.layers, diffID, trash);
    for (const id of damaged.brokenImages.keys()) stores.records.remove(id);
    for (const problem of problems.filter((p) => p.kind === 'bad-record')) fs.rmSync(path.join(stores.records.dir, problem.subject), { force: true });
    const live = new Set(stores.records.list().map((r) => r.id));
    stores.records.writeTags(keepLive(stores.records.tags(), live));
    stores.records.writeDigests(keepLive(stores.records.digests(), live));
    for (const problem of problems.filter((p) => p.kind === 'unused-dir')) fs.rmSync(problem.subject, { recursive: true, force: true });
    stores.staging.removeStale(stores.logger);
    collectGarbage(stores, trash);
  } finally {
    stores.staging.remove(trash);
  }
}

function keepLive(table: TagTable, live: Set<string>): TagTable {
  return Object.fromEntries(Object.entries(table).filter(([, id]) => live.has(id)));
}

/** A damaged layer directory goes whole, even when its layer.json cannot be read. */
function removeLayerDir(layers: LayerStore, diffID: string, trash: string): void {
  const dir = path.join(layers.overlay, diffID.slice('sha256:'.length));
  try {
    const link = fs.readFileSync(path.join(dir, 'link'), 'utf8').trim();
    if (/^[A-Z0-9]+$/.test(link)) fs.rmSync(path.join(layers.overlay, 'l', link), { force: true });
  } catch {
    // No link file: nothing links to it by name.
  }
  const moved = path.join(trash, path.basename(dir));
  fs.renameSync(dir, moved);
  fs.rmSync(moved, { recursive: true, force: true });
}

function layerProblem(layers: LayerStore, diffID: string): { kind: ProblemKind; message: string } | undefined {
  let layer: StoredLayer;
  try {
    layer = layers.get(diffID);
  } catch (err) {
    return { kind: 'corrupt-layer', message: `its layer.json or link cannot be read (${(err as Error).message})` };
  }
  if (layer.record?.diffID !== diffID) return { kind: 'corrupt-layer', message: `its layer.json names ${String(layer.record?.diffID)}` };
  if (!isDirectory(layer.dir)) return { kind: 'corrupt-layer', message: 'its diff directory is missing' };
  const linked = path.join(layers.overlay, 'l', layer.link);
  let target: string;
  try {
    target = fs.readlinkSync(linked);
  } catch {
    return { kind: 'corrupt-layer', message: `its short link l/${layer.link} is missing` };
  }
  if (path.resolve(path.dirname(linked), target) !== layer.dir) return { kind: 'corrupt-layer', message: `its short link l/${layer.link} points to ${target}` };
  return undefined;
}

interface RecordRead {
  id: string;
  manifest: string;
}

function readRecords(records: ImageRecords): { records: RecordRead[]; badFiles: string[] } {
  const good: RecordRead[] = [];
  const badFiles: string[] = [];
  let entries: string[];
  try {
    entries = fs.readdirSync(records.dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { records: good, badFiles };
    throw err;
  }
  for (const entry of entries.filter((e) => /^[a-f0-9]{64}\.json$/.test(e))) {
    try {
      const record = JSON.parse(fs.readFileSync(path.join(records.dir, entry), 'utf8')) as Partial<RecordRead>;
      if (record.id !== `sha256:${entry.slice(0, 64)}` || typeof record.manifest !== 'string') throw new Error('wrong fields');
      good.push({ id: record.id, manifest: record.manifest });
    } catch {
      badFiles.push(entry);
    }
  }
  return { records: good, badFiles };
}

/** The blobs and layers an image uses, as far as its manifest and config can be read. */
function imageParts(stores: CheckStores, record: RecordRead): { blobs: string[]; layers: string[] } {
  const blobs = [record.id, record.manifest];
  try {
    const manifest = parseManifest(stores.blobs.read(record.manifest), `manifest ${record.manifest}`);
    blobs.push(...manifest.layers.map((l) => l.digest));
    return { blobs, layers: parseImageConfig(stores.blobs.read(record.id), `config ${record.id}`).rootfs.diff_ids };
  } catch {
    return { blobs, layers: [] };
  }
}

function imageProblem(
  stores: CheckStores,
  record: RecordRead,
  blobs: Set<string>,
  layers: Set<string>,
  damagedBlobs: Set<string>,
  damagedLayers: Set<string>,
): string | undefined {
  const blobProblem = (digest: string, what: string): string | undefined => {
    if (!blobs.has(digest)) return `its ${what} ${digest} is missing`;
    if (damagedBlobs.has(digest)) return `its ${what} ${digest} is damaged`;
    return undefined;
  };
  const early = blobProblem(record.manifest, 'manifest') ?? blobProblem(record.id, 'config');
  if (early) return early;
  let manifest;
  let config;
  try {
    manifest = parseManifest(stores.blobs.read(record.manifest), `manifest ${record.manifest}`);
    config = parseImageConfig(stores.blobs.read(record.id), `config ${record.id}`);
  } catch (err) {
    return (err as Error).message;
  }
  if (manifest.config.digest !== record.id) return `its manifest names config ${manifest.config.digest}`;
  const diffIDs = config.rootfs.diff_ids;
  if (diffIDs.length !== manifest.layers.length) return `its manifest has ${manifest.layers.length} layers, its config ${diffIDs.length}`;
  for (const [i, diffID] of diffIDs.entries()) {
    if (!layers.has(diffID)) return `its layer ${diffID} is missing`;
    if (damagedLayers.has(diffID)) return `its layer ${diffID} is damaged`;
    const problem = blobProblem(manifest.layers[i].digest, 'layer blob');
    if (problem) return problem;
  }
  return undefined;
}

function danglingNames(table: TagTable, records: RecordRead[], broken: Map<string, string>, what: string): { name: string; message: string }[] {
  const ids = new Set(records.map((r) => r.id));
  return Object.entries(table)
    .filter(([, id]) => !ids.has(id) || broken.has(id))
    .map(([name, id]) => ({ name, message: `${what} of ${ids.has(id) ? 'broken' : 'missing'} image ${id}` }));
}

function brokenLinks(layers: LayerStore): string[] {
  const dir = path.join(layers.overlay, 'l');
  let links: string[];
  try {
    links = fs.readdirSync(dir);
  } catch {
    return [];
  }
  return links.filter((l) => !fs.existsSync(path.join(dir, l))).map((l) => `l/${l}`);
}

function unknownOverlayDirs(overlay: string, layers: Set<string>, containerDirs: Set<string>): string[] {
  let entries: string[];
  try {
    entries = fs.readdirSync(overlay);
  } catch {
    return [];
  }
  return entries.filter((e) => e !== 'l' && !layers.has(`sha256:${e}`) && !containerDirs.has(e));
}

function isDirectory(file: string): boolean {
  try {
    return fs.lstatSync(file).isDirectory();
  } catch {
    return false;
  }
}

async function hashFile(file: string): Promise<string> {
  const hash = createHash('sha256');
  await withReadStream(file, async (input) => {
    for await (const chunk of input) hash.update(chunk as Buffer);
  });
  return `sha256:${hash.digest('hex')}`;
}

/** What a tar entry left at its path, after every later entry for the same path. */
interface Expected {
  type: 'file' | 'directory' | 'symlink' | 'hardlink' | 'char' | 'block' | 'fifo' | 'whiteout' | 'opaque';
  mode?: number;
  uid?: number;
  gid?: number;
  size?: number;
  sha256?: string;
  link?: string;
  rdev?: [number, number];
}

/** Layer paths as apply.ts writes them: `./a/b/` -> `a/b`. */
function cleanName(name: string): string {
  return path.posix.normalize(`/${name}`).replace(/^\/+|\/+$/g, '');
}

/**
 * Reads the layer blob again and lists where the layer's directory differs
 * from it: a file changed, removed or added, a type, mode, owner, link or
 * whiteout that is not what the tar says.
 */
export async function compareLayerWithBlob(layer: StoredLayer, blobFile: string): Promise<string[]> {
  const expected = new Map<string, Expected>();
  const hash = createHash('sha256');
  await withReadStream(blobFile, async (input) => {
    const tar = decompress(input, `layer blob ${blobFile}`);
    async function* hashed(): AsyncGenerator<Buffer> {
      for await (const chunk of tar) {
        hash.update(chunk as Buffer);
        yield chunk as Buffer;
      }
    }
    await readTar(hashed(), async (header, body) => {
      const name = cleanName(header.name);
      let digest: string | undefined;
      if (header.type === 'file') {
        const fileHash = createHash('sha256');
        for await (const chunk of body) fileHash.update(chunk);
        digest = fileHash.digest('hex');
      }
      if (name === '') return;
      addParents(expected, name);
      const base = path.posix.basename(name);
      const parent = path.posix.dirname(name);
      if (base === '.wh..wh..opq') expected.set(`${parent === '.' ? '' : parent}\0opaque`, { type: 'opaque' });
      else if (base.startsWith('.wh..wh.')) return;
      else if (base.startsWith('.wh.')) expected.set(path.posix.join(parent, base.slice(4)), { type: 'whiteout' });
      else expected.set(name, expectationOf(header, digest));
    }, { subject: `layer blob ${blobFile}` });
  });
  const differences: string[] = [];
  const actualDiffID = `sha256:${hash.digest('hex')}`;
  if (actualDiffID !== layer.diffID) differences.push(`the blob uncompresses to ${actualDiffID}`);
  const native = loadNative();
  for (const [name, want] of expected) {
    if (differences.length > MAX_LAYER_DIFFERENCES) break;
    if (want.type === 'opaque') {
      const dir = path.join(layer.dir, name.slice(0, -'\0opaque'.length));
      if (native.lgetxattr(dir, 'trusted.overlay.opaque')?.toString() !== 'y') differences.push(`${dir} lost its opaque mark`);
      continue;
    }
    const difference = compareEntry(layer.dir, name, want);
    if (difference) differences.push(difference);
  }
  for (const extra of walk(layer.dir)) {
    if (differences.length > MAX_LAYER_DIFFERENCES) break;
    if (!expected.has(extra)) differences.push(`/${extra} is not in the layer`);
  }
  return differences;
}

function addParents(expected: Map<string, Expected>, name: string): void {
  for (let dir = path.posix.dirname(name); dir !== '.' && !expected.has(dir); dir = path.posix.dirname(dir)) {
    expected.set(dir, { type: 'directory' });
  }
}

function expectationOf(header: TarHeader, digest: string | undefined): Expected {
  const owner = { mode: header.mode & 0o7777, uid: header.uid, gid: header.gid };
  switch (header.type) {
    case 'file':
      return { type: 'file', ...owner, size: header.size, sha256: digest };
    case 'directory':
      return { type: 'directory', ...owner };
    case 'symlink':
      return { type: 'symlink', link: header.linkname, uid: header.uid, gid: header.gid };
    case 'hardlink':
      return { type: 'hardlink', link: cleanName(header.linkname) };
    case 'char':
    case 'block':
      return { type: header.type, ...owner, rdev: [header.devmajor, header.devminor] };
    case 'fifo':
      return { type: 'fifo', ...owner };
  }
}

function compareEntry(root: string, name: string, want: Expected): string | undefined {
  const file = path.join(root, name);
  let st: fs.Stats;
  try {
    st = fs.lstatSync(file);
  } catch {
    return `/${name} is missing`;
  }
  const isType: Record<Exclude<Expected['type'], 'opaque'>, () => boolean> = {
    file: () => st.isFile(),
    hardlink: () => st.isFile() || st.isSymbolicLink() || st.isCharacterDevice() || st.isBlockDevice() || st.isFIFO(),
    directory: () => st.isDirectory(),
    symlink: () => st.isSymbolicLink(),
    char: () => st.isCharacterDevice(),
    block: () => st.isBlockDevice(),
    fifo: () => st.isFIFO(),
    whiteout: () => st.isCharacterDevice() && st.rdev === 0,
  };
  if (!isType[want.type as Exclude<Expected['type'], 'opaque'>]()) return `/${name} is not a ${want.type}`;
  if (want.mode !== undefined && (st.mode & 0o7777) !== want.mode) return `/${name} has mode ${(st.mode & 0o7777).toString(8)}, not ${want.mode.toString(8)}`;
  if (want.uid !== undefined && (st.uid !== want.uid || st.gid !== want.gid)) return `/${name} is owned by ${st.uid}:${st.gid}, not ${want.uid}:${want.gid}`;
  if (want.type === 'symlink' && fs.readlinkSync(file) !== want.link) return `/${name} links to ${fs.readlinkSync(file)}, not ${want.link}`;
  if (want.type === 'hardlink') {
    try {
      if (fs.lstatSync(path.join(root, want.link ?? '')).ino !== st.ino) return `/${name} is no longer a hard link of /${want.link}`;
    } catch {
      return `/${want.link} (hard linked as /${name}) is missing`;
    }
  }
  if (want.rdev && st.rdev !== makedev(want.rdev[0], want.rdev[1])) return `/${name} is device ${st.rdev}, not ${want.rdev.join(':')}`;
  if (want.type === 'file') {
    if (st.size !== want.size) return `/${name} has ${st.size} bytes, not ${want.size}`;
    if (hashFileSync(file) !== want.sha256) return `/${name} has other content`;
  }
  return undefined;
}

function hashFileSync(file: string): string {
  const hash = createHash('sha256');
  const buffer = Buffer.allocUnsafe(1 << 20);
  const fd = fs.openSync(file, 'r');
  try {
    for (let n; (n = fs.readSync(fd, buffer, 0, buffer.length, null)) > 0; ) hash.update(buffer.subarray(0, n));
  } finally {
    fs.closeSync(fd);
  }
  return hash.digest('hex');
}

/** The kernel's dev_t encoding (glibc's makedev). */
function makedev(major: number, minor: number): number {
  return ((major & 0xfff) << 8) | (minor & 0xff) | ((minor & ~0xff) << 12) | ((major & ~0xfff) * 2 ** 32);
}

function walk(root: string): string[] {
  const found: string[] = [];
  const visit = (rel: string): void => {
    for (const entry of fs.readdirSync(path.join(root, rel), { withFileTypes: true })) {
      const name = rel === '' ? entry.name : `${rel}/${entry.name}`;
      found.push(name);
      if (entry.isDirectory()) visit(name);
    }
  };
  visit('');
  return found;
}
