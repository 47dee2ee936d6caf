/**
 * The tar header block and PAX records: parsing for the reader, encoding
 * for the writer. Formats read: POSIX ustar and pax (IEEE 1003.1-2001),
 * GNU (`ustar  ` magic, 'L'/'K' long names, base-256 numbers) and old v7.
 * See tar(5) in libarchive's man pages and GNU tar's "Basic Tar Format".
 */

export const BLOCK_SIZE = 512;

export type TarEntryType = 'file' | 'hardlink' | 'symlink' | 'char' | 'block' | 'directory' | 'fifo';

export interface TarHeader {
  /** As stored in the archive (`./etc/`, `usr/bin/ls`); not cleaned. */
  name: string;
  type: TarEntryType;
  /** Permission bits with setuid, setgid and sticky (0o7777). */
  mode: number;
  uid: number;
  gid: number;
  /** Bytes of the entry's body. */
  size: number;
  /** Seconds since the epoch, may be fractional (pax). */
  mtime: number;
  /** Symlink target, or the hard link's target entry. */
  linkname: string;
  devmajor: number;
  devminor: number;
  uname: string;
  gname: string;
  /** Extended attributes by full name (`user.foo`, `security.capability`). */
  xattrs: Map<string, Buffer>;
}

/**
 * A malformed header or record. The reader turns it into a ContentError
 * that names the archive and the offset; it never leaves this module pair.
 */
export class TarFormatError extends Error {}

/** Header layout: [offset, length] of each field. */
const NAME = [0, 100] as const;
const MODE = [100, 8] as const;
const UID = [108, 8] as const;
const GID = [116, 8] as const;
const SIZE = [124, 12] as const;
const MTIME = [136, 12] as const;
const CHECKSUM = [148, 8] as const;
const TYPEFLAG = 156;
const LINKNAME = [157, 100] as const;
const MAGIC = [257, 6] as const;
const VERSION = [263, 2] as const;
const UNAME = [265, 32] as const;
const GNAME = [297, 32] as const;
const DEVMAJOR = [329, 8] as const;
const DEVMINOR = [337, 8] as const;
const PREFIX = [345, 155] as const;

/** Type flag bytes (tar(5)). */
export const TypeFlag = {
  file: 0x30, // '0'
  oldFile: 0x00, // '\0', v7
  hardlink: 0x31,
  symlink: 0x32,
  char: 0x33,
  block: 0x34,
  directory: 0x35,
  fifo: 0x36,
  contiguous: 0x37, // '7': a regular file everywhere that matters
  paxLocal: 0x78, // 'x'
  paxGlobal: 0x67, // 'g'
  gnuLongName: 0x4c, // 'L'
  gnuLongLink: 0x4b, // 'K'
  gnuDumpDir: 0x44, // 'D': a directory followed by a listing of its names
} as const;

const ENTRY_TYPE_FLAGS: Record<TarEntryType, number> = {
  file: TypeFlag.file,
  hardlink: TypeFlag.hardlink,
  symlink: TypeFlag.symlink,
  char: TypeFlag.char,
  block: TypeFlag.block,
  directory: TypeFlag.directory,
  fifo: TypeFlag.fifo,
};

/** Type flags this reader refuses, with the reason given to the user. */
const UNSUPPORTED_TYPES: Record<number, string> = {
  0x53: "GNU sparse file ('S')",
  0x4d: "GNU multi-volume continuation ('M')",
  0x4e: "old GNU long name ('N')",
  0x56: "GNU volume header ('V')",
  0x58: "old Solaris extended header ('X')",
};

/** The fields of one header block, before pax and GNU long names apply. */
export interface RawHeader {
  name: string;
  typeflag: number;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: number;
  linkname: string;
  uname: string;
  gname: string;
  devmajor: number;
  devminor: number;
}

/** True for a block of 512 zero bytes (half of the end-of-archive marker). */
export function isZeroBlock(block: Buffer): boolean {
  for (let i = 0; i < BLOCK_SIZE; i++) if (block[i] !== 0) return false;
  return true;
}

/** The bytes of a NUL-terminated field, as UTF-8. */
function parseString(block: Buffer, [offset, length]: readonly [number, number]): string {
  let end = offset;
  const limit = offset + length;
  while (end < limit && block[end] !== 0) end++;
  return block.toString('utf8', offset, end);
}

/**
 * A numeric field: octal digits (leading spaces allowed, ended by a space
 * or NUL), or GNU's base-256 when the high bit of the first byte is set.
 */
