import fs = require('node:fs');
import path = require('node:path');
import { resolveLinks } from '../linux/path-in-root';
import { loadNative } from '../native/index';

const OVERLAY_OPAQUE = 'trusted.overlay.opaque';

/** A file of the merged view: where it is on the host, and its metadata. */
export interface TreeEntry {
  host: string;
  stat: fs.Stats;
}

/**
 * An image's root filesystem as overlayfs would show it, read straight
 * from its layers' `diff` directories without mounting anything: what
 * COPY needs to look at a destination (does it exist, is it a directory,
 * through which symlinks) and to read another stage's files. Upper layers
 * hide lower ones; a 0/0 character device is a deleted name, a directory
 * marked opaque hides what the layers below have there, and anything but
 * a directory hides the layers below entirely.
 */
export class LayeredTree {
  /** Top layer first. */
  private readonly layers: string[];

  /** `layerDirs`: the image's layer directories, lowest first (as `Image.layers`). */
  constructor(layerDirs: string[]) {
    this.layers = [...layerDirs].reverse();
  }

  /** The entry at `file` (absolute, already resolved: no symlink among its parents), or null. */
  lstat(file: string): TreeEntry | null {
    const parts = split(file);
    if (parts.length === 0) return this.layers.length === 0 ? null : { host: this.layers[0], stat: fs.lstatSync(this.layers[0]) };
    for (const layer of this.layers) {
      let hidden = false;
      let present = true;
      for (let k = 0; k < parts.length; k++) {
        const host = path.join(layer, ...parts.slice(0, k + 1));
        const stat = lstatOrNull(host);
        if (stat === null) {
          present = false;
          break;
        }
        if (isWhiteout(stat)) return null;
        if (k === parts.length - 1) return { host, stat };
        if (!stat.isDirectory()) return null;
        if (isOpaque(host)) hidden = true;
      }
      if (present) continue;
      if (hidden) return null;
    }
    return null;
  }

  /**
   * `file` with every symlink among its parents (and, with `followLast`,
   * the last component) resolved inside the tree, as the container would
   * see it. Components that do not exist are taken as they are.
   */
  resolve(file: string, followLast = false): string {
    const resolved = resolveLinks(file, followLast, (parts) => {
      const entry = this.lstat(`/${parts.join('/')}`);
      return entry?.stat.isSymbolicLink() ? fs.readlinkSync(entry.host) : null;
    });
    return `/${resolved.join('/')}`;
  }

  /** The entry `file` names, symlinks followed (the last one too); null when nothing is there. */
  stat(file: string): TreeEntry | null {
    return this.lstat(this.resolve(file, true));
  }

  /** The names in directory `dir` (resolved) across the layers, sorted. */
  readdir(dir: string): string[] {
    const parts = split(dir);
    const names = new Set<string>();
    const deleted = new Set<string>();
    for (const layer of this.layers) {
      const host = path.join(layer, ...parts);
      const stat = lstatOrNull(host);
      if (stat === null) {
        if (this.hiddenBelow(layer, parts)) break;
        continue;
      }
      if (isWhiteout(stat) || !stat.isDirectory()) break;
      for (const name of fs.readdirSync(host)) {
        if (names.has(name) || deleted.has(name)) continue;
        if (isWhiteout(fs.lstatSync(path.join(host, name)))) deleted.add(name);
        else names.add(name);
      }
      if (isOpaque(host)) break;
    }
    return [...names].sort();
  }

  /** The content of `file`, symlinks followed; null when it is absent or not a regular file. */
  readFile(file: string): Buffer | null {
    const entry = this.stat(file);
    return entry?.stat.isFile() ? fs.readFileSync(entry.host) : null;
  }

  /** Whether a parent of `parts` in `layer` hides the layers below (whiteout, not a directory, opaque). */
  private hiddenBelow(layer: string, parts: string[]): boolean {
    for (let k = 0; k < parts.length - 1; k++) {
      const host = path.join(layer, ...parts.slice(0, k + 1));
      const stat = lstatOrNull(host);
      if (stat === null) return false;
      if (isWhiteout(stat) || !stat.isDirectory() || isOpaque(host)) return true;
    }
    return false;
  }
}

function split(file: string): string[] {
  return file.split('/').filter((p) => p !== '' && p !== '.');
}

function lstatOrNull(file: string): fs.Stats | null {
  try {
    return fs.lstatSync(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return null;
    throw err;
  }
}

function isWhiteout(stat: fs.Stats): boolean {
  return stat.isCharacterDevice() && stat.rdev === 0;
}

function isOpaque(dir: string): boolean {
  return loadNative().lgetxattr(dir, OVERLAY_OPAQUE)?.toString() === 'y';
}
