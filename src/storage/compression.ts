import { ChildProcess, spawn } from 'node:child_process';
import os = require('node:os');
import { Duplex, Readable, Transform, TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import zlib = require('node:zlib');
import { ContentError, TsrunError, syscallErrorFrom } from '../errors';

/**
 * Layer compression. gzip runs in Node's zlib (on the libuv thread pool,
 * so it overlaps with the JavaScript that consumes it); zstd runs as the
 * `zstd` binary from Debian's zstd package, in its own process.
 */
export type Compression = 'gzip' | 'zstd' | 'none';

const GZIP_MAGIC = Buffer.from([0x1f, 0x8b]);
const ZSTD_MAGIC = Buffer.from([0x28, 0xb5, 0x2f, 0xfd]);

/** Formats seen in old images that tsrun does not decompress, named in the error rather than failing as "not a tar". */
const UNSUPPORTED_MAGIC: [Buffer, string][] = [
  [Buffer.from('BZh'), 'bzip2'],
  [Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]), 'xz'],
];

/** The longest magic number looked at. */
const HEAD_SIZE = 6;

/**
 * zlib works in one thread-pool task per input chunk and hands back at
 * most CHUNK_SIZE per task; each task costs the main thread a round trip.
 * With 64 KiB file reads that overhead was a third of a layer's apply
 * time: input is gathered into INPUT_BATCH pieces and output comes in
 * 1 MiB chunks. READ_AHEAD keeps the decompressor busy while the consumer
 * writes files.
 */
const CHUNK_SIZE = 1024 * 1024;
const INPUT_BATCH = 1024 * 1024;
const READ_AHEAD = 4 * 1024 * 1024;

/** The stderr kept from a zstd process for its error message. */
const STDERR_LIMIT = 4096;

/** The compression of a stream, from its first bytes (6 are enough). */
export function detectCompression(head: Buffer): Compression {
  if (head.subarray(0, GZIP_MAGIC.length).equals(GZIP_MAGIC)) return 'gzip';
  if (head.subarray(0, ZSTD_MAGIC.length).equals(ZSTD_MAGIC)) return 'zstd';
  return 'none';
}

/**
 * The uncompressed content of `input`, whose compression is sniffed from
 * its first bytes. A corrupt or truncated stream fails with a ContentError
 * naming `subject`; so does bzip2 or xz. Destroying the result (or ending
 * an iteration early) closes `input` and kills a zstd process; the result
 * emits 'close' once that process has been reaped.
 */
export function decompress(input: Readable, subject: string): Readable {
  return Readable.from(decompressed(input, subject), { objectMode: false, highWaterMark: READ_AHEAD });
}

async function* decompressed(input: Readable, subject: string): AsyncGenerator<Buffer> {
  const chunks = input[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  let head: Buffer = Buffer.alloc(0);
  let ended = false;
  try {
    while (head.length < HEAD_SIZE) {
      const next = await chunks.next();
      if (next.done) {
        ended = true;
        break;
      }
      head = head.length === 0 ? next.value : Buffer.concat([head, next.value]);
    }
  } catch (err) {
    await chunks.return?.();
    throw err;
  }
  const kind = detectCompression(head);
  const rest = async function* (): AsyncGenerator<Buffer> {
    if (head.length > 0) yield head;
    if (ended) return;
    for (let next = await chunks.next(); !next.done; next = await chunks.next()) yield next.value;
  };

  if (kind === 'none') {
    const unsupported = UNSUPPORTED_MAGIC.find(([magic]) => head.subarray(0, magic.length).equals(magic));
    if (unsupported) {
      await chunks.return?.();
      throw new ContentError(subject, `${unsupported[1]}-compressed content is not supported (only gzip, zstd or none)`);
    }
    try {
      yield* rest();
    } finally {
      await chunks.return?.();
    }
    return;
  }

  const source = Readable.from(batched(rest()), { objectMode: false });
  const filter = kind === 'gzip' ? zlib.createGunzip({ chunkSize: CHUNK_SIZE }) : new ZstdProcess(['-d', '-c', '-q'], subject);
  // The feeding side's errors also reach `filter` (pipeline destroys it with them).
  const feeding = pipeline(source, filter);
  feeding.catch(() => undefined);
  try {
    for await (const chunk of filter) yield chunk as Buffer;
    await feeding;
  } catch (err) {
    throw kind === 'gzip' && isZlibError(err) ? new ContentError(subject, `corrupt gzip stream: ${(err as Error).message}`, undefined, { cause: err }) : err;
  } finally {
    filter.destroy();
    source.destroy();
    await chunks.return?.();
    if (filter instanceof ZstdProcess) await filter.exited;
  }
}

/** `chunks` joined into pieces of at least INPUT_BATCH bytes (but the last). */
async function* batched(chunks: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
  let parts: Buffer[] = [];
  let size = 0;
  for await (const chunk of chunks) {
    parts.push(chunk);
    size += chunk.length;
    if (size >= INPUT_BATCH) {
      yield parts.length === 1 ? parts[0] : Buffer.concat(parts, size);
      parts = [];
      size = 0;
    }
  }
  if (size > 0) yield Buffer.concat(parts, size);
}

function isZlibError(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException)?.code;
  return typeof code === 'string' && code.startsWith('Z_');
}

