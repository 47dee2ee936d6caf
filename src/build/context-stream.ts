import fs = require('node:fs');
import os = require('node:os');
import path = require('node:path');
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { syscallErrorFrom } from '../errors';
import type { Logger } from '../logger';
import { applyLayer } from '../storage/apply';
import { archiveKind, withArchive } from './copy';

export interface StreamedContext {
  /** The directory the context was unpacked in (empty when the stream was a Dockerfile). */
  dir: string;
  /** The Dockerfile, when the stream was one rather than a context archive. */
  dockerfileText?: string;
  /** Removes the directory. */
  remove(): void;
}

/**
 * `docker build -`: the stream is either a context archive (a tar, plain
 * or gzip, zstd, xz or bzip2 compressed), unpacked into a temporary
 * directory with the same checks as a layer (nothing can land outside
 * it), or a Dockerfile with an empty context.
 */
export async function streamedContext(input: Readable, logger?: Logger): Promise<StreamedContext> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsrun-context-'));
  const remove = (): void => fs.rmSync(dir, { recursive: true, force: true });
  try {
    const received = path.join(dir, 'received');
    const context = path.join(dir, 'context');
    fs.mkdirSync(context);
    try {
      await pipeline(input, fs.createWriteStream(received, { mode: 0o600 }));
    } catch (err) {
      throw syscallErrorFrom('build context', err);
    }
    const kind = archiveKind(received);
    if (kind === null) return { dir: context, dockerfileText: fs.readFileSync(received, 'utf8'), remove };
    await withArchive(received, kind, 'build context', async (tar) => {
      await applyLayer(Readable.from(tar), context, { subject: 'build context', logger });
    });
    return { dir: context, remove };
  } catch (err) {
    remove();
    throw err;
  }
}
