import { createHash } from 'node:crypto';
import fs = require('node:fs');
import path = require('node:path');
import type { Readable } from 'node:stream';
import { finished } from 'node:stream/promises';
import { ContentError, TsrunError, syscallErrorFrom } from '../errors';
import { Logger, silentLogger } from '../logger';
import { NativeBinding, loadNative } from '../native/index';
import { decompress } from './compression';
import type { TarHeader } from './tar/header';
import { TarBody, readTar } from './tar/reader';

/**
 * Unpacks an OCI layer into an overlay2 `diff` directory. OCI whiteouts
 * become overlayfs's: `.wh.NAME` a 0/0 character device at NAME,
 * `.wh..wh..opq` the trusted.overlay.opaque=y xattr on its directory.
 *
 * Every path is resolved inside the layer by this code, never by the
 * kernel following a link: each parent directory is checked once to be a
 * real directory (not a symlink) and remembered, and the final component
 * is created with calls that do not follow it (O_NOFOLLOW|O_EXCL, mkdir,
 * symlink, mknod, link, lchown, lutimes, lsetxattr). The directory is a
 * fresh one in the store's staging area that nothing else writes to, so
 * what was checked stays true. Absolute symlink targets are created as
 * they are: they are resolved inside the container, never here.
 */

export interface ApplyResult {
  /** `sha256:<hex>` of the uncompressed tar stream. */
  diffID: string;
  /** Bytes of the uncompressed tar stream. */
  size: number;
  /** Tar entries applied (whiteouts included). */
  entries: number;
}

/**
 * Applies the layer tar `input` (gzip, zstd or uncompressed) to `dir`, an
 * existing empty directory (overlay2/<id>/diff), streaming: the layer is
 * never held in memory, and its diff ID is hashed on the way. Needs root
 * (ownership, devices, trusted.* xattrs).
 *
 * Rejects with a ContentError for a corrupt archive or an entry that would
 * write outside `dir` (`../x`, a write through a symlink, a hard link to a
 * path outside the layer or not yet extracted), a SyscallError for a
 * failed write. Either way `dir` is left half-written: the caller removes
 * it.
 */
export async function applyLayer(input: Readable, dir: string, options: { subject: string; logger?: Logger }): Promise<ApplyResult> {
  const { subject } = options;
  const hash = createHash('sha256');
  let size = 0;
  const tar = decompress(input, subject);
  async function* hashed(): AsyncGenerator<Buffer> {
    for await (const chunk of tar) {
      hash.update(chunk);
      size += chunk.length;
      yield chunk;
    }
  }
  const extractor = new LayerExtractor(path.resolve(dir), subject, options.logger ?? silentLogger);
  try {
    await readTar(hashed(), (header, body) => extractor.add(header, body), { subject });
  } catch (err) {
    // Returns once a zstd process is reaped and the input closed, not while they linger.
    tar.destroy();
    await finished(tar).catch(() => undefined);
    throw err;
  }
  extractor.finish();
  return { diffID: `sha256:${hash.digest('hex')}`, size, entries: extractor.entries };
}

const WHITEOUT_PREFIX = '.wh.';
/** `.wh..wh.` names are AUFS bookkeeping; only the opaque marker means something to overlay. */
const WHITEOUT_META_PREFIX = '.wh..wh.';
const OPAQUE_MARKER = '.wh..wh..opq';
const OVERLAY_OPAQUE = 'trusted.overlay.opaque';

/** xattr names a layer may set. trusted.overlay.* is not among them: those come only from whiteouts (a layer must not plant redirects or metacopy). */
const XATTR_NAMESPACES = ['user.', 'security.', 'trusted.', 'system.posix_acl_access', 'system.posix_acl_default'];
const OVERLAY_XATTRS = 'trusted.overlay.';

const CREATE_FILE = fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW;

/**
 * `./a//b/` -> `a/b`, as tar cleans names: leading `/` and `.` components
 * go, `..` is resolved by name. Null when the name leaves the root. The
 * root itself is ''.
 */
