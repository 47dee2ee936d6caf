import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs = require('node:fs');
import path = require('node:path');
import { PassThrough, Readable } from 'node:stream';
import zlib = require('node:zlib');
import { BuildError, ContentError, syscallErrorFrom } from '../errors';
import { parseGroup, parsePasswd } from '../linux/users';
import { decompress, detectCompression } from '../storage/compression';
import { readTar } from '../storage/tar/reader';
import { TarWriter, TarWriterEntry, compareBytes } from '../storage/tar/writer';
import type { LayeredTree } from './layered-tree';
import type { MatchedSource, SourceEntry } from './sources';

/**
 * COPY and ADD write their files straight into a new layer: a tar stream
 * of the files at their destination (with the destination's parent
 * directories, which keep the metadata they have in the image), applied
 * by the store like any other layer. No container is needed.
 */

export interface CopyOptions {
  /** Absolute destination in the image, as written (a trailing `/` means a directory). */
  dest: string;
  /** The image being built: where the destination's symlinks and existing directories are. */
  tree: LayeredTree;
  owner?: { uid: number; gid: number };
  /** --chmod: the mode of every file and directory copied. */
  mode?: number;
  /** ADD: a local tar archive (gzip, zstd or none) is extracted at the destination. */
  extractArchives: boolean;
  /** `COPY` or `ADD`, for messages. */
  instruction: string;
}

interface PlannedEntry {
  name: string;
  source: SourceEntry | null;
  header: TarWriterEntry;
  archives?: { file: string; kind: ArchiveKind }[];
}

export interface CopyLayer {
  /** sha256 over what is copied (names, types, modes, link targets, contents): mtimes and atimes do not count, as in Docker. */
  contentHash: string;
  /** The history's `file:<hex>` or `dir:<hex>`. */
  summary: string;
  /** The layer as an uncompressed tar. */
  tar(): Readable;
}

/** Plans the layer for `sources` copied to `options.dest`; nothing is read but metadata and the contents to hash. */
export function planCopy(sources: MatchedSource[], options: CopyOptions): CopyLayer {
  const { tree } = options;
  const many = sources.length > 1;
  const destIsDir = options.dest.endsWith('/') || many || tree.stat(options.dest)?.stat.isDirectory() === true;
  if (many && !options.dest.endsWith('/')) {
    throw new BuildError(`When using ${options.instruction} with more than one source file, the destination must be a directory and end with a /`);
  }
  const dest = tree.resolve(options.dest, destIsDir).replace(/^\/+/, '');
  const planned = new Map<string, PlannedEntry>();
  const hash = createHash('sha256');
  for (const source of sources) {
    const top = source.entries[0].entry;
    const archive = options.extractArchives && top.stat.isFile() ? archiveKind(top.host) : null;
    hash.update(`${source.relative}\0${archive ?? ''}\0`);
    for (const { name, entry } of source.entries) {
      let target: string;
      if (archive || top.stat.isDirectory()) target = name === '' ? dest : `${dest}/${name}`;
      else target = destIsDir ? `${dest}/${path.posix.basename(source.relative)}` : dest;
      // A directory goes into the directory a symlink of the image points to, as it would in the container.
      const intoDirectory = (archive || entry.stat.isDirectory()) && tree.stat(`/${target}`)?.stat.isDirectory() === true;
      target = tree.resolve(`/${target}`, intoDirectory).replace(/^\/+/, '');
      if (target === '') {
        hash.update('\0root\0');
        continue;
      }
      hash.update(`${name}\0${entryHash(entry)}\0`);
      // The directory copied into keeps what it has in the image; one that is new gets the source's metadata.
      const header = name === '' && intoDirectory ? parentHeader(target, tree) : archive ? { name: target, type: 'directory' as const, mode: 0o755 } : headerFor(target, entry, options);
      // Archives extracted to one directory all go there, in order.
      const archives = archive ? [...(planned.get(target)?.archives ?? []), { file: entry.host, kind: archive }] : undefined;
      planned.set(target, { name: target, source: archive ? null : entry, header, ...(archives ? { archives } : {}) });
    }
  }
  for (const name of [...planned.keys()]) {
    for (let dir = path.posix.dirname(name); dir !== '.' && dir !== '/'; dir = path.posix.dirname(dir)) {
      if (!planned.has(dir)) planned.set(dir, { name: dir, source: null, header: parentHeader(dir, tree) });
    }
  }
  const contentHash = `sha256:${hash.digest('hex')}`;
  const single = sources.length === 1 && sources[0].entries.length === 1;
  return {
    contentHash,
    summary: `${single ? 'file' : 'dir'}:${contentHash.slice(7)}`,
    tar() {
      const output = new PassThrough({ highWaterMark: 1 << 20 });
      writeLayer(output, [...planned.values()]).catch((err: unknown) => output.destroy(err as Error));
      return output;
    },
  };
}

