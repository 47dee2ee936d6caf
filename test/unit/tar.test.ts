import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { PassThrough, Readable, Writable } from 'node:stream';
import { finished } from 'node:stream/promises';
import * as zlib from 'node:zlib';
import { ContentError, ValidationError } from '../../src/errors';
import { loadNative } from '../../src/native/index';
import { compress, decompress, detectCompression } from '../../src/storage/compression';
import { TarBody, TarHeader, readTar } from '../../src/storage/tar/reader';
import { TarWriter, TarWriterEntry } from '../../src/storage/tar/writer';
import { useTempDir } from '../helpers/fixtures';
import { checkLeaksAfterEach } from '../helpers/leaks';

/** sha256 of a small archive from the writer: a change here changes the digest of every layer tsrun commits. */
const PINNED_DIGEST = '0b33ae17c578a3baa699d16cb8c6da8b5e5df447e67e5a73baa1349ca59ca6eb';

interface Entry {
  header: TarHeader;
  body: Buffer;
}

/** `data` in pieces of `size` bytes (the reader must not care where chunks end). */
async function* chunksOf(data: Buffer, size: number): AsyncGenerator<Buffer> {
  for (let i = 0; i < data.length; i += size) yield data.subarray(i, i + size);
}

async function readAll(archive: Buffer, chunkSize = 64 * 1024): Promise<Entry[]> {
  const entries: Entry[] = [];
  await readTar(
    chunksOf(archive, chunkSize),
    async (header, body) => {
      const parts: Buffer[] = [];
      for await (const chunk of body) parts.push(Buffer.from(chunk));
      entries.push({ header, body: Buffer.concat(parts) });
    },
    { subject: 'test archive' },
  );
  return entries;
}

function byName(entries: Entry[]): Map<string, Entry> {
  return new Map(entries.map((e) => [e.header.name, e]));
}

async function rejection(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected a rejection');
}

/** A tar made by python3's tarfile module (an implementation independent of GNU tar). */
function python(script: string): Buffer {
  const prelude = 'import io, sys, tarfile\nout = sys.stdout.buffer\ndef add(t, info, data=b""):\n    info.size = len(data)\n    t.addfile(info, io.BytesIO(data))\n';
  return execFileSync('python3', ['-c', prelude + script], { maxBuffer: 1 << 28 });
}

/** The archive `entries` make with a TarWriter. */
async function written(entries: [TarWriterEntry, (Buffer | AsyncIterable<Buffer>)?][]): Promise<Buffer> {
  const parts: Buffer[] = [];
  const output = new PassThrough();
  output.on('data', (chunk: Buffer) => parts.push(chunk));
  const tar = new TarWriter(output);
  for (const [entry, body] of entries) await tar.add(entry, body);
  await tar.finish();
  return Buffer.concat(parts);
}

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/** A v7 header block (no magic), which no current tool writes any more. */
function v7Header(name: string, typeflag: string, size: number): Buffer {
  const block = Buffer.alloc(512);
  const octal = (offset: number, length: number, value: number): void => {
    block.write(`${value.toString(8).padStart(length - 1, '0')}\0`, offset, 'latin1');
  };
  block.write(name, 0, 'utf8');
  octal(100, 8, 0o644);
  octal(108, 8, 1000);
  octal(116, 8, 1000);
  octal(124, 12, size);
  octal(136, 12, 1234567890);
  block.write(typeflag, 156, 'latin1');
  block.fill(0x20, 148, 156);
  let sum = 0;
  for (const byte of block) sum += byte;
  block.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
  return block;
}

