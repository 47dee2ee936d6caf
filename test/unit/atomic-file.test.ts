import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeFileAtomic } from '../../src/util/atomic-file';
import { useTempDir } from '../helpers/fixtures';

// The module's own fs: `import * as` gives this file a copy that a spy would miss.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const nodeFs = require('node:fs') as typeof fs;

describe('writeFileAtomic', () => {
  const base = useTempDir('tsrun-atomic-');
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(base(), 'case-'));
  });
  const tmp = (): string => dir;

  test('replaces the file whole, with the mode asked for, and leaves no temp file', () => {
    const file = path.join(tmp(), 'state.json');
    writeFileAtomic(file, 'first', { durable: false });
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    writeFileAtomic(file, Buffer.from('second'), { durable: true, mode: 0o644 });
    expect(fs.readFileSync(file, 'utf8')).toBe('second');
    expect(fs.statSync(file).mode & 0o777).toBe(0o644);
    expect(fs.readdirSync(tmp())).toEqual(['state.json']);
  });

  test('each write of a process has its own temp name: pid, a token drawn once, a counter', () => {
    const file = path.join(tmp(), 'f');
    const opened: string[] = [];
    const realOpen = nodeFs.openSync;
    const openSync = jest.spyOn(nodeFs, 'openSync').mockImplementation(((name: fs.PathLike, ...rest: [fs.OpenMode, fs.Mode]) => {
      opened.push(String(name));
      return realOpen(name, ...rest);
    }) as typeof fs.openSync);
    try {
      writeFileAtomic(file, 'a', { durable: false });
      writeFileAtomic(file, 'b', { durable: false });
    } finally {
      openSync.mockRestore();
    }
    const names = opened.filter((name) => name.startsWith(`${file}.`));
    expect(names).toHaveLength(2);
    const [first, second] = names.map((name) => path.basename(name).split('.'));
    expect(first).toEqual(['f', String(process.pid), expect.stringMatching(/^[0-9a-f]{8}$/), expect.stringMatching(/^\d+$/), 'tmp']);
    expect(second[2]).toBe(first[2]);
    expect(Number(second[3])).toBe(Number(first[3]) + 1);
  });

  test('a rename that fails removes the temp file and throws', () => {
    const dir = path.join(tmp(), 'taken');
    fs.mkdirSync(path.join(dir, 'inside'), { recursive: true });
    expect(() => writeFileAtomic(dir, 'x', { durable: false })).toThrow(/EISDIR|ENOTEMPTY|EEXIST/);
    expect(fs.readdirSync(tmp())).toEqual(['taken']);
  });
});
