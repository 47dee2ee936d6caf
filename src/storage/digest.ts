import { createHash, Hash } from 'node:crypto';
import fs = require('node:fs');
import { Transform, TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ContentError, DigestMismatchError } from '../errors';
import type { Descriptor } from '../oci/image-spec';
import { withReadStream, writeClosed } from '../util/streams';

export function sha256Digest(data: Buffer | string): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

/** `sha256:ab12...` -> `ab12...`. */
export function digestHex(digest: string): string {
  return digest.slice(digest.indexOf(':') + 1);
}

/** A pass-through that hashes and counts what flows through it. */
export class DigestStream extends Transform {
  private readonly hash: Hash = createHash('sha256');
  size = 0;

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.hash.update(chunk);
    this.size += chunk.length;
    callback(null, chunk);
  }

  /** Valid once the stream has ended. */
  digest(): string {
    return `sha256:${this.hash.copy().digest('hex')}`;
  }
}

/** The digest and size of everything `input` yields. */
export async function digestOf(input: AsyncIterable<Buffer>): Promise<{ digest: string; size: number }> {
  const hash = createHash('sha256');
  let size = 0;
  for await (const chunk of input) {
    hash.update(chunk);
    size += chunk.length;
  }
  return { digest: `sha256:${hash.digest('hex')}`, size };
}

/**
 * Throws unless `actual` is what `expected` describes. The size is checked
 * first: a truncated blob says so rather than showing two unrelated hashes.
 */
export function checkContent(subject: string, expected: Pick<Descriptor, 'digest' | 'size'>, actual: { digest: string; size: number }): void {
  if (actual.size !== expected.size) {
    throw new ContentError(subject, `size mismatch: the descriptor says ${expected.size} bytes, the content has ${actual.size}${actual.size < expected.size ? ' (truncated?)' : ''}`);
  }
  if (actual.digest !== expected.digest) throw new DigestMismatchError(subject, expected.digest, actual.digest);
}

/** Reads `file` through, hashing it, and checks it against `expected`. */
export async function verifyFile(file: string, expected: Pick<Descriptor, 'digest' | 'size'>, subject: string): Promise<void> {
  checkContent(subject, expected, await withReadStream(file, digestOf));
}

/** Writes `input` to a new `file` (fsynced), returning its digest and size. */
export async function writeWithDigest(input: NodeJS.ReadableStream | AsyncIterable<Buffer>, file: string): Promise<{ digest: string; size: number }> {
  const digest = new DigestStream();
  const output = fs.createWriteStream(file, { flags: 'wx', mode: 0o644, flush: true });
  try {
    await pipeline(input, digest, output);
  } finally {
    await writeClosed(output);
  }
  return { digest: digest.digest(), size: digest.size };
}