function parseNumeric(block: Buffer, [offset, length]: readonly [number, number], field: string): number {
  const first = block[offset];
  if (first & 0x80) return parseBase256(block.subarray(offset, offset + length), field);
  let i = offset;
  const limit = offset + length;
  while (i < limit && block[i] === 0x20) i++;
  let value = 0;
  for (; i < limit; i++) {
    const c = block[i];
    if (c >= 0x30 && c <= 0x37) {
      value = value * 8 + (c - 0x30);
    } else if (c === 0x20 || c === 0) {
      break;
    } else {
      throw new TarFormatError(`bad ${field} field ${JSON.stringify(block.toString('latin1', offset, limit))}`);
    }
  }
  return value;
}

/** GNU base-256: big-endian two's complement, flag bit 0x80 on a positive number (0xff lead byte when negative). */
function parseBase256(bytes: Buffer, field: string): number {
  const negative = bytes[0] === 0xff;
  let value = BigInt(bytes[0] & 0x7f) - (negative ? 0x80n : 0n);
  for (let i = 1; i < bytes.length; i++) value = (value << 8n) | BigInt(bytes[i]);
  if (value > BigInt(Number.MAX_SAFE_INTEGER) || value < BigInt(Number.MIN_SAFE_INTEGER)) throw new TarFormatError(`${field} out of range`);
  return Number(value);
}

/**
 * The header checksum: the sum of the block's bytes with the checksum field
 * read as spaces. Some old tars summed signed chars; both sums are accepted.
 */
function checksums(block: Buffer): { unsigned: number; signed: number } {
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < BLOCK_SIZE; i++) {
    const c = i >= CHECKSUM[0] && i < CHECKSUM[0] + CHECKSUM[1] ? 0x20 : block[i];
    unsigned += c;
    signed += c > 127 ? c - 256 : c;
  }
  return { unsigned, signed };
}

/** Parses and checks one header block (not a zero block). */
export function parseHeaderBlock(block: Buffer): RawHeader {
  let stored: number;
  try {
    stored = parseNumeric(block, CHECKSUM, 'checksum');
  } catch {
    // Garbage there is garbage everywhere: say so the same way.
    stored = -1;
  }
  const sums = checksums(block);
  if (stored !== sums.unsigned && stored !== sums.signed) throw new TarFormatError('bad header checksum');

  const magic = block.toString('latin1', MAGIC[0], MAGIC[0] + MAGIC[1]);
  const posix = magic === 'ustar\0';
  const gnu = magic === 'ustar ' && block.toString('latin1', VERSION[0], VERSION[0] + VERSION[1]) === ' \0';
  let name = parseString(block, NAME);
  // Only POSIX ustar has the prefix; GNU keeps atime and ctime there.
  if (posix && block[PREFIX[0]] !== 0) name = `${parseString(block, PREFIX)}/${name}`;
  const typeflag = block[TYPEFLAG];
  const unsupported = UNSUPPORTED_TYPES[typeflag];
  if (unsupported !== undefined) throw new TarFormatError(`unsupported entry type: ${unsupported}`);
  const extended = posix || gnu;
  return {
    name,
    typeflag,
    mode: parseNumeric(block, MODE, 'mode') & 0o7777,
    uid: parseNumeric(block, UID, 'uid'),
    gid: parseNumeric(block, GID, 'gid'),
    size: parseNumeric(block, SIZE, 'size'),
    mtime: parseNumeric(block, MTIME, 'mtime'),
    linkname: parseString(block, LINKNAME),
    uname: extended ? parseString(block, UNAME) : '',
    gname: extended ? parseString(block, GNAME) : '',
    devmajor: extended ? parseNumeric(block, DEVMAJOR, 'devmajor') : 0,
    devminor: extended ? parseNumeric(block, DEVMINOR, 'devminor') : 0,
  };
}

/** The entry type of a type flag; `name` decides for v7's directories (`dir/` with type '\0'). */
export function entryType(typeflag: number, name: string): TarEntryType {
  switch (typeflag) {
    case TypeFlag.file:
    case TypeFlag.contiguous:
      return 'file';
    case TypeFlag.oldFile:
      return name.endsWith('/') ? 'directory' : 'file';
    case TypeFlag.hardlink:
      return 'hardlink';
    case TypeFlag.symlink:
      return 'symlink';
    case TypeFlag.char:
      return 'char';
    case TypeFlag.block:
      return 'block';
    case TypeFlag.directory:
    case TypeFlag.gnuDumpDir:
      return 'directory';
    case TypeFlag.fifo:
      return 'fifo';
    default:
      throw new TarFormatError(`unknown entry type ${JSON.stringify(String.fromCharCode(typeflag))}`);
  }
}

/** One `LEN KEY=VALUE\n` record; the value stays bytes (xattr values are binary). */
export interface PaxRecord {
  key: string;
  value: Buffer;
}

