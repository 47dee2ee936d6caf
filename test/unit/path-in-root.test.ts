import * as fs from 'node:fs';
import * as path from 'node:path';
import { SyscallError } from '../../src/errors';
import { readFileInRoot, resolveInRoot } from '../../src/linux/path-in-root';
import { loadNative } from '../../src/native';
import { useTempDir } from '../helpers/fixtures';

/**
 * <tmp>/
 *   secret                    a host file the root must never reach
 *   root/
 *     etc/passwd              "inside"
 *     etc/ssl/certs/
 *     abs -> /etc             absolute: means <root>/etc
 *     up -> ../../../../..    relative, climbs past the root: means <root>
 *     escape -> ../secret     relative, one level past the root: <root>/secret
 *     hostabs -> <tmp>/secret absolute host path: <root><tmp>/secret
 *     dir/rel -> ../etc/passwd
 *     dir/dot -> ./
 *     chain1 -> chain2 -> /abs/ssl
 *     loop1 <-> loop2, self -> self
 *     dangling -> /no/such/thing
 *     sslup -> /etc/ssl/certs/..   ".." after a link applies to its target
 */
describe('resolveInRoot', () => {
  const tmp = useTempDir('tsrun-pir-');
  let root: string;
  const at = (...parts: string[]): string => path.join(root, ...parts);

  beforeAll(() => {
    root = path.join(tmp(), 'root');
    fs.writeFileSync(path.join(tmp(), 'secret'), 'outside');
    fs.mkdirSync(at('etc/ssl/certs'), { recursive: true });
    fs.mkdirSync(at('dir'));
    fs.writeFileSync(at('etc/passwd'), 'inside');
    fs.symlinkSync('/etc', at('abs'));
    fs.symlinkSync('../../../../..', at('up'));
    fs.symlinkSync('../secret', at('escape'));
    fs.symlinkSync(path.join(tmp(), 'secret'), at('hostabs'));
    fs.symlinkSync('../etc/passwd', at('dir/rel'));
    fs.symlinkSync('./', at('dir/dot'));
    fs.symlinkSync('chain2', at('chain1'));
    fs.symlinkSync('/abs/ssl', at('chain2'));
    fs.symlinkSync('loop2', at('loop1'));
    fs.symlinkSync('/loop1', at('loop2'));
    fs.symlinkSync('self', at('self'));
    fs.symlinkSync('/no/such/thing', at('dangling'));
    fs.symlinkSync('/etc/ssl/certs/..', at('sslup'));
  });

  test.each([
    ['/', ''],
    ['', ''],
    ['/etc/passwd', 'etc/passwd'],
    ['etc//./passwd/', 'etc/passwd'],
    ['/../../../etc/passwd', 'etc/passwd'],
    ['/etc/../../..', ''],
    ['/abs/passwd', 'etc/passwd'],
    ['/abs/../abs/ssl', 'etc/ssl'],
    ['/up/etc/passwd', 'etc/passwd'],
    ['/escape', 'secret'],
    ['/dir/rel', 'etc/passwd'],
    ['/dir/dot/dot/dot/rel', 'etc/passwd'],
    ['/chain1/certs', 'etc/ssl/certs'],
    ['/sslup', 'etc/ssl'],
    ['/dangling', 'no/such/thing'],
    ['/dangling/deeper', 'no/such/thing/deeper'],
    ['/missing/../etc', 'etc'],
    ['/etc/passwd/beyond', 'etc/passwd/beyond'],
  ])('%j resolves to <root>/%s', (unsafe, expected) => {
    expect(resolveInRoot(root, unsafe)).toBe(path.join(root, expected));
  });

  test('an absolute host path in a link stays inside the root', () => {
    const resolved = resolveInRoot(root, '/hostabs');
    expect(resolved).toBe(path.join(root, tmp(), 'secret'));
    expect(fs.existsSync(resolved)).toBe(false);
  });

  test('the result never leaves the root, whatever the path', () => {
    const paths = ['/up', '/up/up/up/..', '/escape/..', '/../..', 'abs/../../..', '/hostabs/../..', '/chain1/../../..'];
    for (const p of paths) {
      const resolved = resolveInRoot(root, p);
      expect([p, resolved === root || resolved.startsWith(`${root}/`)]).toEqual([p, true]);
    }
  });

  test('a symlink loop is ELOOP, naming the path', () => {
    for (const p of ['/loop1', '/self', '/etc/../loop2/x']) {
      let caught: unknown;
      try {
        resolveInRoot(root, p);
      } catch (err) {
        caught = err;
      }
      expect(caught).toBeInstanceOf(SyscallError);
      expect(caught).toMatchObject({ step: 'resolve', syscall: 'readlink', code: 'ELOOP', errno: 40, path: p });
    }
  });

  test('40 links in a row are followed, 41 are a loop (the kernel limit)', () => {
    const chain = path.join(tmp(), 'chain-root');
    fs.mkdirSync(path.join(chain, 'end'), { recursive: true });
    for (let i = 0; i < 41; i++) fs.symlinkSync(i === 40 ? '/end' : `/l${i + 1}`, path.join(chain, `l${i}`));
    expect(resolveInRoot(chain, '/l1')).toBe(path.join(chain, 'end'));
    expect(() => resolveInRoot(chain, '/l0')).toThrow(SyscallError);
  });
});

