import fs = require('node:fs');
import path = require('node:path');
import { PassThrough, Readable } from 'node:stream';
import { ContentError, TsrunError, syscallErrorFrom } from '../errors';
import { NativeBinding, loadNative } from '../native/index';
import type { TarEntryType } from './tar/header';
import { TarWriter, TarWriterEntry, compareBytes } from './tar/writer';

/**
 * The other direction from apply.ts: an overlay upper directory back to an
 * OCI layer (`commit`), and the list of what it changes (`tsrun diff`).
 * overlayfs marks a deleted name with a 0/0 character device and a
 * directory that hides the layers below with trusted.overlay.opaque=y.
 */

const OVERLAY_XATTRS = 'trusted.overlay.';
const OVERLAY_OPAQUE = 'trusted.overlay.opaque';
/** xattrs that make overlayfs look elsewhere for a file's data or a directory's content: the upper dir alone is not the change then. */
const OVERLAY_INDIRECTIONS = ['trusted.overlay.redirect', 'trusted.overlay.metacopy'];
const WHITEOUT_PREFIX = '.wh.';
const OPAQUE_MARKER = '.wh..wh..opq';

/** Files up to this size are read in one piece; bigger ones stream. */
const WHOLE_READ_LIMIT = 256 * 1024;
const READ_CHUNK = 1024 * 1024;

/** Bytes of tar buffered ahead of a slow consumer (a compressor). */
const OUTPUT_BUFFER = 4 * 1024 * 1024;

function isWhiteout(stat: fs.Stats): boolean {
  return stat.isCharacterDevice() && stat.rdev === 0;
}

/** glibc's major()/minor() for a dev_t that fits in a double (52 bits are plenty for Linux's 12+20). */
function deviceNumbers(rdev: number): { major: number; minor: number } {
  const low = rdev % 2 ** 32;
  const high = Math.floor(rdev / 2 ** 32);
  return {
    major: ((high & 0xfffff000) >>> 0) + ((low >>> 8) & 0xfff),
    minor: (((high & 0xfff) << 20) >>> 0) + ((low >>> 12) & 0xfff00) + (low & 0xff),
  };
}

/** One entry of the layer: where its data comes from and the name it gets. */
interface DiffEntry {
  /** Name in the tar (without a directory's trailing `/`). */
  name: string;
  /** Path in the upper directory; null for an opaque marker. */
  source: string | null;
  stat: fs.Stats | null;
  whiteout: boolean;
}

/**
 * The upper directory `upperDir` as an uncompressed OCI layer tar, the same
 * bytes for the same tree: entries in byte order of their names (so a
 * directory comes before its content), overlay whiteouts as `.wh.NAME`
 * empty files, opaque directories as the directory plus `DIR/.wh..wh..opq`,
 * files with several names in the tree as one file and hard links to its
 * first name. Mode, owner, mtime (whole seconds), devices, fifos and xattrs
 * (but overlay's own) are kept; sockets are skipped. The upper directory
 * must not change while it is read (the container is stopped or paused).
 */
export function diffLayer(upperDir: string): Readable {
  const output = new PassThrough({ highWaterMark: OUTPUT_BUFFER });
  writeDiff(path.resolve(upperDir), output).catch((err: unknown) => output.destroy(diffError(err) as Error));
  return output;
}

function diffError(err: unknown): unknown {
  return err instanceof TsrunError ? err : syscallErrorFrom('diff', err);
}

