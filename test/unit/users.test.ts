import * as fs from 'node:fs';
import * as path from 'node:path';
import { NotFoundError, ValidationError } from '../../src/errors';
import { parseGroup, parsePasswd, resolveUser } from '../../src/linux/users';
import { useTempDir } from '../helpers/fixtures';

const PASSWD = `root:x:0:0:root:/root:/bin/sh
# a comment:x:1:1::/:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin

app:x:1000:1000:App User,,,:/home/app:/bin/bash
nohome:x:1001:100:::/bin/sh
broken:x:notanumber:0::/:/bin/sh
short:x:5
svc:x:2000:2000::/srv:/sbin/nologin
`;

const GROUP = `root:x:0:
wheel:x:10:root,app
users:x:100:app, nohome
app:x:1000:
audio:x:29:app,svc
tty:x:5:
svc:x:2000:
dup:x:29:app
bad:x:zz:app
`;

function writeRoot(dir: string, files: Record<string, string>): string {
  fs.mkdirSync(dir, { recursive: true });
  for (const [name, content] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(dir, name)), { recursive: true });
    fs.writeFileSync(path.join(dir, name), content);
  }
  return dir;
}

describe('parsePasswd and parseGroup', () => {
  test('skip blank lines, comments and malformed entries', () => {
    expect(parsePasswd(PASSWD).map((e) => e.name)).toEqual(['root', 'daemon', 'app', 'nohome', 'svc']);
    expect(parsePasswd(PASSWD)[2]).toEqual({ name: 'app', uid: 1000, gid: 1000, home: '/home/app', shell: '/bin/bash' });
  });

  test('an empty home is /', () => {
    expect(parsePasswd(PASSWD).find((e) => e.name === 'nohome')?.home).toBe('/');
  });

  test('members are split on commas and trimmed', () => {
    const groups = parseGroup(GROUP);
    expect(groups.map((g) => g.name)).toEqual(['root', 'wheel', 'users', 'app', 'audio', 'tty', 'svc', 'dup']);
    expect(groups.find((g) => g.name === 'users')?.members).toEqual(['app', 'nohome']);
    expect(groups.find((g) => g.name === 'root')?.members).toEqual([]);
  });

  test('ids above 2^32-2 are not ids', () => {
    expect(parsePasswd('big:x:4294967295:0::/:/bin/sh\nok:x:4294967294:0::/:/bin/sh\n').map((e) => e.name)).toEqual(['ok']);
  });
});

