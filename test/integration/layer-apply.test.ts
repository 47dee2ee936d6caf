import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import * as zlib from 'node:zlib';
import { ContentError } from '../../src/errors';
import { loadNative } from '../../src/native/index';
import { ApplyResult, applyLayer } from '../../src/storage/apply';
import { busyboxRootfs, describeAsRoot, useTempDir } from '../helpers/fixtures';
import { PyEntry, pyTar, tarOf } from '../helpers/images';
import { checkLeaksAfterEach } from '../helpers/leaks';

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/**
 * Everything extraction decides about each path under `root`: type, mode,
 * owner, mtime, content, link target, device numbers and xattrs (but those
 * named in `ignoreXattrs`).
 */
function snapshot(root: string, options: { ignoreXattrs?: string[]; listedDirs?: Set<string> } = {}): Record<string, string> {
  const ignoreXattrs = options.ignoreXattrs ?? [];
  const native = loadNative();
  const result: Record<string, string> = {};
  const visit = (rel: string): void => {
    const full = rel === '' ? root : path.join(root, rel);
    const st = fs.lstatSync(full);
    const type = st.isDirectory() ? 'dir' : st.isSymbolicLink() ? 'link' : st.isFile() ? 'file' : st.isCharacterDevice() ? 'char' : st.isBlockDevice() ? 'block' : st.isFIFO() ? 'fifo' : 'other';
    const xattrs = native
      .llistxattr(full)
      .filter((name) => !ignoreXattrs.includes(name))
      .sort()
      .map((name) => `${name}=${native.lgetxattr(full, name)?.toString('hex')}`);
    const detail = st.isFile() ? `${st.size} ${sha256(fs.readFileSync(full))}` : st.isSymbolicLink() ? `-> ${fs.readlinkSync(full)}` : st.isCharacterDevice() || st.isBlockDevice() ? `${st.rdev}` : '';
    // A directory the archive does not list has the time it was made: two extractions differ there.
    const mtime = st.isDirectory() && options.listedDirs && !options.listedDirs.has(rel) ? '-' : Math.floor(st.mtimeMs / 1000);
    result[rel || '.'] = `${type} ${(st.mode & 0o7777).toString(8)} ${st.uid}:${st.gid} ${mtime} ${detail} ${xattrs.join(',')}`.trim();
    if (st.isDirectory()) for (const child of fs.readdirSync(full).sort()) visit(rel === '' ? child : `${rel}/${child}`);
  };
  visit('');
  return result;
}

async function rejection(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected a rejection');
}

/** A valid VFS_CAP_REVISION_2 security.capability value: cap_net_raw in permitted, effective bit set. */
const CAP_NET_RAW = '\x01\x00\x00\x02\x00\x20\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00';