/**
 * A compressor: gzip (level 6, as `gzip` does) in zlib, on several cores;
 * zstd (level 3, the zstd default) in a `zstd` process. Output is the
 * same for the same input and zlib or zstd version.
 */
export function compress(kind: 'gzip' | 'zstd'): Duplex {
  return kind === 'gzip' ? new ParallelGzip() : new ZstdProcess(['-c', '-q'], undefined);
}

/** Input per deflate job. Each job's output ends with a 5-byte sync marker: 1 MiB makes that nothing. */
const GZIP_BLOCK = 1024 * 1024;
/** deflate looks back this far: each block starts primed with the end of the one before. */
const DEFLATE_WINDOW = 32 * 1024;
const GZIP_LEVEL = 6;
/** ID1 ID2 CM=deflate FLG=0 MTIME=0 XFL=0 OS=3 (Unix), as zlib writes it. */
const GZIP_HEADER = Buffer.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3]);

/**
 * gzip by blocks compressed at once on the thread pool, the way pigz does
 * it: each block is raw deflate primed with the previous 32 KiB of input
 * (so matches reach back across blocks) and ends with a sync flush, the
 * last one with the final block; the pieces joined are one deflate stream.
 * deflate at level 6 runs at ~20 MB/s, so a commit was all compression on
 * one core. The output depends only on the input, not on timing.
 * Some threads of the pool are left for the file I/O around it.
 */
class ParallelGzip extends Transform {
  private readonly maxJobs = Math.max(1, Math.min(os.availableParallelism(), 3));
  private block = Buffer.allocUnsafe(GZIP_BLOCK);
  private filled = 0;
  private previous: Buffer | undefined;
  private crc = 0;
  private size = 0;
  /** Compressed blocks in input order; the head is pushed as soon as it is done. */
  private readonly jobs: { output?: Buffer; done: Promise<void> }[] = [];
  private failure: Error | undefined;

  constructor() {
    super({ readableHighWaterMark: READ_AHEAD });
    this.push(GZIP_HEADER);
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.crc = zlib.crc32(chunk, this.crc);
    this.size += chunk.length;
    for (let offset = 0; offset < chunk.length; ) {
      const taken = chunk.copy(this.block, this.filled, offset);
      this.filled += taken;
      offset += taken;
      if (this.filled === GZIP_BLOCK) this.submit(false);
    }
    this.whenBelow(this.maxJobs, callback);
  }

  override _flush(callback: TransformCallback): void {
    this.submit(true);
    this.whenBelow(1, (err) => {
      if (err) return callback(err);
      const trailer = Buffer.alloc(8);
      trailer.writeUInt32LE(this.crc >>> 0, 0);
      // ISIZE: the input size modulo 2^32.
      trailer.writeUInt32LE(this.size % 2 ** 32, 4);
      callback(null, trailer);
    });
  }