/** The layer's entries in byte order of their names, so that every directory comes before what is in it. */
async function writeLayer(output: PassThrough, entries: PlannedEntry[]): Promise<void> {
  const tar = new TarWriter(output);
  for (const entry of entries.sort((a, b) => compareBytes(a.name, b.name))) {
    if (entry.archives !== undefined) {
      await tar.add(entry.header);
      for (const archive of entry.archives) await extractInto(tar, archive.file, archive.kind, entry.name);
    } else if (entry.header.type === 'file') {
      await tar.add(entry.header, readFile(entry.source as SourceEntry));
    } else {
      await tar.add(entry.header);
    }
  }
  await tar.finish();
}

async function* readFile(entry: SourceEntry): AsyncGenerator<Buffer> {
  const stream = fs.createReadStream(entry.host);
  try {
    for await (const chunk of stream) yield chunk as Buffer;
  } catch (err) {
    throw syscallErrorFrom('copy', err);
  } finally {
    stream.destroy();
  }
}

/** The entries of a local archive, moved under `dir`. */
async function extractInto(tar: TarWriter, archive: string, kind: ArchiveKind, dir: string): Promise<void> {
  const subject = `archive ${path.basename(archive)}`;
  await withArchive(archive, kind, subject, (input) =>
    readTar(
      input,
      async (header, body) => {
        const name = path.posix.normalize(header.name).replace(/^(\.\/)+|^\/+/g, '').replace(/\/+$/, '');
        if (name === '.' || name === '') {
          for await (const chunk of body) void chunk;
          return;
        }
        if (name.startsWith('../')) throw new BuildError(`${subject}: ${header.name}: path escapes the destination`);
        const linkname = header.type === 'hardlink' ? `${dir}/${path.posix.normalize(header.linkname).replace(/^(\.\/)+|^\/+/g, '')}` : header.linkname;
        const entry: TarWriterEntry = { ...header, name: `${dir}/${name}`, linkname };
        await tar.add(entry, header.type === 'file' ? body : undefined);
      },
      { subject },
    ),
  );
}

export type ArchiveKind = 'none' | 'gzip' | 'zstd' | 'bzip2' | 'xz';

/** The tools that decompress what the store's own code does not. */
const DECOMPRESSORS = { bzip2: 'bzip2', xz: 'xz', zstd: 'zstd' } as const;
/** Enough of a file to decompress its first tar header, even from a 900k bzip2 block. */
const PROBE_SIZE = 1024 * 1024;

function compressionOf(head: Buffer): ArchiveKind {
  if (head.subarray(0, 3).toString('latin1') === 'BZh') return 'bzip2';
  if (head.subarray(0, 6).equals(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]))) return 'xz';
  return detectCompression(head);
}

/**
 * Whether a file is a tar archive, plain or compressed (gzip, zstd,
 * bzip2, xz): what ADD extracts, as Docker does. The first part is
 * decompressed to look for a tar header, so a compressed file that is no
 * archive is copied as it is.
 */
export function archiveKind(file: string): ArchiveKind | null {
  const fd = fs.openSync(file, 'r');
  let head: Buffer;
  try {
    const buffer = Buffer.alloc(PROBE_SIZE);
    head = buffer.subarray(0, fs.readSync(fd, buffer, 0, PROBE_SIZE, 0));
  } finally {
    fs.closeSync(fd);
  }
  const kind = compressionOf(head);
  let plain: Buffer;
  try {
    if (kind === 'none') plain = head;
    else if (kind === 'gzip') plain = zlib.gunzipSync(head, { finishFlush: zlib.constants.Z_SYNC_FLUSH });
    // A truncated input makes the tool fail, after it wrote what it could decode.
    else plain = spawnSync(DECOMPRESSORS[kind], ['-dc'], { input: head, maxBuffer: 64 * PROBE_SIZE }).stdout ?? Buffer.alloc(0);
  } catch {
    return null;
  }
  return plain.length >= 512 && plain.subarray(257, 262).toString('latin1') === 'ustar' ? kind : null;
}