describe('readFileInRoot', () => {
  const tmp = useTempDir('tsrun-pir-read-');

  test('reads through links inside the root; absent files are null', () => {
    const root = tmp();
    fs.mkdirSync(path.join(root, 'etc'));
    fs.writeFileSync(path.join(root, 'etc', 'real'), 'content');
    fs.symlinkSync('/etc/real', path.join(root, 'etc', 'link'));
    fs.symlinkSync('/nowhere', path.join(root, 'etc', 'broken'));
    expect(readFileInRoot(root, '/etc/link')).toBe('content');
    expect(readFileInRoot(root, '/etc/missing')).toBeNull();
    expect(readFileInRoot(root, '/etc/broken')).toBeNull();
    expect(readFileInRoot(root, '/etc/real/under-a-file')).toBeNull();
  });

  test('other errors are not hidden', () => {
    expect(() => readFileInRoot(tmp(), '/')).toThrow(/EISDIR/);
  });

  /** A root whose links point out of it: relative, absolute, and at a file only the host has. */
  const rootWithEscapes = (prefix: string): string => {
    const root = fs.mkdtempSync(path.join(tmp(), prefix));
    fs.mkdirSync(path.join(root, 'etc'));
    fs.writeFileSync(path.join(root, 'etc', 'hostname'), 'the container');
    fs.symlinkSync('../../../../../../etc/hostname', path.join(root, 'etc', 'up'));
    fs.symlinkSync('/etc/hostname', path.join(root, 'etc', 'absolute'));
    fs.symlinkSync('/etc/passwd', path.join(root, 'etc', 'host-passwd'));
    return root;
  };
  const expectReadInside = (root: string): void => {
    expect(readFileInRoot(root, '/etc/up')).toBe('the container');
    expect(readFileInRoot(root, '/etc/absolute')).toBe('the container');
    expect(readFileInRoot(root, '../../etc/hostname')).toBe('the container');
    expect(readFileInRoot(root, '/etc/host-passwd')).toBeNull();
    expect(readFileInRoot(root, '/etc/missing')).toBeNull();
  };

  test("links that point out of the root are read inside it, never the host's files", () => {
    expectReadInside(rootWithEscapes('escape-'));
  });

  test('without openat2 (ENOSYS) the walk of resolveInRoot reads the same files', () => {
    const root = rootWithEscapes('enosys-');
    const openInRoot = jest.spyOn(loadNative(), 'openInRoot').mockImplementation(() => {
      throw Object.assign(new Error('ENOSYS: function not implemented, openat2'), { code: 'ENOSYS' });
    });
    try {
      expectReadInside(root);
      expect(openInRoot).toHaveBeenCalledTimes(5);
    } finally {
      openInRoot.mockRestore();
    }
  });
});
