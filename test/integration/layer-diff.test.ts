import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { ContentError, SyscallError } from '../../src/errors';
import { MNT_DETACH } from '../../src/linux/mounts';
import { loadNative } from '../../src/native/index';
import { applyLayer } from '../../src/storage/apply';
import { diffLayer, listChanges } from '../../src/storage/diff';
import { readTar } from '../../src/storage/tar/reader';
import { describeAsRoot, useTempDir } from '../helpers/fixtures';
import { checkLeaksAfterEach } from '../helpers/leaks';

async function collect(stream: AsyncIterable<Buffer>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const chunk of stream) parts.push(chunk);
  return Buffer.concat(parts);
}

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/** overlayfs's bookkeeping xattrs (origin, impure...) that a layer does not carry; opaque it does. */
function isOverlayBookkeeping(name: string): boolean {
  return name.startsWith('trusted.overlay.') && name !== 'trusted.overlay.opaque';
}

/** Type, mode, owner, mtime (seconds), content, link, device and xattrs of every path under `root` but the root itself. */
function snapshot(root: string): Record<string, string> {
  const native = loadNative();
  const result: Record<string, string> = {};
  const visit = (rel: string): void => {
    for (const child of fs.readdirSync(rel === '' ? root : path.join(root, rel)).sort()) {
      const name = rel === '' ? child : `${rel}/${child}`;
      const full = path.join(root, name);
      const st = fs.lstatSync(full);
      if (st.isSocket()) continue;
      const xattrs = native
        .llistxattr(full)
        .filter((x) => !isOverlayBookkeeping(x))
        .sort()
        .map((x) => `${x}=${native.lgetxattr(full, x)?.toString('hex')}`);
      const detail = st.isFile() ? sha256(fs.readFileSync(full)) : st.isSymbolicLink() ? fs.readlinkSync(full) : String(st.rdev);
      result[name] = `${(st.mode & 0o170000).toString(8)} ${(st.mode & 0o7777).toString(8)} ${st.uid}:${st.gid} ${Math.floor(st.mtimeMs / 1000)} ${detail} ${xattrs.join(',')}`;
      if (st.isDirectory()) visit(name);
    }
  };
  visit('');
  return result;
}

