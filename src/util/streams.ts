import { once } from 'node:events';
import fs = require('node:fs');
import type { Readable, Writable } from 'node:stream';

/**
 * Destroys `stream` and waits for its 'close': a file stream closes its
 * descriptor only then, so a caller that gave up on a half-read file does
 * not return with the descriptor still open.
 */
export async function closeStream(stream: Readable): Promise<void> {
  if (stream.closed) return;
  await new Promise((resolve) => stream.once('close', resolve).destroy());
}

/**
 * Waits for a file write stream's 'close', which comes after 'finish'
 * (where pipeline resolves) or after an error: with `flush`, the fsync
 * happens there, and only then is the file complete and its descriptor
 * released.
 */
export async function writeClosed(stream: Writable): Promise<void> {
  if (!stream.closed) await once(stream, 'close');
}

/** Runs `body` on a read stream of `file`, closed (descriptor released) before this returns, however `body` ends. */
export async function withReadStream<T>(file: string, body: (stream: fs.ReadStream) => Promise<T>): Promise<T> {
  const stream = fs.createReadStream(file);
  try {
    return await body(stream);
  } finally {
    await closeStream(stream);
  }
}