/** Runs `body` on the decompressed content of an archive; a failing decompressor is a ContentError naming the archive. */
export async function withArchive(file: string, kind: ArchiveKind, subject: string, body: (input: AsyncIterable<Buffer>) => Promise<void>): Promise<void> {
  if (kind !== 'bzip2' && kind !== 'xz') {
    const input = fs.createReadStream(file);
    try {
      return await body(decompress(input, subject));
    } finally {
      input.destroy();
    }
  }
  const child = spawn(DECOMPRESSORS[kind], ['-dc', '--', file], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-1000)));
  const exited = new Promise<number | null>((resolve, reject) => {
    child.once('error', (err) => reject(syscallErrorFrom('add', err, `install Debian's ${kind === 'xz' ? 'xz-utils' : 'bzip2'} package`)));
    child.once('close', resolve);
  });
  try {
    await body(child.stdout);
  } catch (err) {
    child.kill('SIGKILL');
    await exited.catch(() => undefined);
    throw err;
  }
  const code = await exited;
  if (code !== 0) throw new ContentError(subject, `${DECOMPRESSORS[kind]} -d failed (exit ${code}): ${stderr.trim()}`);
}

function entryHash(entry: SourceEntry): string {
  const { stat } = entry;
  const mode = (stat.mode & 0o7777).toString(8);
  if (stat.isSymbolicLink()) return `link ${fs.readlinkSync(entry.host)}`;
  if (stat.isDirectory()) return `dir ${mode}`;
  if (!stat.isFile()) return `other ${mode} ${stat.rdev}`;
  return `file ${mode} ${fileHash(entry.host)}`;
}

/** sha256 of a file, read in pieces so that a big one is never in memory whole. */
function fileHash(file: string): string {
  const hash = createHash('sha256');
  const buffer = Buffer.alloc(1 << 20);
  const fd = fs.openSync(file, 'r');
  try {
    for (let read; (read = fs.readSync(fd, buffer)) > 0; ) hash.update(buffer.subarray(0, read));
  } finally {
    fs.closeSync(fd);
  }
  return hash.digest('hex');
}

function headerFor(name: string, entry: SourceEntry, options: CopyOptions): TarWriterEntry {
  const { stat } = entry;
  const owner = options.owner ?? { uid: 0, gid: 0 };
  const base = { name, uid: owner.uid, gid: owner.gid, mtime: Math.floor(stat.mtimeMs / 1000), mode: options.mode ?? stat.mode & 0o7777 };
  if (stat.isDirectory()) return { ...base, type: 'directory' };
  if (stat.isSymbolicLink()) return { ...base, type: 'symlink', mode: 0o777, linkname: fs.readlinkSync(entry.host) };
  if (stat.isFIFO()) return { ...base, type: 'fifo' };
  if (stat.isFile()) return { ...base, type: 'file', size: stat.size };
  throw new BuildError(`${name}: ${options.instruction} cannot copy a socket or device`);
}

/** A parent of the destination: as the image has it, or a new 0755 root directory. */
function parentHeader(dir: string, tree: LayeredTree): TarWriterEntry {
  const existing = tree.lstat(`/${dir}`);
  if (existing?.stat.isDirectory()) {
    const { stat } = existing;
    return { name: dir, type: 'directory', mode: stat.mode & 0o7777, uid: stat.uid, gid: stat.gid, mtime: Math.floor(stat.mtimeMs / 1000) };
  }
  return { name: dir, type: 'directory', mode: 0o755, mtime: Math.floor(Date.now() / 1000) };
}

/** `--chown=user[:group]`, names looked up in the image's /etc/passwd and /etc/group; a user alone gives its uid as the gid too. */
export function resolveOwner(spec: string, tree: LayeredTree): { uid: number; gid: number } {
  const [user, group, ...extra] = spec.split(':');
  if (user === '' || group === '' || extra.length > 0) throw new BuildError(`--chown=${spec}: expected user[:group]`);
  const id = (text: string, table: { name: string; id: number }[], kind: string): number => {
    if (/^\d+$/.test(text)) return Number(text);
    const found = table.find((e) => e.name === text);
    if (!found) throw new BuildError(`--chown=${spec}: unable to find ${kind} ${text}: no matching entries in ${kind === 'user' ? 'passwd' : 'group'} file`);
    return found.id;
  };
  const passwd = parsePasswd(tree.readFile('/etc/passwd')?.toString() ?? '').map((p) => ({ name: p.name, id: p.uid }));
  const uid = id(user, passwd, 'user');
  if (group === undefined) return { uid, gid: uid };
  const groups = parseGroup(tree.readFile('/etc/group')?.toString() ?? '').map((g) => ({ name: g.name, id: g.gid }));
  return { uid, gid: id(group, groups, 'group') };
}

/** `--chmod=755`: octal permission bits. */
export function parseChmod(spec: string): number {
  if (!/^[0-7]{3,4}$/.test(spec)) throw new BuildError(`--chmod=${spec}: expected octal permissions such as 755`);
  return parseInt(spec, 8);
}