async function writeDiff(upper: string, output: PassThrough): Promise<void> {
  const native = loadNative();
  const subject = `upper directory ${upper}`;
  const entries: DiffEntry[] = [];
  walk(upper, '', (name, source, stat) => {
    if (isWhiteout(stat)) {
      const slash = name.lastIndexOf('/');
      entries.push({ name: `${name.slice(0, slash + 1)}${WHITEOUT_PREFIX}${name.slice(slash + 1)}`, source, stat, whiteout: true });
      return false;
    }
    if (stat.isSocket()) return false;
    entries.push({ name, source, stat, whiteout: false });
    if (stat.isDirectory() && native.lgetxattr(source, OVERLAY_OPAQUE)?.toString() === 'y') {
      entries.push({ name: `${name}/${OPAQUE_MARKER}`, source: null, stat, whiteout: true });
    }
    return stat.isDirectory();
  });
  entries.sort((a, b) => compareBytes(a.name, b.name));

  const tar = new TarWriter(output);
  /** First name of each inode with several links in the tree. */
  const firstNames = new Map<string, string>();
  for (const entry of entries) {
    const stat = entry.stat!;
    if (entry.whiteout) {
      // Like overlayfs's own whiteouts, mode 0; owner and time from the whiteout (or the opaque directory).
      await tar.add({ name: entry.name, type: 'file', mode: 0, uid: stat.uid, gid: stat.gid, mtime: stat.mtimeMs / 1000 });
      continue;
    }
    const source = entry.source!;
    const header: TarWriterEntry = {
      name: entry.name,
      type: entryType(stat),
      mode: stat.mode & 0o7777,
      uid: stat.uid,
      gid: stat.gid,
      mtime: stat.mtimeMs / 1000,
      xattrs: xattrsOf(native, source, subject, entry.name),
    };
    if (!stat.isDirectory() && stat.nlink > 1) {
      const inode = `${stat.dev}:${stat.ino}`;
      const first = firstNames.get(inode);
      if (first !== undefined) {
        await tar.add({ ...header, type: 'hardlink', linkname: first, xattrs: undefined });
        continue;
      }
      firstNames.set(inode, entry.name);
    }
    switch (header.type) {
      case 'file':
        await tar.add({ ...header, size: stat.size }, stat.size <= WHOLE_READ_LIMIT ? readWhole(source, stat.size, subject, entry.name) : readChunks(source, stat.size));
        break;
      case 'symlink':
        await tar.add({ ...header, linkname: fs.readlinkSync(source) });
        break;
      case 'char':
      case 'block': {
        const { major, minor } = deviceNumbers(stat.rdev);
        await tar.add({ ...header, devmajor: major, devminor: minor });
        break;
      }
      default:
        await tar.add(header);
    }
  }
  await tar.finish();
}

/**
 * Visits the tree under `dir` depth-first (not in order), calling `visit`
 * with each entry's name relative to the root; it returns whether to go
 * into a directory.
 */
function walk(root: string, name: string, visit: (name: string, source: string, stat: fs.Stats) => boolean): void {
  const dir = name === '' ? root : `${root}/${name}`;
  for (const child of fs.readdirSync(dir)) {
    const childName = name === '' ? child : `${name}/${child}`;
    const source = `${dir}/${child}`;
    const stat = fs.lstatSync(source);
    if (visit(childName, source, stat)) walk(root, childName, visit);
  }
}

function entryType(stat: fs.Stats): TarEntryType {
  if (stat.isFile()) return 'file';
  if (stat.isDirectory()) return 'directory';
  if (stat.isSymbolicLink()) return 'symlink';
  if (stat.isCharacterDevice()) return 'char';
  if (stat.isBlockDevice()) return 'block';
  return 'fifo';
}

function xattrsOf(native: NativeBinding, source: string, subject: string, name: string): Map<string, Buffer> {
  const xattrs = new Map<string, Buffer>();
  for (const key of native.llistxattr(source)) {
    if (OVERLAY_INDIRECTIONS.includes(key)) {
      throw new ContentError(subject, `has ${key}: its content lives in a lower layer, so the upper directory alone is not the change (mount overlay with redirect_dir=off,metacopy=off)`, name);
    }
    if (key.startsWith(OVERLAY_XATTRS)) continue;
    const value = native.lgetxattr(source, key);
    if (value !== null) xattrs.set(key, value);
  }
  return xattrs;
}

