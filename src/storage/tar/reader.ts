import { ContentError } from '../../errors';
import { BLOCK_SIZE, PaxRecord, RawHeader, TarFormatError, TarHeader, TypeFlag, entryType, isZeroBlock, paddingOf, parseHeaderBlock, parsePaxRecords } from './header';

export type { TarEntryType, TarHeader } from './header';

/**
 * A streaming tar reader: one pass over the input, no entry held in memory
 * (only pax headers and GNU long names, which are capped).
 */

/** GNU long names and pax headers are read into memory: more than this is not a real archive. */
const MAX_META_SIZE = 1 << 20;

const EMPTY = Buffer.alloc(0);

/**
 * An entry's content. Iterate it for exactly `size` bytes; `readBuffered`
 * is the synchronous fast path for callers that can write what is already
 * in memory without waiting (most files of a layer fit in one input chunk).
 */
export interface TarBody extends AsyncIterable<Buffer> {
  /** Bytes of the body not yet read. */
  readonly remaining: number;
  /** The part of the rest of the body already in memory (empty if none is); never waits. */
  readBuffered(): Buffer;
}

/** Input chunks and the position in them; meta reads may span chunks. */
class ByteSource {
  private chunk: Buffer = EMPTY;
  private pos = 0;
  /** Input offset of `chunk[0]`, for error messages. */
  private chunkStart = 0;
  private ended = false;
  private pending: Promise<boolean> | undefined;

  constructor(private readonly iterator: AsyncIterator<Buffer>) {}

  get offset(): number {
    return this.chunkStart + this.pos;
  }

  get buffered(): number {
    return this.chunk.length - this.pos;
  }

  get done(): boolean {
    return this.ended;
  }

  /** Loads the next chunk once this one is used up; false at the end of the input. */
  fill(): Promise<boolean> {
    if (this.buffered > 0) return Promise.resolve(true);
    // A body iterated after its entry ended may race with the reader: both wait on one read.
    this.pending ??= this.next().finally(() => {
      this.pending = undefined;
    });
    return this.pending;
  }

  private async next(): Promise<boolean> {
    while (this.buffered === 0) {
      if (this.ended) return false;
      const result = await this.iterator.next();
      if (result.done) {
        this.ended = true;
        return false;
      }
      this.chunkStart += this.chunk.length;
      this.chunk = result.value;
      this.pos = 0;
    }
    return true;
  }

  /** Up to `max` bytes of the current chunk, without copying. */
  take(max: number): Buffer {
    const end = Math.min(this.chunk.length, this.pos + max);
    const bytes = this.chunk.subarray(this.pos, end);
    this.pos = end;
    return bytes;
  }

  /** Exactly `length` bytes, or fewer at the end of the input. */
  async read(length: number): Promise<Buffer> {
    if (this.buffered >= length) return this.take(length);
    const parts: Buffer[] = [];
    let missing = length;
    while (missing > 0 && (await this.fill())) {
      const part = this.take(missing);
      parts.push(part);
      missing -= part.length;
    }
    return parts.length === 1 ? parts[0] : Buffer.concat(parts);
  }

  /** Skips `length` bytes; false when the input ends first. */
  async skip(length: number): Promise<boolean> {
    let missing = length;
    while (missing > 0) {
      if (this.buffered === 0 && !(await this.fill())) return false;
      missing -= this.take(missing).length;
    }
    return true;
  }

  /** Reads the rest of the input and drops it. */
  async drain(): Promise<void> {
    while (await this.fill()) this.take(this.buffered);
  }

  /** Stops the input early (destroys a stream, ends a child process). */
  async close(): Promise<void> {
    if (!this.ended) await this.iterator.return?.();
  }
}

class EntryBody implements TarBody {
  private closed = false;

  constructor(
    private readonly source: ByteSource,
    public remaining: number,
    private readonly truncated: () => Error,
  ) {}

  readBuffered(): Buffer {
    this.checkOpen();
    if (this.remaining === 0 || this.source.buffered === 0) return EMPTY;
    const bytes = this.source.take(this.remaining);
    this.remaining -= bytes.length;
    return bytes;
  }

  [Symbol.asyncIterator](): AsyncIterator<Buffer> {
    return {
      next: async (): Promise<IteratorResult<Buffer>> => {
        this.checkOpen();
        if (this.remaining === 0) return { done: true, value: undefined };
        if (this.source.buffered === 0) {
          const more = await this.source.fill();
          this.checkOpen();
          if (!more) throw this.truncated();
        }
        return { done: false, value: this.readBuffered() };
      },
    };
  }

  /** Called once the entry's callback has settled: later reads are a bug in the caller. */
  close(): void {
    this.closed = true;
  }