function cleanEntryName(name: string): string | null {
  // Most names are already clean but for a leading `./`.
  const start = name.startsWith('./') ? 2 : 0;
  const rest = start === 0 ? name : name.slice(start);
  if (!/(^|\/)\.{0,2}(\/|$)/.test(rest)) return rest;
  const parts: string[] = [];
  for (const part of rest.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') {
      if (parts.length === 0) return null;
      parts.pop();
    } else {
      parts.push(part);
    }
  }
  return parts.join('/');
}

function parentOf(name: string): string {
  const slash = name.lastIndexOf('/');
  return slash < 0 ? '' : name.slice(0, slash);
}

function isErrno(err: unknown, ...codes: string[]): boolean {
  return codes.includes((err as NodeJS.ErrnoException)?.code ?? '');
}

/** Writes entries into `root`; see the module comment for the rules. */
class LayerExtractor {
  entries = 0;
  /** Relative paths checked (or made) to be real directories, not symlinks: safe to create things in. */
  private readonly dirs = new Set<string>(['']);
  /** Directory metadata, applied by finish(): creating children changes a directory's mtime. */
  private readonly dirHeaders = new Map<string, TarHeader>();
  private native: NativeBinding | undefined;

  constructor(
    private readonly root: string,
    private readonly subject: string,
    private readonly logger: Logger,
  ) {}

  /** Applies one entry; returns a promise only when its body must be waited for. */
  add(header: TarHeader, body: TarBody): Promise<void> | void {
    this.entries++;
    try {
      const name = cleanEntryName(header.name);
      if (name === null) throw this.refuse('the path escapes the layer', header);
      const base = name.slice(name.lastIndexOf('/') + 1);
      // AUFS keeps hard link targets in /.wh..wh.plnk/ and such: none of it is content.
      if (name.startsWith(WHITEOUT_META_PREFIX) && name !== OPAQUE_MARKER) return this.skipAufsMeta(header);
      if (base.startsWith(WHITEOUT_PREFIX)) return this.whiteout(name, base, header);
      if (name === '' && header.type !== 'directory') throw this.refuse(`a ${header.type} cannot replace the layer's root`, header);
      switch (header.type) {
        case 'file':
          return this.file(name, header, body);
        case 'directory':
          return this.directory(name, header);
        case 'symlink':
          return this.symlink(name, header);
        case 'hardlink':
          return this.hardlink(name, header);
        case 'char':
        case 'block':
        case 'fifo':
          return this.node(name, header);
      }
    } catch (err) {
      throw this.wrap(err);
    }
  }

  /** Sets the directories' ownership, modes, xattrs and times, now that nothing more is created in them. */
  finish(): void {
    for (const [name, header] of this.dirHeaders) {
      const full = this.pathOf(name);
      try {
        fs.lchownSync(full, header.uid, header.gid);
        // A directory here is one this extractor made or checked: chmod cannot be led through a symlink.
        fs.chmodSync(full, header.mode);
        this.setXattrs(full, header);
        fs.lutimesSync(full, header.mtime, header.mtime);
      } catch (err) {
        throw this.wrap(err);
      }
    }
  }

  private file(name: string, header: TarHeader, body: TarBody): Promise<void> | void {
    const full = this.prepare(name, header);
    const fd = this.create(name, header, () => fs.openSync(full, CREATE_FILE, 0o600));
    let handedOver = false;
    try {
      for (let chunk = body.readBuffered(); chunk.length > 0; chunk = body.readBuffered()) writeAll(fd, chunk);
      if (body.remaining > 0) {
        handedOver = true;
        return this.fileRest(fd, full, header, body);
      }
      this.setFileMetadata(fd, full, header);
    } finally {
      if (!handedOver) fs.closeSync(fd);
    }
  }

  /** The part of a body that was not in memory yet; closes `fd`. */
  private async fileRest(fd: number, full: string, header: TarHeader, body: TarBody): Promise<void> {
    try {
      for await (const chunk of body) writeAll(fd, chunk);
      this.setFileMetadata(fd, full, header);
    } catch (err) {
      throw this.wrap(err);
    } finally {
      fs.closeSync(fd);
    }
  }

  private setFileMetadata(fd: number, full: string, header: TarHeader): void {
    // chown clears setuid/setgid and file capabilities, so: owner, then mode, then xattrs.
    fs.fchownSync(fd, header.uid, header.gid);
    fs.fchmodSync(fd, header.mode);
    this.setXattrs(full, header);
    fs.futimesSync(fd, header.mtime, header.mtime);
  }

