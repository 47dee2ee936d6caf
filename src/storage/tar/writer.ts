import { finished } from 'node:stream/promises';
import { ContentError, ValidationError } from '../../errors';
import { BLOCK_SIZE, FIELD_LIMITS, PaxRecord, TarEntryType, TarHeader, TypeFlag, encodeHeaderBlock, encodePaxRecords, paddingOf, typeFlagOf } from './header';

/** What `add` takes: the name and type, and any header fields that differ from the defaults. */
export type TarWriterEntry = Partial<TarHeader> & { name: string; type: TarEntryType };

/**
 * Small pieces are gathered up to this size before they are written: a
 * gzip stream downstream costs one thread-pool round trip per write.
 */
const BATCH_SIZE = 1024 * 1024;

const END_OF_ARCHIVE = Buffer.alloc(2 * BLOCK_SIZE);
/** Padding is cut from this; nothing writes to it. */
const ZEROS = Buffer.alloc(BLOCK_SIZE);

/**
 * Writes a reproducible tar: the same entries give the same bytes. Headers
 * are POSIX ustar; a pax header is added only for what ustar cannot hold
 * (long names and links, out-of-range ids, sizes or times, xattrs as
 * SCHILY.xattr.*). Times are whole seconds, there is no atime or ctime,
 * uname and gname are written only when given, and directory names end
 * with `/`.
 *
 * The writer writes to `output` respecting its backpressure, and `finish`
 * ends it. Calls must not overlap: await each `add` before the next. After
 * an error (from `output`, or a body that is not `size` bytes long) the
 * archive is unusable and every later call rejects with that error.
 *
 * @example
 *   const tar = new TarWriter(fs.createWriteStream('out.tar'));
 *   await tar.add({ name: 'etc', type: 'directory', mode: 0o755 });
 *   await tar.add({ name: 'etc/hostname', type: 'file' }, Buffer.from('box\n'));
 *   await tar.finish();
 */
export class TarWriter {
  private batch: Buffer[] = [];
  private batchSize = 0;
  private failure: unknown;
  private busy = false;
  private ended = false;

  constructor(private readonly output: NodeJS.WritableStream) {
    // Kept for the next call to report; without a listener an error would crash the process.
    output.on('error', (err) => {
      this.failure ??= err;
    });
  }

  /**
   * Adds one entry. `body` is the content of a regular file: a Buffer, or
   * chunks that add up to `entry.size` (required then). Other types have
   * no body. Defaults: mode 0644 (0755 for directories), owner 0:0,
   * mtime 0, no xattrs.
   */
  async add(entry: TarWriterEntry, body?: Buffer | AsyncIterable<Buffer>): Promise<void> {
    this.enter();
    try {
      const size = bodySize(entry, body);
      this.queue(headerBlocks(entry, size));
      if (Buffer.isBuffer(body)) {
        this.queue(body);
      } else if (body !== undefined) {
        let written = 0;
        for await (const chunk of body) {
          written += chunk.length;
          if (written > size) break;
          await this.write(chunk);
        }
        if (written !== size) throw new ContentError('tar writer', `the content is ${written > size ? 'longer' : 'shorter'} than the ${size} bytes of its header (did the file change while it was read?)`, entry.name);
      }
      this.queue(ZEROS.subarray(0, paddingOf(size)));
      if (this.batchSize >= BATCH_SIZE) await this.flush();
    } catch (err) {
      this.failure ??= err;
      throw err;
    } finally {
      this.busy = false;
    }
  }

  /** Writes the end-of-archive marker, ends `output` and resolves once it has flushed everything. */
  async finish(): Promise<void> {
    this.enter();
    try {
      this.queue(END_OF_ARCHIVE);
      await this.flush();
      this.ended = true;
      this.output.end();
      await finished(this.output);
    } catch (err) {
      this.failure ??= err;
      throw err;
    } finally {
      this.busy = false;
    }
  }

  private enter(): void {
    if (this.failure !== undefined) throw this.failure;
    if (this.ended) throw new Error('TarWriter: the archive is already finished');
    if (this.busy) throw new Error('TarWriter: a call started before the previous one settled');
    this.busy = true;
  }