/** Parses the body of a pax 'x' or 'g' header. */
export function parsePaxRecords(data: Buffer): PaxRecord[] {
  const records: PaxRecord[] = [];
  let pos = 0;
  while (pos < data.length) {
    // GNU tar and others may pad the body with NULs.
    if (data[pos] === 0) break;
    const space = data.indexOf(0x20, pos);
    const lengthText = space < 0 ? '' : data.toString('latin1', pos, space);
    const length = /^[0-9]{1,9}$/.test(lengthText) ? Number(lengthText) : NaN;
    const end = pos + length;
    if (!(length > 0) || end > data.length || data[end - 1] !== 0x0a) throw new TarFormatError(`malformed pax record at byte ${pos} of the extended header`);
    const equals = data.indexOf(0x3d, space + 1);
    if (equals < 0 || equals >= end - 1) throw new TarFormatError(`pax record without "=" at byte ${pos} of the extended header`);
    records.push({ key: data.toString('utf8', space + 1, equals), value: data.subarray(equals + 1, end - 1) });
    pos = end;
  }
  return records;
}

/** One encoded pax record: its length prefix counts its own digits. */
function encodePaxRecord(key: string, value: Buffer): Buffer {
  const body = Buffer.concat([Buffer.from(` ${key}=`), value, Buffer.from('\n')]);
  let length = body.length + String(body.length).length;
  // Adding the digits may add a digit (98 bytes -> "101 ..."); once more settles it.
  length = body.length + String(length).length;
  return Buffer.concat([Buffer.from(String(length)), body]);
}

export function encodePaxRecords(records: PaxRecord[]): Buffer {
  return Buffer.concat(records.map((r) => encodePaxRecord(r.key, r.value)));
}

/** Octal digits for a field of `length` bytes: zero-padded to length-1 digits and a NUL, as GNU tar writes. */
function writeOctal(block: Buffer, [offset, length]: readonly [number, number], value: number): void {
  // Digit by digit from the right: headers are encoded once per entry, and formatting strings was a tenth of a commit's time.
  block[offset + length - 1] = 0;
  let rest = value;
  for (let i = offset + length - 2; i >= offset; i--) {
    const digit = rest % 8;
    block[i] = 0x30 + digit;
    rest = (rest - digit) / 8;
  }
}

/** The largest value an octal field of `length` bytes holds. */
export function octalLimit(length: number): number {
  return 8 ** (length - 1) - 1;
}

export const FIELD_LIMITS = {
  id: octalLimit(UID[1]),
  size: octalLimit(SIZE[1]),
  mtime: octalLimit(MTIME[1]),
  device: octalLimit(DEVMAJOR[1]),
  name: NAME[1],
  prefix: PREFIX[1],
  linkname: LINKNAME[1],
  owner: UNAME[1],
};

/** What the writer puts in one ustar block; every value must fit its field. */
export interface UstarFields {
  name: string;
  prefix: string;
  typeflag: number;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: number;
  linkname: string;
  uname: string;
  gname: string;
  devmajor: number;
  devminor: number;
}

/** The constant part of a ustar header: magic and version. */
const USTAR_TEMPLATE = (() => {
  const block = Buffer.alloc(BLOCK_SIZE);
  block.write('ustar\0', MAGIC[0], MAGIC[1], 'latin1');
  block.write('00', VERSION[0], VERSION[1], 'latin1');
  return block;
})();

/** Encodes a POSIX ustar header block with its checksum. */
export function encodeHeaderBlock(fields: UstarFields): Buffer {
  const block = Buffer.allocUnsafe(BLOCK_SIZE);
  USTAR_TEMPLATE.copy(block);
  block.write(fields.name, NAME[0], NAME[1], 'utf8');
  writeOctal(block, MODE, fields.mode);
  writeOctal(block, UID, fields.uid);
  writeOctal(block, GID, fields.gid);
  writeOctal(block, SIZE, fields.size);
  writeOctal(block, MTIME, fields.mtime);
  block[TYPEFLAG] = fields.typeflag;
  block.write(fields.linkname, LINKNAME[0], LINKNAME[1], 'utf8');
  block.write(fields.uname, UNAME[0], UNAME[1], 'utf8');
  block.write(fields.gname, GNAME[0], GNAME[1], 'utf8');
  writeOctal(block, DEVMAJOR, fields.devmajor);
  writeOctal(block, DEVMINOR, fields.devminor);
  block.write(fields.prefix, PREFIX[0], PREFIX[1], 'utf8');
  // The checksum field is 6 octal digits, a NUL and a space.
  writeOctal(block, [CHECKSUM[0], CHECKSUM[1] - 1], checksums(block).unsigned);
  block[CHECKSUM[0] + CHECKSUM[1] - 1] = 0x20;
  return block;
}

export function typeFlagOf(type: TarEntryType): number {
  return ENTRY_TYPE_FLAGS[type];
}

/** Zero bytes that pad a body of `size` bytes to a whole block. */
export function paddingOf(size: number): number {
  return (BLOCK_SIZE - (size % BLOCK_SIZE)) % BLOCK_SIZE;
}