  private directory(name: string, header: TarHeader): void {
    if (name !== '') {
      const full = this.prepare(name, header);
      try {
        fs.mkdirSync(full, 0o700);
      } catch (err) {
        if (!isErrno(err, 'EEXIST')) throw err;
        // A directory over a directory merges; anything else is replaced.
        if (!fs.lstatSync(full).isDirectory()) {
          this.remove(name, full);
          fs.mkdirSync(full, 0o700);
        }
      }
      this.dirs.add(name);
    }
    this.dirHeaders.set(name, header);
  }

  private symlink(name: string, header: TarHeader): void {
    const full = this.prepare(name, header);
    this.create(name, header, () => fs.symlinkSync(header.linkname, full));
    fs.lchownSync(full, header.uid, header.gid);
    this.setXattrs(full, header);
    fs.lutimesSync(full, header.mtime, header.mtime);
  }

  private hardlink(name: string, header: TarHeader): void {
    const target = cleanEntryName(header.linkname);
    if (target === null) throw this.refuse(`the hard link's target ${JSON.stringify(header.linkname)} is outside the layer`, header);
    if (target === name) throw this.refuse('a hard link to itself', header);
    const notExtracted = (): ContentError => this.refuse(`the hard link's target ${JSON.stringify(header.linkname)} is not an earlier entry of this layer`, header);
    if (!this.isCheckedDir(parentOf(target), header)) throw notExtracted();
    const targetPath = this.pathOf(target);
    const stat = fs.lstatSync(targetPath, { throwIfNoEntry: false });
    if (stat === undefined) throw notExtracted();
    if (stat.isDirectory()) throw this.refuse(`the hard link's target ${JSON.stringify(header.linkname)} is a directory`, header);
    const full = this.prepare(name, header);
    // link(2) does not follow a symlink as its target: the link is to the symlink itself.
    this.create(name, header, () => fs.linkSync(targetPath, full));
  }

  /** Character and block devices, fifos. */
  private node(name: string, header: TarHeader): void {
    const full = this.prepare(name, header);
    const kind = header.type === 'char' ? fs.constants.S_IFCHR : header.type === 'block' ? fs.constants.S_IFBLK : fs.constants.S_IFIFO;
    this.create(name, header, () => this.nativeBinding().mknod(full, kind | (header.mode & 0o777), header.devmajor, header.devminor));
    fs.lchownSync(full, header.uid, header.gid);
    // Just made by mknod, so not a symlink. After chown, which may clear setuid and setgid.
    fs.chmodSync(full, header.mode);
    this.setXattrs(full, header);
    fs.lutimesSync(full, header.mtime, header.mtime);
  }

  private whiteout(name: string, base: string, header: TarHeader): void {
    const dir = parentOf(name);
    if (base === OPAQUE_MARKER) {
      this.ensureDir(dir, header);
      this.nativeBinding().lsetxattr(this.pathOf(dir), OVERLAY_OPAQUE, Buffer.from('y'), 0);
      return;
    }
    if (base.startsWith(WHITEOUT_META_PREFIX)) return this.skipAufsMeta(header);
    const hidden = base.slice(WHITEOUT_PREFIX.length);
    if (hidden === '' || hidden === '.' || hidden === '..') throw this.refuse('a whiteout without a name to hide', header);
    const target = dir === '' ? hidden : `${dir}/${hidden}`;
    const full = this.prepare(target, header);
    // overlayfs's whiteout: a character device 0/0 where the hidden name was.
    this.create(target, header, () => this.nativeBinding().mknod(full, fs.constants.S_IFCHR, 0, 0));
    // Owner and time from the entry, so that diffLayer gives the same layer back.
    fs.lchownSync(full, header.uid, header.gid);
    fs.lutimesSync(full, header.mtime, header.mtime);
  }

  private skipAufsMeta(header: TarHeader): void {
    this.logger.debug({ layer: this.subject, entry: header.name }, 'skipped an AUFS metadata entry');
  }

  /** Checks (or makes) the parents of `name`; its absolute path. */
  private prepare(name: string, header: TarHeader): string {
    this.ensureDir(parentOf(name), header);
    return this.pathOf(name);
  }