/** Opens without following a symlink that replaced the file since it was listed. */
function openForRead(source: string): number {
  return fs.openSync(source, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
}

function readWhole(source: string, size: number, subject: string, name: string): Buffer {
  const fd = openForRead(source);
  try {
    const data = Buffer.allocUnsafe(size);
    let read = 0;
    while (read < size) {
      const n = fs.readSync(fd, data, read, size - read, null);
      if (n === 0) throw new ContentError(subject, `the file shrank from ${size} to ${read} bytes while it was read`, name);
      read += n;
    }
    return data;
  } finally {
    fs.closeSync(fd);
  }
}

/** At most `size` bytes of a big file; the writer fails the entry if fewer come. */
async function* readChunks(source: string, size: number): AsyncGenerator<Buffer> {
  const fd = openForRead(source);
  try {
    for (let left = size; left > 0; ) {
      const chunk = Buffer.allocUnsafe(Math.min(READ_CHUNK, left));
      const n = fs.readSync(fd, chunk, 0, chunk.length, null);
      if (n === 0) return;
      left -= n;
      yield chunk.subarray(0, n);
    }
  } finally {
    fs.closeSync(fd);
  }
}

export interface Change {
  kind: 'A' | 'C' | 'D';
  /** Absolute path in the container, `/etc/foo`. */
  path: string;
}

/**
 * What the upper directory changes over `lowerDirs` (top first), as
 * `docker diff` shows it: D for a deleted name (a whiteout, or a name of
 * the layers below that an opaque directory hides and does not recreate),
 * C for a path that exists in the layers below, A for a new one. Sorted
 * by path.
 */
export function listChanges(upperDir: string, lowerDirs: string[]): Change[] {
  try {
    return changesOf(upperDir, lowerDirs);
  } catch (err) {
    throw diffError(err);
  }
}

function changesOf(upperDir: string, lowerDirs: string[]): Change[] {
  const native = loadNative();
  const lower = new LowerView(lowerDirs.map((dir) => path.resolve(dir)), native);
  const changes: Change[] = [];
  walk(path.resolve(upperDir), '', (name, source, stat) => {
    if (isWhiteout(stat)) {
      changes.push({ kind: 'D', path: `/${name}` });
      return false;
    }
    changes.push({ kind: lower.has(name) ? 'C' : 'A', path: `/${name}` });
    if (stat.isDirectory() && native.lgetxattr(source, OVERLAY_OPAQUE)?.toString() === 'y') {
      const kept = new Set(fs.readdirSync(source));
      for (const hidden of lower.list(name)) if (!kept.has(hidden)) changes.push({ kind: 'D', path: `/${name}/${hidden}` });
    }
    return stat.isDirectory();
  });
  return changes.sort((a, b) => compareBytes(a.path, b.path));
}

type LayerState = 'missing' | 'whiteout' | 'dir' | 'opaque' | 'other';

/** The union of read-only layers, as overlayfs shows it, asked by path. */
class LowerView {
  /** `<layer index>\0<name>` -> state, since the same parents are asked about again and again. */
  private readonly states = new Map<string, LayerState>();

  constructor(
    private readonly layers: string[],
    private readonly native: NativeBinding,
  ) {}

  /** Whether `name` exists in the union. */
  has(name: string): boolean {
    for (const { state } of this.visible(name)) return state !== 'whiteout';
    return false;
  }

  /** The names in directory `name` of the union. */
  list(name: string): string[] {
    const names = new Set<string>();
    const hidden = new Set<string>();
    for (const { layer, state } of this.visible(name)) {
      if (state !== 'dir' && state !== 'opaque') break;
      const dir = this.pathOf(layer, name);
      for (const child of fs.readdirSync(dir)) {
        if (hidden.has(child) || names.has(child)) continue;
        if (this.state(layer, name === '' ? child : `${name}/${child}`) === 'whiteout') hidden.add(child);
        else names.add(child);
      }
    }
    return [...names];
  }

  /**
   * The layers that show something at `name`, top first, with what each
   * has there; ends at the first one that hides the layers below (a
   * whiteout, a file, an opaque directory, or such an ancestor).
   */
  private *visible(name: string): Generator<{ layer: number; state: LayerState }> {
    const parts = name === '' ? [] : name.split('/');
    for (let layer = 0; layer < this.layers.length; layer++) {
      let cut = false;
      let present = true;
      let prefix = '';
      for (let i = 0; i < parts.length - 1; i++) {
        prefix = i === 0 ? parts[0] : `${prefix}/${parts[i]}`;
        const state = this.state(layer, prefix);
        if (state === 'missing') {
          present = false;
          break;
        }
        if (state === 'whiteout' || state === 'other') return;
        if (state === 'opaque') cut = true;
      }
      if (present) {
        const state = this.state(layer, name);
        if (state !== 'missing') {
          yield { layer, state };
          if (state !== 'dir') return;
        }
      }
      if (cut) return;
    }
  }

  private state(layer: number, name: string): LayerState {
    const key = `${layer}\0${name}`;
    let state = this.states.get(key);
    if (state === undefined) {
      const full = this.pathOf(layer, name);
      const stat = fs.lstatSync(full, { throwIfNoEntry: false });
      if (stat === undefined) state = 'missing';
      else if (isWhiteout(stat)) state = 'whiteout';
      else if (!stat.isDirectory()) state = 'other';
      else state = this.native.lgetxattr(full, OVERLAY_OPAQUE)?.toString() === 'y' ? 'opaque' : 'dir';
      this.states.set(key, state);
    }
    return state;
  }

  private pathOf(layer: number, name: string): string {
    return name === '' ? this.layers[layer] : `${this.layers[layer]}/${name}`;
  }
}