  private checkOpen(): void {
    if (this.closed) throw new Error('tar: an entry body was read after its entry callback had settled');
  }
}

/** Pax keys and GNU long names that apply to the next entry, over the global ones. */
interface Overrides {
  records: Map<string, Buffer>;
  longName?: string;
  longLink?: string;
}

/**
 * Calls `onEntry` for each entry in order; `body` yields exactly
 * `header.size` bytes. A body not consumed by the time onEntry's promise
 * settles is skipped. Two zero blocks, or the end of the input after an
 * entry's data, end the archive; what follows the blocks is read and discarded, so that a digest taken over the input covers all
 * of it. A truncated archive, a bad checksum or garbage rejects with a
 * ContentError naming `options.subject`; when readTar rejects (or
 * onEntry throws), the input is closed (`return()` on its iterator).
 */
export async function readTar(
  input: AsyncIterable<Buffer>,
  onEntry: (header: TarHeader, body: TarBody) => Promise<void> | void,
  options: { subject: string },
): Promise<void> {
  const { subject } = options;
  const source = new ByteSource(input[Symbol.asyncIterator]());
  const globals = new Map<string, Buffer>();
  let overrides: Overrides = { records: new Map() };
  let completed = false;

  const fail = (message: string, offset: number, entry?: string): ContentError => new ContentError(subject, `${message} (at byte ${offset})`, entry);
  const readBlock = async (what: string): Promise<{ block: Buffer; offset: number }> => {
    const offset = source.offset;
    const block = await source.read(BLOCK_SIZE);
    if (block.length > 0 && block.length < BLOCK_SIZE) {
      throw fail(offset === 0 ? `not a tar archive: ${block.length} bytes, shorter than one header` : `the archive ends inside ${what} (truncated)`, offset);
    }
    return { block, offset };
  };

  try {
    for (;;) {
      const pendingMeta = overrides.records.size > 0 || overrides.longName !== undefined || overrides.longLink !== undefined;
      const { block, offset } = await readBlock(pendingMeta ? 'an extended header' : 'a header');
      if (block.length === 0) {
        // Go's archive/tar (umoci, containerd) reads a clean end between
        // entries as the end of the archive, and some writers omit the
        // zero blocks; a cut layer is still caught by its digest.
        if (pendingMeta) throw fail('the archive ends after an extended header (truncated)', offset);
        break;
      }
      if (isZeroBlock(block)) {
        if (pendingMeta) throw fail('an extended header is not followed by an entry', offset);
        const next = await source.read(BLOCK_SIZE);
        if (next.length > 0 && (next.length < BLOCK_SIZE || !isZeroBlock(next))) throw fail('a zero block inside the archive, where a header was expected', offset);
        break;
      }
      let raw: RawHeader;
      try {
        raw = parseHeaderBlock(block);
      } catch (err) {
        if (!(err instanceof TarFormatError)) throw err;
        const hint = offset === 0 && err.message === 'bad header checksum' ? '; not a tar archive' : '';
        throw fail(`${err.message}${hint}`, offset);
      }

      if (isMetaType(raw.typeflag)) {
        if (raw.size > MAX_META_SIZE) throw fail(`an extended header of ${raw.size} bytes (more than ${MAX_META_SIZE})`, offset);
        const data = await source.read(raw.size + paddingOf(raw.size));
        if (data.length < raw.size + paddingOf(raw.size)) throw fail('the archive ends inside an extended header (truncated)', offset);
        const content = data.subarray(0, raw.size);
        try {
          readMeta(raw.typeflag, content, globals, overrides);
        } catch (err) {
          if (err instanceof TarFormatError) throw fail(err.message, offset);
          throw err;
        }
        continue;
      }

      let header: TarHeader;
      try {
        header = resolveHeader(raw, globals, overrides);
      } catch (err) {
        if (err instanceof TarFormatError) throw fail(err.message, offset, raw.name);
        throw err;
      }
      overrides = { records: new Map() };

      const body = new EntryBody(source, header.size, () => fail('the archive ends inside this entry (truncated)', source.offset, header.name));
      try {
        const settled = onEntry(header, body);
        if (settled !== undefined) await settled;
      } finally {
        body.close();
      }
      if (!(await source.skip(body.remaining))) throw fail('the archive ends inside this entry (truncated)', source.offset, header.name);
      // umoci 0.4's `insert` ends its layers right after the last entry's
      // data, without padding; the data is whole and the digest covers it.
      if (!(await source.skip(paddingOf(header.size)))) break;
    }
    await source.drain();
    completed = true;
  } finally {
    if (!completed) await source.close().catch(() => undefined);
  }
}