  /**
   * Makes `name` a checked directory: an existing real directory, or a new
   * one (0755 root, for parents the archive does not list). A symlink or
   * another file on the way is refused, never followed or replaced.
   */
  private ensureDir(name: string, header: TarHeader): void {
    if (this.dirs.has(name)) return;
    this.ensureDir(parentOf(name), header);
    const full = this.pathOf(name);
    const stat = fs.lstatSync(full, { throwIfNoEntry: false });
    if (stat === undefined) {
      fs.mkdirSync(full, 0o755);
      fs.lchownSync(full, 0, 0);
      // Independent of the umask.
      fs.chmodSync(full, 0o755);
    } else if (stat.isSymbolicLink()) {
      throw this.refuse(`its parent ${name} is a symlink: writing through it is refused`, header);
    } else if (!stat.isDirectory()) {
      throw this.refuse(`its parent ${name} is not a directory`, header);
    }
    this.dirs.add(name);
  }

  /** Whether `name` is a real directory of the layer, checked without creating anything. */
  private isCheckedDir(name: string, header: TarHeader): boolean {
    if (this.dirs.has(name)) return true;
    if (!this.isCheckedDir(parentOf(name), header)) return false;
    const stat = fs.lstatSync(this.pathOf(name), { throwIfNoEntry: false });
    if (stat?.isSymbolicLink()) throw this.refuse(`the hard link's target goes through the symlink ${name}`, header);
    if (!stat?.isDirectory()) return false;
    this.dirs.add(name);
    return true;
  }

  /** Runs `make`; when the name exists (an earlier entry), replaces it as tar does: remove, then create. */
  private create<T>(name: string, header: TarHeader, make: () => T): T {
    try {
      return make();
    } catch (err) {
      if (!isErrno(err, 'EEXIST')) throw err;
    }
    if (name === '') throw this.refuse("the layer's root cannot be replaced", header);
    this.remove(name, this.pathOf(name));
    return make();
  }

  /** Removes an earlier entry and forgets what was known under it. */
  private remove(name: string, full: string): void {
    const stat = fs.lstatSync(full);
    if (!stat.isDirectory()) {
      fs.unlinkSync(full);
      return;
    }
    // rm does not follow symlinks inside the tree it removes.
    fs.rmSync(full, { recursive: true, force: true });
    const below = `${name}/`;
    for (const dir of this.dirs) if (dir === name || dir.startsWith(below)) this.dirs.delete(dir);
    for (const dir of this.dirHeaders.keys()) if (dir === name || dir.startsWith(below)) this.dirHeaders.delete(dir);
  }

  private setXattrs(full: string, header: TarHeader): void {
    if (header.xattrs.size === 0) return;
    for (const [key, value] of header.xattrs) {
      if (key.startsWith(OVERLAY_XATTRS) || !XATTR_NAMESPACES.some((prefix) => key.startsWith(prefix))) {
        this.logger.debug({ layer: this.subject, entry: header.name, xattr: key }, 'skipped an xattr outside the namespaces a layer may set');
        continue;
      }
      try {
        this.nativeBinding().lsetxattr(full, key, value, 0);
      } catch (err) {
        // The filesystem stores no such xattrs, or the kernel refuses user.* on a symlink or device.
        if (!isErrno(err, 'ENOTSUP', 'EOPNOTSUPP') && !(key.startsWith('user.') && isErrno(err, 'EPERM'))) throw err;
        this.logger.debug({ layer: this.subject, entry: header.name, xattr: key, code: (err as NodeJS.ErrnoException).code }, 'skipped an xattr the filesystem does not take');
      }
    }
  }

  private pathOf(name: string): string {
    return name === '' ? this.root : `${this.root}/${name}`;
  }

  private nativeBinding(): NativeBinding {
    this.native ??= loadNative();
    return this.native;
  }

  private refuse(reason: string, header: TarHeader): ContentError {
    return new ContentError(this.subject, reason, header.name);
  }

  private wrap(err: unknown): unknown {
    return err instanceof TsrunError ? err : syscallErrorFrom(this.subject, err);
  }
}

function writeAll(fd: number, data: Buffer): void {
  let written = 0;
  while (written < data.length) written += fs.writeSync(fd, data, written, data.length - written);
}