describeAsRoot('diffLayer and listChanges on an overlay upper dir', () => {
  const tmp = useTempDir('tsrun-diff-');
  checkLeaksAfterEach();
  const mounted: string[] = [];
  afterEach(() => {
    for (const target of mounted.splice(0)) loadNative().umount2(target, MNT_DETACH);
  });

  let lowerTop: string;
  let lowerBottom: string;

  beforeAll(() => {
    const native = loadNative();
    lowerBottom = path.join(tmp(), 'lower-bottom');
    const write = (root: string, name: string, content: string): void => {
      fs.mkdirSync(path.dirname(path.join(root, name)), { recursive: true });
      fs.writeFileSync(path.join(root, name), content);
    };
    for (const [name, content] of Object.entries({
      'etc/passwd': 'root:x:0:0::/root:/bin/sh\n',
      'etc/motd': 'welcome\n',
      'etc/hosts': '127.0.0.1 localhost\n',
      'usr/share/doc/a/README': 'a',
      'usr/share/doc/b': 'b',
      'usr/bin/tool': 'ELF',
      'opt/keep': 'untouched',
    })) {
      write(lowerBottom, name, content);
    }
    lowerTop = path.join(tmp(), 'lower-top');
    write(lowerTop, 'usr/share/doc/from-top', 'top');
    // The top layer deleted /etc/hosts.
    fs.mkdirSync(path.join(lowerTop, 'etc'));
    native.mknod(path.join(lowerTop, 'etc', 'hosts'), fs.constants.S_IFCHR, 0, 0);
  });

  /** A container's upper dir after a series of changes made through an overlay mount. */
  function changedUpper(name: string): string {
    const native = loadNative();
    const base = path.join(tmp(), name);
    const [upper, work, merged] = ['upper', 'work', 'merged'].map((d) => path.join(base, d));
    for (const dir of [upper, work, merged]) fs.mkdirSync(dir, { recursive: true });
    native.mount('overlay', merged, 'overlay', 0, `lowerdir=${lowerTop}:${lowerBottom},upperdir=${upper},workdir=${work}`);
    mounted.push(merged);
    const m = (rel: string): string => path.join(merged, rel);

    fs.writeFileSync(m('new.txt'), 'added\n');
    fs.appendFileSync(m('etc/passwd'), 'user:x:1000:1000::/home/user:/bin/sh\n');
    fs.rmSync(m('etc/motd'));
    fs.writeFileSync(m('etc/hosts'), '10.0.0.1 recreated\n');
    // rm -rf then mkdir: overlay makes the new directory opaque.
    fs.rmSync(m('usr/share/doc'), { recursive: true });
    fs.mkdirSync(m('usr/share/doc'));
    fs.writeFileSync(m('usr/share/doc/c'), 'c');
    fs.chmodSync(m('usr/bin/tool'), 0o4755);
    fs.mkdirSync(m('home/user'), { recursive: true });
    fs.writeFileSync(m('home/user/data'), Buffer.alloc(300_000, 'd'));
    fs.chownSync(m('home/user/data'), 1000, 1000);
    fs.chownSync(m('home/user'), 1000, 1000);
    fs.linkSync(m('home/user/data'), m('home/user/data-link'));
    fs.linkSync(m('home/user/data'), m('home/user/a-link'));
    fs.symlinkSync('/etc/passwd', m('home/user/passwd'));
    fs.lchownSync(m('home/user/passwd'), 1000, 1000);
    native.mknod(m('home/user/fifo'), fs.constants.S_IFIFO | 0o600, 0, 0);
    native.mknod(m('home/user/null'), fs.constants.S_IFCHR, 1, 3);
    fs.chmodSync(m('home/user/null'), 0o666);
    native.lsetxattr(m('home/user/data'), 'user.origin', Buffer.from('test'), 0);
    execFileSync('python3', ['-c', 'import socket, sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])', m('home/user/socket')]);
    fs.utimesSync(m('new.txt'), 1_700_000_000.75, 1_700_000_000.75);

    loadNative().umount2(merged, MNT_DETACH);
    mounted.pop();
    return upper;
  }

  test('whiteouts, opaque dirs, hard links, xattrs; sorted; no socket and no overlay bookkeeping', async () => {
    const upper = changedUpper('listing');
    const names: string[] = [];
    const headers = new Map<string, { type: string; linkname: string; size: number; mode: number; uid: number; mtime: number; xattrs: string[] }>();
    await readTar(
      diffLayer(upper),
      (header) => {
        names.push(header.name);
        headers.set(header.name, { type: header.type, linkname: header.linkname, size: header.size, mode: header.mode, uid: header.uid, mtime: header.mtime, xattrs: [...header.xattrs.keys()] });
      },
      { subject: 'diff' },
    );
    const sorted = [...names].sort((a, b) => Buffer.compare(Buffer.from(a.replace(/\/$/, '')), Buffer.from(b.replace(/\/$/, ''))));
    expect(names).toEqual(sorted);
    expect(names).toEqual(
      expect.arrayContaining(['etc/', 'etc/.wh.motd', 'etc/hosts', 'etc/passwd', 'new.txt', 'usr/share/doc/', 'usr/share/doc/.wh..wh..opq', 'usr/share/doc/c', 'usr/bin/tool', 'home/user/fifo', 'home/user/null']),
    );
    expect(names.some((n) => n.includes('socket'))).toBe(false);
    expect(names).not.toContain('opt/');
    expect(headers.get('etc/.wh.motd')).toMatchObject({ type: 'file', size: 0 });
    expect(headers.get('usr/share/doc/.wh..wh..opq')).toMatchObject({ type: 'file', size: 0 });
    // The first name in byte order is the file; the others link to it.
    expect(headers.get('home/user/a-link')).toMatchObject({ type: 'file', size: 300_000, uid: 1000, xattrs: ['user.origin'] });
    expect(headers.get('home/user/data')).toMatchObject({ type: 'hardlink', linkname: 'home/user/a-link' });
    expect(headers.get('home/user/data-link')).toMatchObject({ type: 'hardlink', linkname: 'home/user/a-link' });
    expect(headers.get('home/user/passwd')).toMatchObject({ type: 'symlink', linkname: '/etc/passwd', uid: 1000 });
    expect(headers.get('usr/bin/tool')?.mode).toBe(0o4755);
    expect(headers.get('new.txt')?.mtime).toBe(1_700_000_000);
    for (const [name, header] of headers) expect([name, header.xattrs.filter((x) => x.startsWith('trusted.overlay.'))]).toEqual([name, []]);

    // GNU tar agrees.
    const listing = execFileSync('tar', ['--numeric-owner', '-tvf', '-'], { input: await collect(diffLayer(upper)), encoding: 'utf8' });
    expect(listing).toMatch(/^hrw-r--r-- 1000\/1000 +0 .* home\/user\/data link to home\/user\/a-link$/m);
    expect(listing).toMatch(/^prw------- 0\/0 .* home\/user\/fifo$/m);
    expect(listing).toMatch(/^crw-rw-rw- 0\/0 +1,3 .* home\/user\/null$/m);
  });

  test('two diffs of the same tree are byte-identical', async () => {
    const upper = changedUpper('twice');
    const first = await collect(diffLayer(upper));
    const second = await collect(diffLayer(upper));
    expect(sha256(first)).toBe(sha256(second));
  });

  test('the diff applied again reproduces the upper dir', async () => {
    const upper = changedUpper('roundtrip');
    const tar = await collect(diffLayer(upper));
    const again = path.join(tmp(), 'roundtrip-applied');
    fs.mkdirSync(again);
    const result = await applyLayer(Readable.from([tar]), again, { subject: 'diff' });
    expect(result.diffID).toBe(`sha256:${sha256(tar)}`);
    expect(snapshot(again)).toEqual(snapshot(upper));
    expect(fs.statSync(path.join(again, 'home/user/data')).ino).toBe(fs.statSync(path.join(again, 'home/user/data-link')).ino);
    // And a diff of that is the same layer.
    expect(sha256(await collect(diffLayer(again)))).toBe(sha256(tar));
  });

  test('listChanges: what docker diff would show', () => {
    const upper = changedUpper('changes');
    expect(listChanges(upper, [lowerTop, lowerBottom])).toEqual([
      { kind: 'C', path: '/etc' },
      { kind: 'A', path: '/etc/hosts' },
      { kind: 'D', path: '/etc/motd' },
      { kind: 'C', path: '/etc/passwd' },
      { kind: 'A', path: '/home' },
      { kind: 'A', path: '/home/user' },
      { kind: 'A', path: '/home/user/a-link' },
      { kind: 'A', path: '/home/user/data' },
      { kind: 'A', path: '/home/user/data-link' },
      { kind: 'A', path: '/home/user/fifo' },
      { kind: 'A', path: '/home/user/null' },
      { kind: 'A', path: '/home/user/passwd' },
      { kind: 'A', path: '/home/user/socket' },
      { kind: 'A', path: '/new.txt' },
      { kind: 'C', path: '/usr' },
      { kind: 'C', path: '/usr/bin' },
      { kind: 'C', path: '/usr/bin/tool' },
      { kind: 'C', path: '/usr/share' },
      { kind: 'C', path: '/usr/share/doc' },
      { kind: 'D', path: '/usr/share/doc/a' },
      { kind: 'D', path: '/usr/share/doc/b' },
      { kind: 'A', path: '/usr/share/doc/c' },
      { kind: 'D', path: '/usr/share/doc/from-top' },
    ]);
  });

  test('an upper dir with overlay redirects cannot be exported', async () => {
    const upper = path.join(tmp(), 'redirected');
    fs.mkdirSync(path.join(upper, 'moved'), { recursive: true });
    loadNative().lsetxattr(path.join(upper, 'moved'), 'trusted.overlay.redirect', Buffer.from('/old'), 0);
    const err = await collect(diffLayer(upper)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ContentError);
    expect((err as Error).message).toMatch(/moved: has trusted\.overlay\.redirect: .*redirect_dir=off/);
  });

  test('a missing upper dir is a SyscallError', async () => {
    const err = await collect(diffLayer(path.join(tmp(), 'nope'))).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SyscallError);
    expect((err as SyscallError).code).toBe('ENOENT');
    expect(() => listChanges(path.join(tmp(), 'nope'), [])).toThrow(SyscallError);
  });
});