describeAsRoot('applyLayer', () => {
  const tmp = useTempDir('tsrun-apply-');
  checkLeaksAfterEach();
  let counter = 0;

  /** A new empty dir, like overlay2/<id>/diff. */
  function freshDir(): string {
    const dir = path.join(tmp(), `case${counter++}`, 'diff');
    fs.mkdirSync(dir, { recursive: true });
    return dir;
  }

  function apply(tar: Buffer, dir: string): Promise<ApplyResult> {
    return applyLayer(Readable.from([tar]), dir, { subject: 'layer test' });
  }

  /** GNU tar's extraction of `tar` as root: owners, modes and xattrs kept. */
  function gnuExtract(tar: Buffer): string {
    const dir = freshDir();
    execFileSync('tar', ['-C', dir, '--numeric-owner', '--xattrs', '--xattrs-include=*', '-xpf', '-'], { input: tar, stdio: ['pipe', 'ignore', 'ignore'] });
    return dir;
  }

  const features: PyEntry[] = [
    { name: './', type: 'dir', mode: 0o755, mtime: 1_500_000_000 },
    { name: 'etc', type: 'dir', mtime: 1_500_000_001 },
    { name: 'etc/passwd', data: 'first\n' },
    { name: 'etc/passwd', data: 'root:x:0:0::/root:/bin/sh\n', mtime: 1_500_000_002 },
    { name: 'etc/abs', type: 'symlink', linkname: '/etc/passwd', uid: 1000, gid: 1000, mtime: 1_500_000_003 },
    { name: 'etc/abs-hard', type: 'hardlink', linkname: 'etc/abs' },
    { name: 'bin', type: 'symlink', linkname: 'usr/bin' },
    { name: 'tmp', type: 'dir', mode: 0o1777 },
    { name: 'usr/bin/su', data: 'ELF su', mode: 0o4755 },
    { name: 'usr/bin/su-hard', type: 'hardlink', linkname: 'usr/bin/su' },
    { name: 'usr/bin/wall', data: 'ELF wall', mode: 0o2755, gid: 5 },
    { name: 'usr/bin/ping', data: 'ELF ping', pax: { 'SCHILY.xattr.security.capability': CAP_NET_RAW } },
    { name: 'home/user', type: 'dir', mode: 0o750, uid: 1000, gid: 1000, mtime: 1_500_000_004 },
    { name: 'home/user/notes', data: 'mine', mode: 0o600, uid: 1000, gid: 1000, pax: { 'SCHILY.xattr.user.comment': 'hi' } },
    // Owned by a user, setuid and setgid: chown would clear both if it came after chmod.
    { name: 'home/user/tool', data: 'x', mode: 0o6750, uid: 1000, gid: 1000 },
    { name: 'srv', type: 'dir', mode: 0o700, pax: { 'SCHILY.xattr.trusted.note': 'on a dir' } },
    { name: 'dev/null', type: 'char', mode: 0o666, major: 1, minor: 3 },
    { name: 'dev/loop0', type: 'block', mode: 0o660, gid: 6, major: 7, minor: 0 },
    { name: 'run/initctl', type: 'fifo', mode: 0o600 },
    { name: 'deep/a/b/file', data: 'parents not in the archive' },
    { name: '/abs/file', data: 'leading slash' },
    { name: './dot/file', data: 'leading ./' },
    { name: 'merge', type: 'dir', mode: 0o700, mtime: 1 },
    { name: 'merge/kept', data: 'from the first merge entry' },
    { name: 'merge', type: 'dir', mode: 0o751, mtime: 1_700_000_000 },
    { name: 'replaced', data: 'a file first' },
    { name: 'replaced', type: 'dir' },
    { name: 'replaced/child', data: 'then a directory' },
  ];

  test('files, directories, links, devices, owners, modes, mtimes and xattrs as GNU tar extracts them', async () => {
    const tar = pyTar(features);
    const dir = freshDir();
    const result = await apply(tar, dir);
    expect(result).toEqual({ diffID: `sha256:${sha256(tar)}`, size: tar.length, entries: features.length });
    const listedDirs = new Set(features.filter((e) => e.type === 'dir').map((e) => e.name.replace(/^\.?\/|\/$/g, '')));
    expect(snapshot(dir, { listedDirs })).toEqual(snapshot(gnuExtract(tar), { listedDirs }));

    // Spot checks, in case both got it wrong the same way.
    const st = (rel: string): fs.Stats => fs.lstatSync(path.join(dir, rel));
    expect(st('home/user/tool').mode & 0o7777).toBe(0o6750);
    expect(st('home/user/tool').uid).toBe(1000);
    expect(st('usr/bin/su').ino).toBe(st('usr/bin/su-hard').ino);
    expect(st('etc/abs').ino).toBe(st('etc/abs-hard').ino);
    expect(fs.readlinkSync(path.join(dir, 'etc/abs'))).toBe('/etc/passwd');
    expect(st('etc/abs').uid).toBe(1000);
    expect(st('dev/null').rdev).toBe(st('/dev/null').rdev);
    expect(st('run/initctl').isFIFO()).toBe(true);
    expect(st('tmp').mode & 0o7777).toBe(0o1777);
    expect(st('etc').mtimeMs).toBe(1_500_000_001_000);
    expect(st('').mtimeMs).toBe(1_500_000_000_000);
    expect(st('deep/a').mode & 0o7777).toBe(0o755);
    expect(st('merge').mode & 0o7777).toBe(0o751);
    expect(fs.readFileSync(path.join(dir, 'merge/kept'), 'utf8')).toBe('from the first merge entry');
    expect(fs.readFileSync(path.join(dir, 'etc/passwd'), 'utf8')).toBe('root:x:0:0::/root:/bin/sh\n');
    expect(fs.readFileSync(path.join(dir, 'abs/file'), 'utf8')).toBe('leading slash');
    expect(loadNative().lgetxattr(path.join(dir, 'usr/bin/ping'), 'security.capability')).toEqual(Buffer.from(CAP_NET_RAW, 'latin1'));
  });

  test('the busybox root filesystem: the same tree as GNU tar extracts', async () => {
    const tar = tarOf(busyboxRootfs());
    const dir = freshDir();
    const result = await apply(tar, dir);
    expect(result.diffID).toBe(`sha256:${sha256(tar)}`);
    expect(snapshot(dir)).toEqual(snapshot(gnuExtract(tar)));
  });

  test('OCI whiteouts become overlay whiteouts', async () => {
    const dir = freshDir();
    await apply(
      pyTar([
        { name: 'etc/.wh.motd', uid: 1000, gid: 1000 },
        { name: 'var/cache/.wh..wh..opq' },
        { name: 'var/cache/kept', data: 'new content of an opaque dir' },
        { name: 'opt', type: 'dir' },
        { name: 'opt/app', data: 'in this layer, then deleted by it' },
        { name: 'opt/.wh.app' },
        // AUFS bookkeeping, meaningless to overlay.
        { name: '.wh..wh.plnk', type: 'dir' },
        { name: '.wh..wh.plnk/123.456', data: 'x' },
      ]),
      dir,
    );
    const motd = fs.lstatSync(path.join(dir, 'etc/motd'));
    expect(motd.isCharacterDevice()).toBe(true);
    expect(motd.rdev).toBe(0);
    expect([motd.uid, motd.gid]).toEqual([1000, 1000]);
    expect(fs.existsSync(path.join(dir, 'etc/.wh.motd'))).toBe(false);
    expect(loadNative().lgetxattr(path.join(dir, 'var/cache'), 'trusted.overlay.opaque')?.toString()).toBe('y');
    expect(fs.readdirSync(path.join(dir, 'var/cache'))).toEqual(['kept']);
    expect(fs.lstatSync(path.join(dir, 'opt/app')).isCharacterDevice()).toBe(true);
    expect(fs.readdirSync(dir).sort()).toEqual(['etc', 'opt', 'var']);
  });

  test('a later entry replaces an earlier one, a directory with its content', async () => {
    const dir = freshDir();
    await apply(
      pyTar([
        { name: 'gone', type: 'dir' },
        { name: 'gone/inner', data: 'removed with its directory' },
        { name: 'gone', type: 'symlink', linkname: '/tmp' },
        { name: 'was-link', type: 'symlink', linkname: '/etc' },
        { name: 'was-link', type: 'dir' },
        { name: 'was-link/file', data: 'in a real directory' },
        { name: 'dev', type: 'char', major: 1, minor: 3 },
        { name: 'dev', data: 'now a file' },
      ]),
      dir,
    );
    expect(fs.readlinkSync(path.join(dir, 'gone'))).toBe('/tmp');
    expect(fs.lstatSync(path.join(dir, 'was-link')).isDirectory()).toBe(true);
    expect(fs.readFileSync(path.join(dir, 'was-link/file'), 'utf8')).toBe('in a real directory');
    expect(fs.readFileSync(path.join(dir, 'dev'), 'utf8')).toBe('now a file');
  });

  test('xattrs a layer may not set are skipped: overlay redirects, unknown namespaces', async () => {
    const dir = freshDir();
    await apply(
      pyTar([
        { name: 'a', pax: { 'SCHILY.xattr.trusted.overlay.redirect': '/etc', 'SCHILY.xattr.trusted.overlay.opaque': 'y', 'SCHILY.xattr.system.nfs4_acl': 'x', 'SCHILY.xattr.user.ok': '1' } },
      ]),
      dir,
    );
    expect(loadNative().llistxattr(path.join(dir, 'a'))).toEqual(['user.ok']);
  });

  describe('gzip, zstd or none: the same tree and the diff ID of the uncompressed tar', () => {
    let tar: Buffer;
    let tarFile: string;
    beforeAll(() => {
      tar = tarOf(busyboxRootfs());
      tarFile = path.join(tmp(), 'busybox.tar');
      fs.writeFileSync(tarFile, tar);
    });

    test.each([
      ['none', (file: string) => fs.readFileSync(file)],
      ['gzip', (file: string) => execFileSync('gzip', ['-c', file], { maxBuffer: 1 << 28 })],
      ['zstd', (file: string) => execFileSync('zstd', ['-q', '-c', file], { maxBuffer: 1 << 28 })],
    ])('%s', async (_kind, encode) => {
      const blob = path.join(tmp(), `blob-${counter}`);
      fs.writeFileSync(blob, encode(tarFile));
      const dir = freshDir();
      const result = await applyLayer(fs.createReadStream(blob), dir, { subject: 'layer test' });
      const sha256sum = execFileSync('sha256sum', [tarFile], { encoding: 'utf8' }).split(' ')[0];
      expect(result.diffID).toBe(`sha256:${sha256sum}`);
      expect(result.size).toBe(tar.length);
      expect(fs.readdirSync(path.join(dir, 'bin')).length).toBeGreaterThan(10);
    });
  });

  describe('damaged input is refused', () => {
    let tar: Buffer;
    beforeAll(() => {
      tar = tarOf(busyboxRootfs());
    });

    test.each([
      [
        'corrupt gzip',
        () => {
          const gz = zlib.gzipSync(tar);
          // The first deflate block: final, of the reserved type 3.
          gz[10] = 0x07;
          return gz;
        },
        /^layer test: corrupt gzip stream: invalid block type$/,
      ],
      [
        // Found only at the very end, once every entry has been written.
        'a gzip checksum mismatch',
        () => {
          const gz = zlib.gzipSync(tar);
          gz[gz.length - 8] ^= 0xff;
          return gz;
        },
        /^layer test: corrupt gzip stream: incorrect data check$/,
      ],
      ['truncated gzip', () => zlib.gzipSync(tar).subarray(0, 20_000), /^layer test: corrupt gzip stream: unexpected end of file$/],
      ['truncated zstd', () => execFileSync('zstd', ['-q', '-c'], { input: tar, maxBuffer: 1 << 28 }).subarray(0, 20_000), /^layer test: corrupt zstd stream: /],
      ['truncated tar', () => tar.subarray(0, Math.floor(tar.length / 2) + 100), /^layer test: .*the archive ends inside /],
      ['not a tar', () => Buffer.alloc(4096, 'garbage'), /^layer test: bad header checksum; not a tar archive \(at byte 0\)$/],
    ])('%s', async (_name, make, message) => {
      const err = await rejection(apply(make(), freshDir()));
      expect(err).toBeInstanceOf(ContentError);
      expect(err.message).toMatch(message);
    });
  });

  describe('entries that would write outside the layer are refused', () => {
    /** A directory beside the layer that an attack aims at, its content checked after each attempt. */
    let sentinel: string;
    let outsideFile: string;
    beforeAll(() => {
      sentinel = path.join(tmp(), 'sentinel');
      fs.mkdirSync(sentinel);
      outsideFile = path.join(tmp(), 'outside');
      fs.writeFileSync(outsideFile, 'host data');
    });

    function hostState(): unknown {
      return { sentinel: snapshot(sentinel), outside: snapshot(outsideFile), shadow: fs.statSync('/etc/shadow').nlink, passwd: fs.statSync('/etc/passwd').mtimeMs };
    }

    // The layer is <tmp>/caseN/diff: `../../sentinel` is the sentinel.
    test.each<[string, () => PyEntry[], RegExp]>([
      ['a name with .. out of the root', () => [{ name: '../../sentinel/x', data: 'escaped' }], /^layer test: \.\.\/\.\.\/sentinel\/x: the path escapes the layer$/],
      ['.. hidden inside a name', () => [{ name: 'a/b/../../../x', data: 'escaped' }], /the path escapes the layer$/],
      [
        'a write through an absolute symlink',
        () => [
          { name: 'evil', type: 'symlink', linkname: sentinel },
          { name: 'evil/passwd', data: 'owned' },
        ],
        /^layer test: evil\/passwd: its parent evil is a symlink: writing through it is refused$/,
      ],
      [
        'a write through a relative symlink to a directory outside',
        () => [
          { name: 'up', type: 'symlink', linkname: '../../sentinel' },
          { name: 'up/x', data: 'owned' },
        ],
        /up\/x: its parent up is a symlink/,
      ],
      [
        'a directory swapped for a symlink between two writes',
        () => [
          { name: 'd/f', data: 'fine' },
          { name: 'd', type: 'symlink', linkname: sentinel },
          { name: 'd/g', data: 'owned' },
        ],
        /d\/g: its parent d is a symlink/,
      ],
      ['a whiteout through a symlink', () => [{ name: 'evil', type: 'symlink', linkname: sentinel }, { name: 'evil/.wh.x' }], /evil\/\.wh\.x: its parent evil is a symlink/],
      ['an opaque marker through a symlink', () => [{ name: 'evil', type: 'symlink', linkname: sentinel }, { name: 'evil/.wh..wh..opq' }], /its parent evil is a symlink/],
      ['a hard link to a file outside', () => [{ name: 'hard', type: 'hardlink', linkname: '../outside' }], /^layer test: hard: the hard link's target "\.\.\/outside" is outside the layer$/],
      ['a hard link to /etc/shadow', () => [{ name: 'shadow', type: 'hardlink', linkname: '/etc/shadow' }], /^layer test: shadow: the hard link's target "\/etc\/shadow" is not an earlier entry of this layer$/],
      [
        'a hard link through a symlink',
        () => [
          { name: 'etc', type: 'symlink', linkname: '/etc' },
          { name: 'shadow', type: 'hardlink', linkname: 'etc/shadow' },
        ],
        /shadow: the hard link's target goes through the symlink etc$/,
      ],
      ['a hard link to a later entry', () => [{ name: 'early', type: 'hardlink', linkname: 'late' }, { name: 'late', data: 'x' }], /early: the hard link's target "late" is not an earlier entry/],
    ])('%s', async (_name, entries, message) => {
      const before = hostState();
      const err = await rejection(apply(pyTar(entries()), freshDir()));
      expect(err).toBeInstanceOf(ContentError);
      expect(err.message).toMatch(message);
      expect(hostState()).toEqual(before);
    });

    test('absolute symlinks are created as they are, never followed', async () => {
      const dir = freshDir();
      await apply(pyTar([{ name: 'etc', type: 'symlink', linkname: '/etc' }, { name: 'shadow', type: 'symlink', linkname: '/etc/shadow' }]), dir);
      expect(fs.readlinkSync(path.join(dir, 'etc'))).toBe('/etc');
      expect(fs.readlinkSync(path.join(dir, 'shadow'))).toBe('/etc/shadow');
    });
  });
});