  private queue(bytes: Buffer): void {
    if (bytes.length === 0) return;
    this.batch.push(bytes);
    this.batchSize += bytes.length;
  }

  /** Writes `bytes` after what is queued; small chunks join the batch. */
  private async write(bytes: Buffer): Promise<void> {
    this.queue(bytes);
    if (this.batchSize >= BATCH_SIZE) await this.flush();
  }

  private async flush(): Promise<void> {
    if (this.batchSize === 0) return;
    const data = this.batch.length === 1 ? this.batch[0] : Buffer.concat(this.batch, this.batchSize);
    this.batch = [];
    this.batchSize = 0;
    if (this.failure !== undefined) throw this.failure;
    if (!this.output.write(data)) await drained(this.output);
  }
}

/** Resolves on 'drain'; rejects if the stream fails or closes first. */
function drained(output: NodeJS.WritableStream): Promise<void> {
  return new Promise((resolve, reject) => {
    const settle = (err?: unknown): void => {
      output.removeListener('drain', onDrain);
      output.removeListener('error', onError);
      output.removeListener('close', onClose);
      if (err === undefined) resolve();
      else reject(err);
    };
    const onDrain = (): void => settle();
    const onError = (err: unknown): void => settle(err);
    const onClose = (): void => settle(new Error('TarWriter: the output closed before the archive was finished'));
    output.on('drain', onDrain);
    output.on('error', onError);
    output.on('close', onClose);
  });
}

function bodySize(entry: TarWriterEntry, body: Buffer | AsyncIterable<Buffer> | undefined): number {
  const invalid = (message: string): ValidationError => new ValidationError(`tar entry ${JSON.stringify(entry.name)}`, message);
  if (entry.type !== 'file') {
    if (body !== undefined && !(Buffer.isBuffer(body) && body.length === 0)) throw invalid(`a ${entry.type} has no content`);
    if (entry.size !== undefined && entry.size !== 0) throw invalid(`a ${entry.type} has size 0`);
    return 0;
  }
  if (Buffer.isBuffer(body)) {
    if (entry.size !== undefined && entry.size !== body.length) throw invalid(`size ${entry.size} but a ${body.length}-byte body`);
    return body.length;
  }
  if (body === undefined) {
    if (entry.size !== undefined && entry.size !== 0) throw invalid(`size ${entry.size} but no body`);
    return 0;
  }
  if (entry.size === undefined) throw invalid('a streamed body needs its size up front');
  if (!Number.isSafeInteger(entry.size) || entry.size < 0) throw invalid(`bad size ${entry.size}`);
  return entry.size;
}

function byteLength(text: string): number {
  return Buffer.byteLength(text, 'utf8');
}

/**
 * Splits a name that does not fit the 100-byte name field at a `/` into
 * the 155-byte prefix and the name, as ustar allows; null if no split fits.
 */
function splitName(name: string): { prefix: string; name: string } | null {
  if (byteLength(name) > FIELD_LIMITS.prefix + 1 + FIELD_LIMITS.name) return null;
  for (let slash = name.indexOf('/'); slash > 0; slash = name.indexOf('/', slash + 1)) {
    const prefix = name.slice(0, slash);
    const rest = name.slice(slash + 1);
    if (byteLength(prefix) > FIELD_LIMITS.prefix) return null;
    if (rest.length > 0 && byteLength(rest) <= FIELD_LIMITS.name) return { prefix, name: rest };
  }
  return null;
}

