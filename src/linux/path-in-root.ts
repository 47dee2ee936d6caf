import * as fs from 'node:fs';
import * as path from 'node:path';
import { SyscallError } from '../errors';

const MAX_SYMLINKS = 40;

/**
 * Resolves `unsafePath` as the container would see it, with `root` as
 * "/": `..` stops at the root and symlinks (absolute or relative) are
 * followed inside the root, never out of it. Components that do not exist
 * yet are taken literally. Returns the host path.
 */
export function resolveInRoot(root: string, unsafePath: string): string {
  const pending = unsafePath.split('/').filter((p) => p !== '' && p !== '.');
  const resolved: string[] = [];
  let links = 0;
  while (pending.length > 0) {
    const part = pending.shift() as string;
    if (part === '..') {
      resolved.pop();
      continue;
    }
    const candidate = path.join(root, ...resolved, part);
    let stat: fs.Stats | undefined;
    try {
      stat = fs.lstatSync(candidate);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT' && code !== 'ENOTDIR') throw err;
    }
    if (stat?.isSymbolicLink()) {
      if (++links > MAX_SYMLINKS) throw new SyscallError('resolve', 'readlink', 40 /* ELOOP */, unsafePath);
      const target = fs.readlinkSync(candidate);
      if (target.startsWith('/')) resolved.length = 0;
      pending.unshift(...target.split('/').filter((p) => p !== '' && p !== '.'));
      continue;
    }
    resolved.push(part);
  }
  return path.join(root, ...resolved);
}

/** Reads a file of the container's filesystem, or returns null if it is absent. */
export function readFileInRoot(root: string, file: string): string | null {
  try {
    return fs.readFileSync(resolveInRoot(root, file), 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return null;
    throw err;
  }
}