describe('resolveUser', () => {
  const tmp = useTempDir('tsrun-users-');
  let root: string;
  beforeAll(() => {
    root = writeRoot(path.join(tmp(), 'rootfs'), { 'etc/passwd': PASSWD, 'etc/group': GROUP });
  });

  test('no user is root, from the passwd file', () => {
    expect(resolveUser(root, undefined)).toEqual({ uid: 0, gid: 0, additionalGids: [10], home: '/root' });
    expect(resolveUser(root, '')).toEqual(resolveUser(root, undefined));
  });

  test('a name gives its uid, primary gid, home and supplementary groups', () => {
    // wheel(10), users(100), audio(29) and dup(29, same gid once); not its own primary group.
    expect(resolveUser(root, 'app')).toEqual({ uid: 1000, gid: 1000, additionalGids: [10, 100, 29], home: '/home/app' });
    expect(resolveUser(root, ' svc ')).toEqual({ uid: 2000, gid: 2000, additionalGids: [29], home: '/srv' });
  });

  test('a uid in the passwd file resolves like its name', () => {
    expect(resolveUser(root, '1000')).toEqual(resolveUser(root, 'app'));
  });

  test('a uid not in the passwd file is allowed, with gid 0 and home /', () => {
    expect(resolveUser(root, '4242')).toEqual({ uid: 4242, gid: 0, additionalGids: [], home: '/' });
    expect(resolveUser(root, '4242:77')).toEqual({ uid: 4242, gid: 77, additionalGids: [], home: '/' });
    expect(resolveUser(root, '4294967294').uid).toBe(4294967294);
  });

  test('uid:gid and name:group', () => {
    expect(resolveUser(root, '1000:5')).toEqual({ uid: 1000, gid: 5, additionalGids: [10, 100, 29], home: '/home/app' });
    expect(resolveUser(root, 'app:tty')).toMatchObject({ uid: 1000, gid: 5 });
    expect(resolveUser(root, '0:users')).toMatchObject({ uid: 0, gid: 100 });
    // A gid that need not exist in the group file.
    expect(resolveUser(root, 'app:31337')).toMatchObject({ gid: 31337 });
  });

  test('the chosen group is not repeated among the supplementary ones', () => {
    expect(resolveUser(root, 'app:wheel')).toEqual({ uid: 1000, gid: 10, additionalGids: [100, 29], home: '/home/app' });
  });

  test('an unknown user is a NotFoundError naming the user', () => {
    const attempt = (): unknown => resolveUser(root, 'nobody-here');
    expect(attempt).toThrow(NotFoundError);
    expect(attempt).toThrow('unable to find user nobody-here: no matching entries in passwd file');
    try {
      attempt();
    } catch (err) {
      expect(err).toMatchObject({ kind: 'user', what: 'nobody-here', code: 'ENOENT' });
    }
  });

  test('an unknown group is a NotFoundError naming the group', () => {
    expect(() => resolveUser(root, 'app:nogroup')).toThrow(NotFoundError);
    expect(() => resolveUser(root, 'app:nogroup')).toThrow('unable to find group nogroup: no matching entries in group file');
  });

  test.each(['a:b:c', ':0', '0:', ':'])('%j is not of the form name|uid[:group|gid]', (spec) => {
    expect(() => resolveUser(root, spec)).toThrow(ValidationError);
    expect(() => resolveUser(root, spec)).toThrow(/^user: .* is not of the form name\|uid\[:group\|gid\]$/);
  });

  test('ids beyond 2^32-2 are out of range, for the uid as for the gid', () => {
    expect(() => resolveUser(root, '0:4294967295')).toThrow(new ValidationError('user', 'gid 4294967295 is out of range'));
    expect(() => resolveUser(root, '4294967295')).toThrow(new ValidationError('user', 'uid 4294967295 is out of range'));
    expect(() => resolveUser(root, '99999999999999999999')).toThrow(ValidationError);
  });

  test('without /etc/passwd and /etc/group: uids work, names do not', () => {
    const empty = writeRoot(path.join(tmp(), 'empty'), {});
    expect(resolveUser(empty, undefined)).toEqual({ uid: 0, gid: 0, additionalGids: [], home: '/' });
    expect(resolveUser(empty, '12:34')).toEqual({ uid: 12, gid: 34, additionalGids: [], home: '/' });
    expect(() => resolveUser(empty, 'root')).toThrow(NotFoundError);
    expect(() => resolveUser(empty, '0:root')).toThrow(NotFoundError);
  });

  test('a symlinked /etc/passwd is read inside the root, not on the host', () => {
    const linked = writeRoot(path.join(tmp(), 'linked'), {
      'data/passwd': 'root:x:0:0::/root:/bin/sh\nonlyhere:x:777:778::/here:/bin/sh\n',
      'data/group': 'g:x:779:onlyhere\n',
    });
    fs.mkdirSync(path.join(linked, 'etc'));
    fs.symlinkSync('/data/passwd', path.join(linked, 'etc', 'passwd'));
    fs.symlinkSync('../../../../../data/group', path.join(linked, 'etc', 'group'));
    expect(resolveUser(linked, 'onlyhere')).toEqual({ uid: 777, gid: 778, additionalGids: [779], home: '/here' });
  });

  test('a passwd link that points out of the root does not reach the host file', () => {
    const outside = writeRoot(path.join(tmp(), 'outside'), { passwd: 'hostonly:x:4444:4444::/:/bin/sh\n' });
    for (const target of ['../../outside/passwd', path.join(outside, 'passwd')]) {
      const root2 = path.join(tmp(), `escape-${target.startsWith('/') ? 'abs' : 'rel'}`);
      fs.mkdirSync(path.join(root2, 'etc'), { recursive: true });
      fs.symlinkSync(target, path.join(root2, 'etc', 'passwd'));
      // Read naively, the link would find the user.
      expect(fs.readFileSync(path.join(root2, 'etc', 'passwd'), 'utf8')).toContain('hostonly');
      expect(() => resolveUser(root2, 'hostonly')).toThrow(NotFoundError);
    }
  });
});