/** The header block of `entry`, after a pax header when ustar cannot hold it all. */
function headerBlocks(entry: TarWriterEntry, size: number): Buffer {
  const invalid = (message: string): ValidationError => new ValidationError(`tar entry ${JSON.stringify(entry.name)}`, message);
  if (entry.name === '' || entry.name.includes('\0')) throw invalid('a name must be non-empty, without NUL');
  const name = entry.type === 'directory' && !entry.name.endsWith('/') ? `${entry.name}/` : entry.name;
  const linkname = entry.linkname ?? '';
  if (linkname.includes('\0')) throw invalid('a link target must not hold NUL');
  const records: PaxRecord[] = [];
  const pax = (key: string, value: string | Buffer): void => {
    records.push({ key, value: Buffer.isBuffer(value) ? value : Buffer.from(value) });
  };

  let nameField = name;
  let prefixField = '';
  if (byteLength(name) > FIELD_LIMITS.name) {
    const split = splitName(name);
    if (split) {
      nameField = split.name;
      prefixField = split.prefix;
    } else {
      pax('path', name);
    }
  }
  if (byteLength(linkname) > FIELD_LIMITS.linkname) pax('linkpath', linkname);

  const numeric = (key: 'uid' | 'gid' | 'size', value: number, limit: number): number => {
    if (!Number.isSafeInteger(value) || value < 0) throw invalid(`bad ${key} ${value}`);
    if (value <= limit) return value;
    pax(key, String(value));
    return 0;
  };
  const sizeField = numeric('size', size, FIELD_LIMITS.size);
  const uid = numeric('uid', entry.uid ?? 0, FIELD_LIMITS.id);
  const gid = numeric('gid', entry.gid ?? 0, FIELD_LIMITS.id);

  const mtime = Math.floor(entry.mtime ?? 0);
  if (!Number.isSafeInteger(mtime)) throw invalid(`bad mtime ${entry.mtime}`);
  let mtimeField = mtime;
  if (mtime < 0 || mtime > FIELD_LIMITS.mtime) {
    pax('mtime', String(mtime));
    mtimeField = 0;
  }

  const uname = entry.uname ?? '';
  const gname = entry.gname ?? '';
  if (byteLength(uname) > FIELD_LIMITS.owner) pax('uname', uname);
  if (byteLength(gname) > FIELD_LIMITS.owner) pax('gname', gname);

  const devmajor = entry.devmajor ?? 0;
  const devminor = entry.devminor ?? 0;
  for (const [key, value] of [['devmajor', devmajor], ['devminor', devminor]] as const) {
    if (!Number.isSafeInteger(value) || value < 0 || value > FIELD_LIMITS.device) throw invalid(`bad ${key} ${value}`);
  }

  const xattrs = [...(entry.xattrs ?? [])].sort(([a], [b]) => compareBytes(a, b));
  for (const [xattr, value] of xattrs) {
    if (xattr === '' || xattr.includes('=') || xattr.includes('\0')) throw invalid(`bad xattr name ${JSON.stringify(xattr)}`);
    pax(`SCHILY.xattr.${xattr}`, value);
  }

  const block = encodeHeaderBlock({
    name: nameField,
    prefix: prefixField,
    typeflag: typeFlagOf(entry.type),
    mode: (entry.mode ?? (entry.type === 'directory' ? 0o755 : 0o644)) & 0o7777,
    uid,
    gid,
    size: sizeField,
    mtime: mtimeField,
    linkname,
    uname,
    gname,
    devmajor,
    devminor,
  });
  if (records.length === 0) return block;

  const paxData = encodePaxRecords(records);
  const paxBlock = encodeHeaderBlock({
    // Readers that know pax ignore this name; others extract the records under it.
    name: `PaxHeaders/${lastComponent(name)}`,
    prefix: '',
    typeflag: TypeFlag.paxLocal,
    mode: 0o644,
    uid: 0,
    gid: 0,
    size: paxData.length,
    mtime: 0,
    linkname: '',
    uname: '',
    gname: '',
    devmajor: 0,
    devminor: 0,
  });
  return Buffer.concat([paxBlock, paxData, ZEROS.subarray(0, paddingOf(paxData.length)), block]);
}

/** The last component of a name, cut to what fits the name field after `PaxHeaders/`. */
function lastComponent(name: string): string {
  const base = name.replace(/\/+$/, '').split('/').pop() || 'entry';
  const room = FIELD_LIMITS.name - 'PaxHeaders/'.length;
  return Buffer.from(base).subarray(0, room).toString('utf8').replace(/\uFFFD$/, '');
}

/** Orders strings as their UTF-8 bytes, the order tar tools and Go use. */
export function compareBytes(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}