describe('tar reader', () => {
  const tmp = useTempDir('tsrun-tar-');
  let tree: string;
  const longDir = `${'d'.repeat(60)}/${'e'.repeat(70)}`;
  const longFile = `${longDir}/${'f'.repeat(90)}.txt`;
  const longTarget = `../${'t'.repeat(150)}`;

  beforeAll(() => {
    tree = path.join(tmp(), 'tree');
    fs.mkdirSync(path.join(tree, longDir), { recursive: true });
    fs.writeFileSync(path.join(tree, longFile), 'long name\n');
    fs.writeFileSync(path.join(tree, 'plain.txt'), Buffer.alloc(10_000, 'x'));
    fs.linkSync(path.join(tree, 'plain.txt'), path.join(tree, 'z-hard.txt'));
    fs.symlinkSync(longTarget, path.join(tree, 'long-link'));
    fs.symlinkSync('/etc/passwd', path.join(tree, 'abs-link'));
    fs.chmodSync(path.join(tree, 'plain.txt'), 0o4755);
    fs.utimesSync(path.join(tree, 'plain.txt'), 1_600_000_000.25, 1_600_000_000.25);
    loadNative().lsetxattr(path.join(tree, 'plain.txt'), 'user.tsrun.test', Buffer.from([0, 1, 2, 0xff]), 0);
  });

  function gnuTar(...options: string[]): Buffer {
    // Sorted names and fixed ids make the archive the same on every host.
    return execFileSync('tar', ['-C', tree, '--sort=name', '--owner=0', '--group=0', '--numeric-owner', '-cf', '-', ...options, '.'], { maxBuffer: 1 << 28 });
  }

  test.each([['gnu'], ['posix'], ['ustar']])('GNU tar --format=%s: names, links, hard links, modes, content', async (format) => {
    // ustar cannot hold a 150-byte link target; the rest it can.
    const entries = byName(await readAll(gnuTar(`--format=${format}`, ...(format === 'ustar' ? ['--exclude=./long-link'] : [])), 777));
    expect(entries.get(`./${longFile}`)?.body.toString()).toBe('long name\n');
    expect(entries.get(`./${longDir}/`)?.header.type).toBe('directory');
    const plain = entries.get('./plain.txt')!;
    expect(plain.header).toMatchObject({ type: 'file', mode: 0o4755, size: 10_000, uid: 0, gid: 0 });
    expect(plain.body.equals(Buffer.alloc(10_000, 'x'))).toBe(true);
    // GNU tar's pax headers carry sub-second times; the others whole seconds.
    expect(plain.header.mtime).toBe(format === 'posix' ? 1_600_000_000.25 : 1_600_000_000);
    expect(entries.get('./z-hard.txt')?.header).toMatchObject({ type: 'hardlink', linkname: './plain.txt', size: 0 });
    expect(entries.get('./abs-link')?.header).toMatchObject({ type: 'symlink', linkname: '/etc/passwd' });
    if (format !== 'ustar') expect(entries.get('./long-link')?.header).toMatchObject({ type: 'symlink', linkname: longTarget });
  });

  test('GNU tar --xattrs: SCHILY.xattr records, binary values kept', async () => {
    const entries = byName(await readAll(gnuTar('--format=posix', '--xattrs', '--xattrs-include=user.*')));
    expect(entries.get('./plain.txt')?.header.xattrs).toEqual(new Map([['user.tsrun.test', Buffer.from([0, 1, 2, 0xff])]]));
    expect(entries.get('./z-hard.txt')?.header.xattrs.size).toBe(0);
  });

  test('python tarfile, GNU format: devices, fifo, big ids in base-256, negative mtime, owner names', async () => {
    const archive = python(`
t = tarfile.open(fileobj=out, mode="w|", format=tarfile.GNU_FORMAT)
i = tarfile.TarInfo("dev/null"); i.type = tarfile.CHRTYPE; i.devmajor = 1; i.devminor = 3; i.mode = 0o666; add(t, i)
i = tarfile.TarInfo("dev/sda"); i.type = tarfile.BLKTYPE; i.devmajor = 8; i.devminor = 1; add(t, i)
i = tarfile.TarInfo("run/fifo"); i.type = tarfile.FIFOTYPE; add(t, i)
i = tarfile.TarInfo("big"); i.uid = 3000000000; i.gid = 2**22; i.mtime = -86400; i.uname = "someone"; i.gname = "staff"; add(t, i, b"data")
i = tarfile.TarInfo("${'n'.repeat(300)}"); add(t, i, b"long")
t.close()`);
    const entries = byName(await readAll(archive));
    expect(entries.get('dev/null')?.header).toMatchObject({ type: 'char', devmajor: 1, devminor: 3, mode: 0o666 });
    expect(entries.get('dev/sda')?.header).toMatchObject({ type: 'block', devmajor: 8, devminor: 1 });
    expect(entries.get('run/fifo')?.header.type).toBe('fifo');
    expect(entries.get('big')?.header).toMatchObject({ uid: 3_000_000_000, gid: 2 ** 22, mtime: -86400, uname: 'someone', gname: 'staff', size: 4 });
    expect(entries.get('n'.repeat(300))?.body.toString()).toBe('long');
  });

  test('python tarfile, pax format: global and local records, SCHILY and LIBARCHIVE xattrs', async () => {
    const archive = python(`
t = tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT, pax_headers={"uname": "global-user", "comment": "ignored"})
i = tarfile.TarInfo("a"); i.uid = 5000000; i.mtime = 1700000000.5; add(t, i, b"a")
i = tarfile.TarInfo("b"); i.pax_headers = {"SCHILY.xattr.security.capability": "\\x01\\x02", "LIBARCHIVE.xattr.user.odd%3Dname": "aGVsbG8="}; add(t, i)
i = tarfile.TarInfo("c"); i.pax_headers = {"uname": "local-user"}; add(t, i)
t.close()`);
    const entries = byName(await readAll(archive));
    expect(entries.get('a')?.header).toMatchObject({ uid: 5_000_000, mtime: 1_700_000_000.5, uname: 'global-user' });
    expect(entries.get('b')?.header.xattrs).toEqual(
      new Map([
        ['security.capability', Buffer.from([1, 2])],
        ['user.odd=name', Buffer.from('hello')],
      ]),
    );
    expect(entries.get('c')?.header.uname).toBe('local-user');
  });

  test('python tarfile, ustar format: names split into prefix and name', async () => {
    const name = `${'p'.repeat(120)}/${'q'.repeat(90)}`;
    const archive = python(`
t = tarfile.open(fileobj=out, mode="w|", format=tarfile.USTAR_FORMAT)
add(t, tarfile.TarInfo("${name}"), b"split")
t.close()`);
    expect((await readAll(archive)).map((e) => [e.header.name, e.body.toString()])).toEqual([[name, 'split']]);
  });

  test('old v7 archives: no magic, a directory as a name ending in /', async () => {
    const archive = Buffer.concat([v7Header('dir/', '\0', 0), v7Header('dir/file', '0', 3), Buffer.from('abc'), Buffer.alloc(509), Buffer.alloc(1024)]);
    const entries = await readAll(archive);
    expect(entries.map((e) => [e.header.name, e.header.type, e.header.uid, e.header.mtime, e.body.toString()])).toEqual([
      ['dir/', 'directory', 1000, 1234567890, ''],
      ['dir/file', 'file', 1000, 1234567890, 'abc'],
    ]);
  });

  test('the same entries whatever the chunking, down to one byte at a time', async () => {
    const archive = gnuTar('--format=posix', '--xattrs', '--xattrs-include=user.*');
    const reference = await readAll(archive);
    for (const size of [1, 511, 512, 513, 4096]) {
      const entries = await readAll(archive, size);
      expect(entries.map((e) => [e.header, sha256(e.body)])).toEqual(reference.map((e) => [e.header, sha256(e.body)]));
    }
  });

  test('bodies left unread are skipped; read after their callback, they throw', async () => {
    const archive = gnuTar('--format=gnu');
    const names: string[] = [];
    let kept: TarBody | undefined;
    await readTar(
      chunksOf(archive, 100),
      (header, body) => {
        names.push(header.name);
        if (header.name === './plain.txt') kept = body;
      },
      { subject: 'test' },
    );
    expect(names).toContain(`./${longFile}`);
    expect(() => kept!.readBuffered()).toThrow(/after its entry callback had settled/);

    // Read partly: the rest is skipped and the next entry starts where it should.
    const partlyRead: string[] = [];
    await readTar(
      chunksOf(archive, 1000),
      async (header, body) => {
        partlyRead.push(header.name);
        for await (const chunk of body) {
          expect(chunk.length).toBeGreaterThan(0);
          break;
        }
      },
      { subject: 'test' },
    );
    expect(partlyRead).toEqual(names);
  });

  test('an archive that ends between entries without its zero blocks, as Go writers leave it, is complete', async () => {
    const complete = gnuTar('--format=gnu');
    const names = async (data: Buffer): Promise<string[]> => {
      const seen: string[] = [];
      await readTar(chunksOf(data, 4096), (header) => void seen.push(header.name), { subject: 'test' });
      return seen;
    };
    const all = await names(complete);
    expect(await names(complete.subarray(0, 512))).toEqual(all.slice(0, 1));
    const plainAt = complete.indexOf('plain.txt');
    const plainSize = parseInt(complete.subarray(plainAt + 124, plainAt + 136).toString(), 8);
    expect(plainSize % 512).not.toBe(0);
    const upToPlainData = complete.subarray(0, plainAt + 512 + plainSize);
    expect((await names(upToPlainData)).at(-1)).toBe('./plain.txt');
  });

  test('bytes after the end-of-archive blocks are read and ignored', async () => {
    const archive = Buffer.concat([gnuTar('--format=gnu'), Buffer.from('trailing garbage')]);
    let drained = false;
    async function* input(): AsyncGenerator<Buffer> {
      yield* chunksOf(archive, 4096);
      drained = true;
    }
    const names: string[] = [];
    await readTar(input(), (header) => void names.push(header.name), { subject: 'test' });
    expect(names.length).toBeGreaterThan(3);
    expect(drained).toBe(true);
  });

  describe('refuses damaged archives with a ContentError', () => {
    let archive: Buffer;
    beforeAll(() => {
      archive = gnuTar('--format=gnu');
    });

    async function failure(data: Buffer): Promise<ContentError> {
      const err = await rejection(readAll(data, 3000));
      expect(err).toBeInstanceOf(ContentError);
      return err as ContentError;
    }

    test('truncated inside a body', async () => {
      const plainAt = archive.indexOf('plain.txt');
      const err = await failure(archive.subarray(0, plainAt + 512 + 5000));
      expect(err.message).toMatch(/^test archive: \.\/plain\.txt: the archive ends inside this entry \(truncated\)/);
      expect(err.entry).toBe('./plain.txt');
    });

    test('truncated inside a header', async () => {
      expect((await failure(archive.subarray(0, 1024 + 100))).message).toMatch(/ends inside a header \(truncated\)/);
    });

    test('an extended header with no entry after it', async () => {
      const pax = gnuTar('--format=posix');
      expect(pax.readUInt8(156)).toBe('x'.charCodeAt(0));
      expect((await failure(pax.subarray(0, 1024))).message).toMatch(/ends after an extended header \(truncated\)/);
    });

    test('a bad header checksum', async () => {
      const corrupt = Buffer.from(archive);
      corrupt[600] ^= 0x40;
      expect((await failure(corrupt)).message).toBe('test archive: bad header checksum (at byte 512)');
    });

    test('garbage', async () => {
      const garbage = Buffer.alloc(4096);
      for (let i = 0; i < garbage.length; i++) garbage[i] = (i * 7919 + 13) % 256;
      expect((await failure(garbage)).message).toBe('test archive: bad header checksum; not a tar archive (at byte 0)');
    });

    test('a zero block followed by more entries', async () => {
      const entry = archive.subarray(0, 512);
      expect((await failure(Buffer.concat([Buffer.alloc(512), entry, Buffer.alloc(1024)]))).message).toMatch(/a zero block inside the archive/);
    });

    test('a malformed pax record', async () => {
      const pax = python(`
t = tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT)
i = tarfile.TarInfo("x"); i.pax_headers = {"comment": "abc"}; add(t, i)
t.close()`);
      const at = pax.indexOf('comment=abc');
      const corrupt = Buffer.from(pax);
      // "20 comment=abc\n" -> "29 comment=abc\n": the length runs past the header.
      corrupt[at - 3] = 0x39;
      expect((await failure(corrupt)).message).toMatch(/malformed pax record/);
    });

    test('a GNU sparse file, which is not supported', async () => {
      const sparse = Buffer.from(archive.subarray(0, 512));
      sparse[156] = 'S'.charCodeAt(0);
      sparse.fill(0x20, 148, 156);
      let sum = 0;
      for (const byte of sparse) sum += byte;
      sparse.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
      expect((await failure(Buffer.concat([sparse, Buffer.alloc(1024)]))).message).toMatch(/unsupported entry type: GNU sparse file/);
    });
  });

  test('an error closes the input, and an onEntry failure is passed on as it is', async () => {
    let closed = false;
    async function* input(): AsyncGenerator<Buffer> {
      try {
        yield* chunksOf(gnuTar('--format=gnu'), 512);
      } finally {
        closed = true;
      }
    }
    const boom = new Error('boom');
    expect(
      await rejection(
        readTar(
          input(),
          () => {
            throw boom;
          },
          { subject: 'test' },
        ),
      ),
    ).toBe(boom);
    expect(closed).toBe(true);
  });
});