function isMetaType(typeflag: number): boolean {
  return typeflag === TypeFlag.paxLocal || typeflag === TypeFlag.paxGlobal || typeflag === TypeFlag.gnuLongName || typeflag === TypeFlag.gnuLongLink;
}

/** Records a pax header or GNU long name for the entries it applies to. */
function readMeta(typeflag: number, content: Buffer, globals: Map<string, Buffer>, overrides: Overrides): void {
  switch (typeflag) {
    case TypeFlag.gnuLongName:
      overrides.longName = nulTerminated(content);
      break;
    case TypeFlag.gnuLongLink:
      overrides.longLink = nulTerminated(content);
      break;
    case TypeFlag.paxGlobal:
      // A global record with an empty value removes the key (POSIX pax).
      for (const { key, value } of checkedRecords(content)) {
        if (value.length === 0) globals.delete(key);
        else globals.set(key, value);
      }
      break;
    default:
      for (const { key, value } of checkedRecords(content)) overrides.records.set(key, value);
  }
}

function checkedRecords(content: Buffer): PaxRecord[] {
  const records = parsePaxRecords(content);
  for (const { key } of records) {
    if (key.startsWith('GNU.sparse.')) throw new TarFormatError('unsupported entry type: GNU sparse file (pax GNU.sparse records)');
  }
  return records;
}

function nulTerminated(content: Buffer): string {
  const end = content.indexOf(0);
  return content.toString('utf8', 0, end < 0 ? content.length : end);
}

/** The entry's header after GNU long names, then global and local pax records. */
function resolveHeader(raw: RawHeader, globals: Map<string, Buffer>, overrides: Overrides): TarHeader {
  const header: TarHeader = {
    name: overrides.longName ?? raw.name,
    type: 'file',
    mode: raw.mode,
    uid: raw.uid,
    gid: raw.gid,
    size: raw.size,
    mtime: raw.mtime,
    linkname: overrides.longLink ?? raw.linkname,
    devmajor: raw.devmajor,
    devminor: raw.devminor,
    uname: raw.uname,
    gname: raw.gname,
    xattrs: new Map(),
  };
  const records = globals.size === 0 ? overrides.records : new Map([...globals, ...overrides.records]);
  for (const [key, value] of records) {
    // An empty local value cancels a global one: the header field stands.
    if (value.length === 0) continue;
    applyPaxRecord(header, key, value);
  }
  // The v7 directory convention needs the final name.
  header.type = entryType(raw.typeflag, header.name);
  return header;
}

function applyPaxRecord(header: TarHeader, key: string, value: Buffer): void {
  switch (key) {
    case 'path':
      header.name = value.toString('utf8');
      break;
    case 'linkpath':
      header.linkname = value.toString('utf8');
      break;
    case 'uname':
      header.uname = value.toString('utf8');
      break;
    case 'gname':
      header.gname = value.toString('utf8');
      break;
    case 'size':
      header.size = paxInteger(key, value);
      break;
    case 'uid':
      header.uid = paxInteger(key, value);
      break;
    case 'gid':
      header.gid = paxInteger(key, value);
      break;
    case 'SCHILY.devmajor':
      header.devmajor = paxInteger(key, value);
      break;
    case 'SCHILY.devminor':
      header.devminor = paxInteger(key, value);
      break;
    case 'mtime': {
      const text = value.toString('latin1');
      if (!/^-?[0-9]+(\.[0-9]+)?$/.test(text)) throw new TarFormatError(`bad pax mtime ${JSON.stringify(text)}`);
      header.mtime = Number(text);
      break;
    }
    default:
      if (key.startsWith('SCHILY.xattr.')) {
        header.xattrs.set(key.slice('SCHILY.xattr.'.length), value);
      } else if (key.startsWith('LIBARCHIVE.xattr.')) {
        // libarchive URL-encodes the name and base64-encodes the value.
        let name: string;
        try {
          name = decodeURIComponent(key.slice('LIBARCHIVE.xattr.'.length));
        } catch {
          throw new TarFormatError(`bad pax xattr name ${JSON.stringify(key)}`);
        }
        header.xattrs.set(name, Buffer.from(value.toString('latin1'), 'base64'));
      }
    // Other keys (atime, ctime, comment, charset, SCHILY.acl.*...) do not change what is extracted.
  }
}

function paxInteger(key: string, value: Buffer): number {
  const text = value.toString('latin1');
  const number = Number(text);
  if (!/^[0-9]+$/.test(text) || !Number.isSafeInteger(number)) throw new TarFormatError(`bad pax ${key} ${JSON.stringify(text)}`);
  return number;
}

