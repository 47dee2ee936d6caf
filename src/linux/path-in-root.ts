import fs = require('node:fs');
import path = require('node:path');
import { SyscallError } from '../errors';
import { loadNative } from '../native';

const MAX_SYMLINKS = 40;

/**
 * Resolves `unsafePath` as the container would see it, with `root` as
 * "/": `..` stops at the root and symlinks (absolute or relative) are
 * followed inside the root, never out of it. Components that do not exist
 * yet are taken literally. Returns the host path.
 */
export function resolveInRoot(root: string, unsafePath: string): string {
  const resolved = resolveLinks(unsafePath, true, (parts) => {
    const candidate = path.join(root, ...parts);
    try {
      return fs.lstatSync(candidate).isSymbolicLink() ? fs.readlinkSync(candidate) : null;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT' && code !== 'ENOTDIR') throw err;
      return null;
    }
  });
  return path.join(root, ...resolved);
}

/**
 * The walk behind resolveInRoot, over any tree: `readLink` gets a path's
 * components (from the root) and returns its target when it is a symlink,
 * null otherwise. `..` stops at the root; with `followLast` false the
 * last component is kept even when it is a link. Returns the components.
 */
export function resolveLinks(unsafePath: string, followLast: boolean, readLink: (parts: string[]) => string | null): string[] {
  const pending = unsafePath.split('/').filter((p) => p !== '' && p !== '.');
  const resolved: string[] = [];
  let links = 0;
  while (pending.length > 0) {
    const part = pending.shift() as string;
    if (part === '..') {
      resolved.pop();
      continue;
    }
    const target = pending.length > 0 || followLast ? readLink([...resolved, part]) : null;
    if (target !== null) {
      if (++links > MAX_SYMLINKS) throw new SyscallError('resolve', 'readlink', 40 /* ELOOP */, unsafePath);
      if (target.startsWith('/')) resolved.length = 0;
      pending.unshift(...target.split('/').filter((p) => p !== '' && p !== '.'));
      continue;
    }
    resolved.push(part);
  }
  return resolved;
}

/**
 * Reads a file of the container's filesystem, or returns null if it is
 * absent. The kernel resolves the path inside the root (openat2
 * RESOLVE_IN_ROOT) in the open itself, so no component can be swapped for a
 * symlink between resolving and reading; a kernel without openat2 gets the
 * walk of resolveInRoot.
 */
export function readFileInRoot(root: string, file: string): string | null {
  try {
    let fd: number;
    try {
      fd = loadNative().openInRoot(root, file, fs.constants.O_RDONLY);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOSYS') throw err;
      return fs.readFileSync(resolveInRoot(root, file), 'utf8');
    }
    try {
      return fs.readFileSync(fd, 'utf8');
    } finally {
      fs.closeSync(fd);
    }
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return null;
    throw err;
  }
}
