import * as fs from 'node:fs';
import * as path from 'node:path';
import { loadNative } from '../../src/native';
import { useTempDir } from '../helpers/fixtures';

/** native/file_map.cc: the launcher's reads of the bundle and its code cache. */
describe('readOneByteString and mapReadOnly', () => {
  const tmp = useTempDir('tsrun-file-map-');
  const native = loadNative();

  test('give the bytes of the file: a one-byte string, a read-only view', () => {
    const bytes = Buffer.alloc(300_000);
    for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 7) % 256;
    const file = path.join(tmp(), 'data');
    fs.writeFileSync(file, bytes);
    const text = native.readOneByteString(file);
    expect(text.length).toBe(bytes.length);
    expect(text).toBe(bytes.toString('latin1'));
    const mapped = native.mapReadOnly(file);
    expect(mapped).toBeInstanceOf(Uint8Array);
    expect(Buffer.from(mapped.buffer, mapped.byteOffset, mapped.byteLength).equals(bytes)).toBe(true);
  });

  test('ASCII text reads the same as fs does; short and empty files too', () => {
    for (const content of ['', 'x', '(function () {\n  return "tsrun";\n})\n']) {
      const file = path.join(tmp(), `text-${content.length}`);
      fs.writeFileSync(file, content);
      expect(native.readOneByteString(file)).toBe(fs.readFileSync(file, 'utf8'));
      expect(Buffer.from(native.mapReadOnly(file)).toString()).toBe(content);
    }
  });

  test('what cannot be read is an fs-style error naming the call and the path', () => {
    const missing = path.join(tmp(), 'missing');
    expect(() => native.readOneByteString(missing)).toThrow(expect.objectContaining({ code: 'ENOENT', syscall: 'open', path: missing }));
    expect(() => native.mapReadOnly(missing)).toThrow(expect.objectContaining({ code: 'ENOENT', syscall: 'open', path: missing }));
    expect(() => native.mapReadOnly(tmp())).toThrow(expect.objectContaining({ code: 'EISDIR', path: tmp() }));
    expect(() => (native.readOneByteString as (p?: unknown) => string)(42)).toThrow(/Usage: readOneByteString\(path: string\)/);
  });
});