describe('tar writer', () => {
  const tmp = useTempDir('tsrun-tarw-');
  const bigBody = Buffer.alloc(3 * 1024 * 1024 + 17);
  for (let i = 0; i < bigBody.length; i++) bigBody[i] = i % 251;

  function sample(): [TarWriterEntry, (Buffer | AsyncIterable<Buffer>)?][] {
    return [
      [{ name: 'etc', type: 'directory', mode: 0o755, mtime: 1_700_000_000 }],
      [{ name: 'etc/hostname', type: 'file', mode: 0o644, uid: 0, gid: 0, mtime: 1_700_000_000.9 }, Buffer.from('box\n')],
      [{ name: 'etc/empty', type: 'file' }],
      [{ name: `${'a'.repeat(120)}/${'b'.repeat(80)}`, type: 'file' }, Buffer.from('prefix split')],
      [{ name: `deep/${'c'.repeat(200)}/${'d'.repeat(120)}`, type: 'file' }, Buffer.from('pax path')],
      [{ name: 'link', type: 'symlink', linkname: `/${'t'.repeat(150)}` }],
      [{ name: 'hard', type: 'hardlink', linkname: 'etc/hostname' }],
      [{ name: 'usr/bin/ping', type: 'file', mode: 0o4755, uid: 3_000_000, gid: 2 ** 22, uname: 'a-very-long-user-name-over-32-bytes', gname: 'g' }, Buffer.from('ELF')],
      [{ name: 'dev/null', type: 'char', mode: 0o666, devmajor: 1, devminor: 3 }],
      [{ name: 'dev/loop0', type: 'block', mode: 0o660, devmajor: 7, devminor: 0 }],
      [{ name: 'fifo', type: 'fifo', mode: 0o600 }],
      [{ name: 'old', type: 'file', mtime: -1000 }, Buffer.from('1969')],
      [{ name: 'caps', type: 'file', xattrs: new Map([['user.b', Buffer.from('2')], ['security.capability', Buffer.from([1, 0, 0, 2, 0xff])]]) }, Buffer.from('x')],
      [{ name: 'big', type: 'file', size: bigBody.length }, chunksOf(bigBody, 100_000)],
    ];
  }

  test('round-trips through the reader', async () => {
    const entries = byName(await readAll(await written(sample()), 1000));
    expect(entries.get('etc/')?.header).toMatchObject({ type: 'directory', mode: 0o755, mtime: 1_700_000_000 });
    expect(entries.get('etc/hostname')?.header).toMatchObject({ type: 'file', mtime: 1_700_000_000, size: 4, uname: '', gname: '' });
    expect(entries.get('etc/hostname')?.body.toString()).toBe('box\n');
    expect(entries.get('etc/empty')?.header).toMatchObject({ size: 0, mode: 0o644, uid: 0, mtime: 0 });
    expect(entries.get(`${'a'.repeat(120)}/${'b'.repeat(80)}`)?.body.toString()).toBe('prefix split');
    expect(entries.get(`deep/${'c'.repeat(200)}/${'d'.repeat(120)}`)?.body.toString()).toBe('pax path');
    expect(entries.get('link')?.header).toMatchObject({ type: 'symlink', linkname: `/${'t'.repeat(150)}` });
    expect(entries.get('hard')?.header).toMatchObject({ type: 'hardlink', linkname: 'etc/hostname' });
    expect(entries.get('usr/bin/ping')?.header).toMatchObject({ mode: 0o4755, uid: 3_000_000, gid: 2 ** 22, uname: 'a-very-long-user-name-over-32-bytes', gname: 'g' });
    expect(entries.get('dev/null')?.header).toMatchObject({ type: 'char', devmajor: 1, devminor: 3, mode: 0o666 });
    expect(entries.get('dev/loop0')?.header).toMatchObject({ type: 'block', devmajor: 7, devminor: 0 });
    expect(entries.get('fifo')?.header.type).toBe('fifo');
    expect(entries.get('old')?.header.mtime).toBe(-1000);
    expect(entries.get('caps')?.header.xattrs).toEqual(new Map([['security.capability', Buffer.from([1, 0, 0, 2, 0xff])], ['user.b', Buffer.from('2')]]));
    expect(entries.get('big')?.body.equals(bigBody)).toBe(true);
  });

  test('pax headers only where ustar cannot hold a field, and no atime or ctime', async () => {
    const archive = await written(sample());
    const paxHeaders = (await readRawTypes(archive)).filter((t) => t === 'x');
    // pax path, long link, ids and uname of ping, negative mtime, xattrs.
    expect(paxHeaders).toHaveLength(5);
    expect(archive.includes('atime=')).toBe(false);
    expect(archive.includes('ctime=')).toBe(false);
    const simple = await written([[{ name: 'a', type: 'file' }, Buffer.from('a')]]);
    expect(simple.length).toBe(512 + 512 + 1024);
  });

  /** The type flag of each header block, pax and long-name headers included. */
  async function readRawTypes(archive: Buffer): Promise<string[]> {
    const types: string[] = [];
    for (let at = 0; at + 512 <= archive.length; ) {
      const block = archive.subarray(at, at + 512);
      if (block.every((b) => b === 0)) break;
      types.push(String.fromCharCode(block[156]));
      const size = parseInt(block.toString('latin1', 124, 136), 8);
      at += 512 + Math.ceil(size / 512) * 512;
    }
    return types;
  }

  test('the same entries give the same bytes (and these bytes)', async () => {
    const first = await written(sample());
    const second = await written(sample());
    expect(first.equals(second)).toBe(true);
    expect(sha256(await written([[{ name: 'etc', type: 'directory', mtime: 1 }], [{ name: 'etc/a', type: 'file', uid: 1, gid: 2, mtime: 3 }, Buffer.from('a\n')]]))).toBe(
      PINNED_DIGEST,
    );
  });

  test('GNU tar lists and extracts what it writes', async () => {
    const file = path.join(tmp(), 'sample.tar');
    fs.writeFileSync(file, await written(sample()));
    const listing = execFileSync('tar', ['--numeric-owner', '-tvf', file], { encoding: 'utf8' });
    expect(listing).toMatch(/^drwxr-xr-x 0\/0 +0 2023-11-14 \d\d:\d\d etc\/$/m);
    expect(listing).toMatch(/^-rwsr-xr-x 3000000\/4194304 +3 .* usr\/bin\/ping$/m);
    expect(listing).toMatch(/^crw-rw-rw- 0\/0 +1,3 .* dev\/null$/m);
    expect(listing).toMatch(/^hrw-r--r-- .* hard link to etc\/hostname$/m);
    expect(listing).toMatch(new RegExp(`^lrw.* link -> /${'t'.repeat(150)}$`, 'm'));
    expect(listing).toContain(`deep/${'c'.repeat(200)}/${'d'.repeat(120)}`);

    const out = path.join(tmp(), 'extracted');
    fs.mkdirSync(out);
    const files = ['etc/hostname', `deep/${'c'.repeat(200)}/${'d'.repeat(120)}`, 'big', 'caps', 'hard'];
    execFileSync('tar', ['-C', out, '--xattrs', '--xattrs-include=user.*', '-xf', file, ...files]);
    expect(fs.readFileSync(path.join(out, 'etc/hostname'), 'utf8')).toBe('box\n');
    expect(fs.readFileSync(path.join(out, 'big')).equals(bigBody)).toBe(true);
    expect(fs.statSync(path.join(out, 'hard')).ino).toBe(fs.statSync(path.join(out, 'etc/hostname')).ino);
    expect(loadNative().lgetxattr(path.join(out, 'caps'), 'user.b')?.toString()).toBe('2');
  });

  test('python tarfile reads what it writes', async () => {
    const file = path.join(tmp(), 'py.tar');
    fs.writeFileSync(file, await written(sample()));
    const listing = execFileSync('python3', ['-c', 'import sys, tarfile\nfor m in tarfile.open(sys.argv[1]): print(m.name, m.type.decode(), m.uid, m.size, m.linkname)', file], { encoding: 'utf8' });
    expect(listing).toContain(`deep/${'c'.repeat(200)}/${'d'.repeat(120)} 0 0 8 \n`);
    expect(listing).toContain(`usr/bin/ping 0 3000000 3 \n`);
    expect(listing).toContain(`big 0 0 ${bigBody.length} \n`);
  });

  test('a streamed body of the wrong length fails the archive', async () => {
    const err = await rejection(written([[{ name: 'short', type: 'file', size: 10 }, chunksOf(Buffer.alloc(4), 2)]]));
    expect(err).toBeInstanceOf(ContentError);
    expect(err.message).toBe('tar writer: short: the content is shorter than the 10 bytes of its header (did the file change while it was read?)');
    expect(await rejection(written([[{ name: 'long', type: 'file', size: 1 }, chunksOf(Buffer.alloc(4), 2)]]))).toBeInstanceOf(ContentError);
  });

  test('bad entries are refused before anything is written', async () => {
    await expect(written([[{ name: 'x', type: 'file' }, chunksOf(Buffer.alloc(1), 1)]])).rejects.toThrow(ValidationError);
    await expect(written([[{ name: 'x', type: 'file', uid: -1 }]])).rejects.toThrow(/bad uid -1/);
    await expect(written([[{ name: 'x', type: 'symlink', linkname: 'y' }, Buffer.from('z')]])).rejects.toThrow(/a symlink has no content/);
    await expect(written([[{ name: '', type: 'file' }]])).rejects.toThrow(/non-empty/);
  });

  test('waits for a slow output instead of buffering the archive', async () => {
    let maxBuffered = 0;
    const output = new Writable({
      highWaterMark: 64 * 1024,
      write(_chunk, _encoding, callback) {
        maxBuffered = Math.max(maxBuffered, output.writableLength);
        setImmediate(callback);
      },
    });
    const tar = new TarWriter(output);
    const body = Buffer.alloc(32 * 1024 * 1024);
    await tar.add({ name: 'big', type: 'file', size: body.length }, chunksOf(body, 256 * 1024));
    await tar.finish();
    expect(maxBuffered).toBeLessThanOrEqual(2 * 1024 * 1024);
  });

  test('an output error fails the next call', async () => {
    const output = new PassThrough();
    const tar = new TarWriter(output);
    output.destroy(new Error('disk full'));
    await new Promise((resolve) => setImmediate(resolve));
    await expect(tar.add({ name: 'a', type: 'file' }, Buffer.from('a'))).rejects.toThrow('disk full');
  });
});

