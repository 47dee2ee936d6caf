import fs = require('node:fs');
import path = require('node:path');
import { BuildError } from '../errors';
import { resolveInRoot } from '../linux/path-in-root';
import { IgnoreRules, globRegExp } from './dockerignore';
import type { LayeredTree } from './layered-tree';

/** A file that COPY or ADD reads: where it is on the host, and its metadata (symlinks not followed). */
export interface SourceEntry {
  host: string;
  stat: fs.Stats;
}

/**
 * Where COPY reads from: the build context (less what .dockerignore
 * excludes) or, with --from, another stage's or image's root filesystem.
 * Paths are `/`-separated and relative to that root.
 */
export interface SourceFs {
  /** `build context` or `stage builder`, for messages. */
  readonly label: string;
  lstat(relative: string): SourceEntry | null;
  readdir(relative: string): string[];
  /** `relative` with its symlinks followed inside the root (the last one too). */
  resolve(relative: string): string;
}

export function contextSource(dir: string, ignore: IgnoreRules): SourceFs {
  const root = path.resolve(dir);
  const lstat = (relative: string): SourceEntry | null => {
    let entry: SourceEntry;
    try {
      const host = path.join(root, relative);
      entry = { host, stat: fs.lstatSync(host) };
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') return null;
      throw err;
    }
    // An excluded directory is still read when an exception may bring back something in it.
    if (relative !== '' && ignore.ignores(relative) && !(entry.stat.isDirectory() && ignore.mayReinclude(relative))) return null;
    return entry;
  };
  return {
    label: 'build context',
    lstat,
    readdir(relative) {
      return fs
        .readdirSync(path.join(root, relative))
        .filter((name) => lstat(relative === '' ? name : `${relative}/${name}`) !== null)
        .sort();
    },
    resolve(relative) {
      return path.relative(root, resolveInRoot(root, relative));
    },
  };
}

export function treeSource(tree: LayeredTree, label: string): SourceFs {
  return {
    label,
    lstat: (relative) => tree.lstat(`/${relative}`),
    readdir: (relative) => tree.readdir(`/${relative}`),
    resolve: (relative) => tree.resolve(`/${relative}`, true).slice(1),
  };
}

/** One source of a COPY: the path it names and every entry under it, its own path relative to it being ''. */
export interface MatchedSource {
  relative: string;
  entries: { name: string; entry: SourceEntry }[];
}

/** A path inside the source root: `..` may not climb out of it, a leading `/` means its top. */
function cleanSource(source: string, fsLabel: string): string {
  const normalized = path.posix.normalize(`/${source}`);
  if (source.split('/').includes('..') && path.posix.normalize(source).startsWith('..')) {
    throw new BuildError(`${source}: forbidden path outside the ${fsLabel}`);
  }
  return normalized.replace(/^\/+/, '').replace(/\/+$/, '');
}

/** The paths a source (maybe a wildcard: `*.sh`, `src/*`) names, sorted. */
function expand(source: string, from: SourceFs): string[] {
  const clean = cleanSource(source, from.label);
  if (!/[*?[]/.test(clean)) return from.lstat(clean) ? [clean] : [];
  let candidates = [''];
  for (const part of clean.split('/')) {
    if (!/[*?[]/.test(part)) {
      candidates = candidates.map((c) => (c === '' ? part : `${c}/${part}`)).filter((c) => from.lstat(c) !== null);
      continue;
    }
    const regexp = globRegExp(part);
    candidates = candidates.flatMap((c) => {
      const dir = from.lstat(c);
      if (dir === null || !dir.stat.isDirectory()) return [];
      return from.readdir(c).filter((name) => regexp.test(name)).map((name) => (c === '' ? name : `${c}/${name}`));
    });
  }
  return candidates.sort();
}

/**
 * Every entry each source names, recursively for directories. A source
 * that is a symlink is followed (inside its root); symlinks below it are
 * copied as links. Throws BuildError for a source that matches nothing.
 */
export function matchSources(sources: string[], from: SourceFs): MatchedSource[] {
  const matched: MatchedSource[] = [];
  for (const source of sources) {
    const paths = expand(source, from);
    if (paths.length === 0) {
      throw new BuildError(`${source}: not found in the ${from.label}${from.label === 'build context' ? ' (or excluded by .dockerignore)' : ''}`);
    }
    for (const relative of paths) {
      const resolved = from.resolve(relative);
      const top = from.lstat(resolved);
      if (top === null) throw new BuildError(`${source}: ${relative} is a symlink to ${resolved}, which is not in the ${from.label}`);
      const entries = [{ name: '', entry: top }];
      if (top.stat.isDirectory()) walk(from, resolved, '', entries);
      matched.push({ relative: resolved, entries });
    }
  }
  return matched;
}

function walk(from: SourceFs, base: string, prefix: string, out: { name: string; entry: SourceEntry }[]): void {
  const dir = prefix === '' ? base : `${base}/${prefix}`;
  for (const name of from.readdir(dir)) {
    const relative = prefix === '' ? name : `${prefix}/${name}`;
    const entry = from.lstat(base === '' ? relative : `${base}/${relative}`);
    if (entry === null) continue;
    out.push({ name: relative, entry });
    if (entry.stat.isDirectory()) walk(from, base, relative, out);
  }
}
