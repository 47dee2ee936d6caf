import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { ContentError, DigestMismatchError } from '../../src/errors';
import { checkContent, digestHex, digestOf, sha256Digest, verifyFile, writeWithDigest } from '../../src/storage/digest';
import { useTempDir } from '../helpers/fixtures';

const EMPTY = 'sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';
const HELLO = `sha256:${createHash('sha256').update('hello\n').digest('hex')}`;

describe('digests', () => {
  const tmp = useTempDir('tsrun-digest-');

  test('sha256Digest and digestHex', () => {
    expect(sha256Digest('')).toBe(EMPTY);
    expect(sha256Digest(Buffer.from('hello\n'))).toBe(HELLO);
    expect(digestHex(EMPTY)).toBe(EMPTY.slice(7));
  });

  test('digestOf hashes and counts every chunk', async () => {
    expect(await digestOf(Readable.from([Buffer.from('hel'), Buffer.from('lo\n')]))).toEqual({ digest: HELLO, size: 6 });
    expect(await digestOf(Readable.from([]))).toEqual({ digest: EMPTY, size: 0 });
  });

  test('checkContent: the size first (truncation says so), then the digest', () => {
    expect(() => checkContent('blob', { digest: HELLO, size: 6 }, { digest: HELLO, size: 6 })).not.toThrow();
    const short = (): void => checkContent('layer x', { digest: HELLO, size: 6 }, { digest: EMPTY, size: 0 });
    expect(short).toThrow(ContentError);
    expect(short).toThrow('layer x: size mismatch: the descriptor says 6 bytes, the content has 0 (truncated?)');
    expect(() => checkContent('b', { digest: HELLO, size: 6 }, { digest: EMPTY, size: 7 })).toThrow(/the content has 7$/);
    const wrong = (): void => checkContent('b', { digest: EMPTY, size: 6 }, { digest: HELLO, size: 6 });
    expect(wrong).toThrow(DigestMismatchError);
    expect(wrong).toThrow(`b: digest mismatch: expected ${EMPTY}, got ${HELLO}`);
  });

  test('writeWithDigest writes a new file and reports what it wrote; verifyFile reads it back', async () => {
    const file = path.join(tmp(), 'blob');
    expect(await writeWithDigest(Readable.from([Buffer.from('hello\n')]), file)).toEqual({ digest: HELLO, size: 6 });
    expect(fs.readFileSync(file, 'utf8')).toBe('hello\n');
    await expect(verifyFile(file, { digest: HELLO, size: 6 }, 'blob')).resolves.toBeUndefined();
    await expect(verifyFile(file, { digest: EMPTY, size: 6 }, 'blob')).rejects.toThrow(DigestMismatchError);
    // Never over an existing file.
    await expect(writeWithDigest(Readable.from([Buffer.from('x')]), file)).rejects.toThrow(/EEXIST/);
    expect(fs.readFileSync(file, 'utf8')).toBe('hello\n');
  });
});