describe('compression', () => {
  checkLeaksAfterEach();
  // Half noise, so that a cut compressed stream is really cut short.
  const data = Buffer.concat([randomBytes(300_000), Buffer.alloc(300_000, 7)]);

  async function collect(stream: AsyncIterable<Buffer>): Promise<Buffer> {
    const parts: Buffer[] = [];
    for await (const chunk of stream) parts.push(chunk);
    return Buffer.concat(parts);
  }

  test('detects gzip, zstd and the rest by magic', () => {
    expect(detectCompression(zlib.gzipSync('x'))).toBe('gzip');
    expect(detectCompression(Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0]))).toBe('zstd');
    expect(detectCompression(Buffer.from('ustar'))).toBe('none');
    expect(detectCompression(Buffer.alloc(0))).toBe('none');
  });

  test.each([['gzip'], ['zstd']] as const)('%s: compress, then decompress in small chunks, gives the input back', async (kind) => {
    const compressor = compress(kind);
    const compressed = collect(compressor);
    compressor.end(data);
    const blob = await compressed;
    expect(detectCompression(blob)).toBe(kind);
    expect((await collect(decompress(Readable.from(chunksOf(blob, 1000)), 'blob'))).equals(data)).toBe(true);
  });

  test('gzip over several blocks: one gzip stream that gzip(1) reads, the same bytes every time', async () => {
    const input = Buffer.concat(Array.from({ length: 7 }, () => data));
    const once = async (): Promise<Buffer> => {
      const compressor = compress('gzip');
      const output = collect(compressor);
      for (let i = 0; i < input.length; i += 100_000) compressor.write(input.subarray(i, i + 100_000));
      compressor.end();
      return output;
    };
    const blob = await once();
    expect(execFileSync('gzip', ['-dc'], { input: blob, maxBuffer: 1 << 28 }).equals(input)).toBe(true);
    expect((await once()).equals(blob)).toBe(true);
    const empty = compress('gzip');
    const emptyBlob = collect(empty);
    empty.end();
    expect(zlib.gunzipSync(await emptyBlob).length).toBe(0);
  });

  test('uncompressed and empty inputs pass through', async () => {
    expect((await collect(decompress(Readable.from(chunksOf(data, 3)), 'blob'))).equals(data)).toBe(true);
    expect((await collect(decompress(Readable.from([]), 'blob'))).length).toBe(0);
  });

  test.each([
    ['truncated gzip', () => zlib.gzipSync(data).subarray(0, 5000), /^blob: corrupt gzip stream: unexpected end of file$/],
    ['corrupt gzip', () => Buffer.concat([zlib.gzipSync(data).subarray(0, 200), Buffer.alloc(50, 0xaa), zlib.gzipSync(data).subarray(250)]), /^blob: corrupt gzip stream: /],
    ['truncated zstd', () => execFileSync('zstd', ['-c', '-q'], { input: data }).subarray(0, 3000), /^blob: corrupt zstd stream: zstd exited with status 1: .*premature end/],
    ['xz', () => Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00, 0, 0]), /^blob: xz-compressed content is not supported/],
  ])('%s: a ContentError', async (_name, make, message) => {
    const err = await rejection(collect(decompress(Readable.from([make()]), 'blob')));
    expect(err).toBeInstanceOf(ContentError);
    expect(err.message).toMatch(message);
  });

  test('stopping early kills and reaps the zstd process, and closes the input', async () => {
    const blob = execFileSync('zstd', ['-c', '-q', '-1'], { input: Buffer.concat(Array.from({ length: 40 }, () => data)), maxBuffer: 1 << 28 });
    const input = Readable.from(chunksOf(blob, 4096));
    const output = decompress(input, 'blob');
    for await (const chunk of output) {
      expect(chunk.length).toBeGreaterThan(0);
      break;
    }
    // 'close' comes once zstd has been killed and reaped; checkLeaksAfterEach looks for it.
    await finished(output).catch(() => undefined);
    expect(input.destroyed).toBe(true);
  });
});

