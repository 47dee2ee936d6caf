import fs = require('node:fs');
import path = require('node:path');
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ContentError } from '../../errors';
import { writeClosed } from '../../util/streams';
import { decompress } from '../compression';
import { readTar } from '../tar/reader';

/**
 * The files of an image archive or layout directory, by their path in it
 * (`index.json`, `blobs/sha256/ab12...`, `<id>/layer.tar`).
 */
export interface SourceFiles {
  /** The regular file at `name`, after symlinks and hard links in the archive; undefined when there is none. */
  find(name: string): string | undefined;
  /** True when the files are tsrun's own copies in `<root>/tmp`, which may be renamed into the store. */
  readonly staged: boolean;
}

/** Links inside an archive are followed this many times at most (a loop ends there). */
const MAX_LINK_DEPTH = 16;

/** `./a//b/` -> `a/b`; null when the path leaves the archive (`../x`). Absolute paths are taken from the archive's root. */
function normalize(name: string): string | null {
  const normal = path.posix.normalize(`/${name}`).slice(1).replace(/\/$/, '');
  return normal.startsWith('..') ? null : normal;
}

/**
 * Extracts the regular files of an image archive (a tar, compressed or
 * not) into `dir`, under numbered names so no entry name can reach outside
 * it, and records symlinks and hard links to be followed by name. Docker
 * and containers/image both link repeated layers to one copy.
 */
export async function extractArchive(input: Readable, dir: string, subject: string): Promise<SourceFiles> {
  const files = new Map<string, string>();
  const links = new Map<string, string>();
  let count = 0;
  await readTar(
    decompress(input, subject),
    async (header, body) => {
      const name = normalize(header.name);
      if (name === null) throw new ContentError(subject, 'path leaves the archive', header.name);
      if (header.type === 'file') {
        const file = path.join(dir, String(count++));
        const output = fs.createWriteStream(file, { flags: 'wx', mode: 0o600, flush: true });
        try {
          await pipeline(body, output);
        } finally {
          await writeClosed(output);
        }
        files.set(name, file);
        links.delete(name);
      } else if (header.type === 'symlink' || header.type === 'hardlink') {
        // A symlink is relative to its directory, a hard link to the archive's root.
        const target = normalize(header.type === 'symlink' && !header.linkname.startsWith('/') ? path.posix.join(path.posix.dirname(name), header.linkname) : header.linkname);
        if (target !== null) links.set(name, target);
        files.delete(name);
      }
    },
    { subject },
  );
  return {
    staged: true,
    find(name) {
      let current = normalize(name);
      for (let depth = 0; current !== null && depth <= MAX_LINK_DEPTH; depth++) {
        const file = files.get(current);
        if (file !== undefined) return file;
        current = links.get(current) ?? null;
      }
      return undefined;
    },
  };
}

/** An OCI image layout directory, read in place. */
export function directoryFiles(dir: string): SourceFiles {
  return {
    staged: false,
    find(name) {
      const normal = normalize(name);
      if (normal === null) return undefined;
      const file = path.join(dir, normal);
      try {
        return fs.statSync(file).isFile() ? file : undefined;
      } catch {
        return undefined;
      }
    },
  };
}