  private submit(last: boolean): void {
    const input = this.block.subarray(0, this.filled);
    const options: zlib.ZlibOptions = { level: GZIP_LEVEL, finishFlush: last ? zlib.constants.Z_FINISH : zlib.constants.Z_SYNC_FLUSH };
    if (this.previous) options.dictionary = this.previous;
    const job: { output?: Buffer; done: Promise<void> } = {
      done: new Promise((resolve) => {
        zlib.deflateRaw(input, options, (err, output) => {
          if (err) this.failure ??= err;
          else job.output = output;
          resolve();
        });
      }),
    };
    this.jobs.push(job);
    job.done.then(() => this.pushDone());
    this.previous = input.subarray(Math.max(0, input.length - DEFLATE_WINDOW));
    // The jobs still read the old block: the next one gets its own memory.
    this.block = Buffer.allocUnsafe(GZIP_BLOCK);
    this.filled = 0;
  }

  private pushDone(): void {
    if (this.destroyed) return;
    while (this.jobs.length > 0 && this.jobs[0].output !== undefined) this.push(this.jobs.shift()!.output);
  }

  /** Calls `callback` once fewer than `limit` jobs are pending (or one failed). */
  private whenBelow(limit: number, callback: TransformCallback): void {
    if (this.failure) return callback(this.failure);
    if (this.jobs.length < limit) return callback();
    this.jobs[0].done.then(() => setImmediate(() => this.whenBelow(limit, callback)));
  }
}

/**
 * `zstd` as a Duplex: writes go to its stdin, its stdout is readable. A
 * non-zero exit is an error (a ContentError when decompressing `subject`),
 * with what zstd printed on stderr. Destroying the stream kills the
 * process; `exited` settles once it has been reaped.
 */
class ZstdProcess extends Duplex {
  private readonly child: ChildProcess;
  private stderr = '';
  private exitStatus: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  /** Resolves once the process has exited and its pipes have closed. */
  readonly exited: Promise<void>;

  constructor(
    private readonly args: string[],
    private readonly subject: string | undefined,
  ) {
    super({ readableHighWaterMark: READ_AHEAD });
    const child = spawn('zstd', args, { stdio: ['pipe', 'pipe', 'pipe'] });
    this.child = child;
    this.exited = new Promise((resolve) => child.once('close', () => resolve()));
    child.once('error', (err) => this.destroy(syscallErrorFrom('zstd', err, "install Debian's zstd package (scripts/setup.sh does)") as Error));
    // zstd that stops reading (corrupt input) makes stdin fail with EPIPE; its exit status tells why.
    child.stdin!.on('error', () => undefined);
    child.stderr!.on('data', (data: Buffer) => {
      if (this.stderr.length < STDERR_LIMIT) this.stderr += data.toString('utf8').slice(0, STDERR_LIMIT - this.stderr.length);
    });
    child.stdout!.on('data', (chunk: Buffer) => {
      if (!this.push(chunk)) child.stdout!.pause();
    });
    child.once('close', (code, signal) => {
      this.exitStatus = { code, signal };
      if (this.destroyed) return;
      if (code === 0) this.push(null);
      else this.destroy(this.failure(code, signal));
    });
  }

  private failure(code: number | null, signal: NodeJS.Signals | null): Error {
    const detail = this.stderr.trim().replace(/\s+/g, ' ');
    const how = signal ? `was killed by ${signal}` : `exited with status ${code}`;
    if (this.subject !== undefined && !signal) return new ContentError(this.subject, `corrupt zstd stream: zstd ${how}${detail ? `: ${detail}` : ''}`);
    return new TsrunError(`zstd ${this.args.join(' ')} ${how}${detail ? `: ${detail}` : ''}`, 'EZSTD');
  }

  override _read(): void {
    this.child.stdout!.resume();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    const stdin = this.child.stdin!;
    if (stdin.destroyed) {
      // zstd is gone: the exit status reports the failure.
      callback();
      return;
    }
    stdin.write(chunk, () => callback());
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.child.stdin!.end(() => callback());
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    if (this.exitStatus === undefined) {
      this.child.kill('SIGKILL');
      this.child.stdin!.destroy();
      this.child.stdout!.destroy();
    }
    this.exited.then(() => callback(error));
  }
}

