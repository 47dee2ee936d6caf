import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { run } from '../../src';
import type { RunOptions } from '../../src';
import { parseSubIds, remapMappings } from '../../src/linux/userns-remap';
import { loadNative } from '../../src/native';
import { Store } from '../../src/storage/store';
import { busyboxRootfs, describeAsRoot, useTempDir } from '../helpers/fixtures';
import { checkLeaksAfterEach } from '../helpers/leaks';
import { Collected, collectOutput } from '../helpers/run';

const BASE = 300000;

describeAsRoot('--userns-remap: root in the container is an unprivileged host id', () => {
  const tmp = useTempDir('tsrun-userns-');
  const root = () => path.join(tmp(), 'store');
  const stateDir = () => path.join(tmp(), 'state');
  const files = () => ({ subuid: path.join(tmp(), 'subuid'), subgid: path.join(tmp(), 'subgid'), passwd: path.join(tmp(), 'passwd'), group: path.join(tmp(), 'group') });
  checkLeaksAfterEach();

  beforeAll(async () => {
    // Reachable by the remapped ids, as a userns-remap dockerd's root is (0711).
    fs.chmodSync(tmp(), 0o711);
    const tar = path.join(tmp(), 'busybox.tar');
    execFileSync('tar', ['-C', busyboxRootfs(), '-cf', tar, '.']);
    await Store.open(root()).importRootfs(tar, 'busybox:remap', { changes: ['CMD ["sh"]'] });
    fs.writeFileSync(files().subuid, `someone:100000:65536\ndockremap:${BASE}:65536\n`);
    fs.writeFileSync(files().subgid, `someone:100000:65536\ndockremap:${BASE}:65536\n`);
    fs.writeFileSync(files().passwd, 'root:x:0:0::/root:/bin/sh\nremapper:x:1234:1234::/:/bin/false\n');
    fs.writeFileSync(files().group, 'root:x:0:\nremapper:x:1234:\n');
  });

  async function collect(options: Partial<RunOptions>): Promise<Collected> {
    return collectOutput(await run({ image: 'busybox:remap', root: root(), stateDir: stateDir(), stdio: 'pipe', autoRemove: true, usernsRemap: 'default', subIdFiles: files(), ...options }));
  }

  test('id says root, uid_map shows the subuid range, the image\'s files are root\'s, and the host sees the mapped uid', async () => {
    const shared = path.join(tmp(), 'shared');
    fs.mkdirSync(shared, { mode: 0o777 });
    fs.chmodSync(shared, 0o777);
    const r = await collect({
      args: ['sh', '-c', 'id -u; id -g; cat /proc/self/uid_map /proc/self/gid_map; stat -c "%u:%g" /etc/passwd /bin/busybox; echo written > /etc/new && echo root-fs-rw; touch /data/by-container'],
      mounts: [{ destination: '/data', type: 'bind', source: shared, options: ['rbind'] }],
    });
    expect(r.stderr).toBe('');
    const lines = r.stdout.trim().split('\n').map((l) => l.trim().split(/\s+/).join(' '));
    expect(lines).toEqual(['0', '0', `0 ${BASE} 65536`, `0 ${BASE} 65536`, '0:0', '0:0', 'root-fs-rw']);
    const stat = fs.statSync(path.join(shared, 'by-container'));
    expect([stat.uid, stat.gid]).toEqual([BASE, BASE]);
    // The layers themselves were not chowned: only seen through idmapped mounts.
    const layerPasswd = execFileSync('sh', ['-c', `stat -c %u ${root()}/overlay2/*/diff/etc/passwd | sort -u`], { encoding: 'utf8' });
    expect(layerPasswd.trim()).toBe('0');
    expect(fs.readdirSync(path.join(root(), 'overlay2')).flatMap((d) => (fs.existsSync(path.join(root(), 'overlay2', d, 'diff')) ? fs.readdirSync(path.join(root(), 'overlay2', d)) : [])).filter((e) => e.startsWith('remap-'))).toEqual([]);
  });

  test('--user inside the remapped namespace maps too; USER:GROUP and numeric names resolve', async () => {
    const shared = path.join(tmp(), 'shared-user');
    fs.mkdirSync(shared, { mode: 0o777 });
    fs.chmodSync(shared, 0o777);
    const r = await collect({ user: '1000:1000', args: ['sh', '-c', 'id -u; touch /data/f'], mounts: [{ destination: '/data', type: 'bind', source: shared, options: ['rbind'] }] });
    expect(r.stdout).toBe('1000\n');
    expect(fs.statSync(path.join(shared, 'f')).uid).toBe(BASE + 1000);

    fs.appendFileSync(files().subuid, '1234:500000:1000\n');
    fs.appendFileSync(files().subgid, 'remapper:600000:1000\n');
    expect(await remapMappings('remapper', files())).toEqual({ uid: [{ containerID: 0, hostID: 500000, size: 1000 }], gid: [{ containerID: 0, hostID: 600000, size: 1000 }] });
    const r2 = await collect({ usernsRemap: 'remapper', args: ['cat', '/proc/self/uid_map'] });
    expect(r2.stdout.trim().split(/\s+/)).toEqual(['0', '500000', '1000']);
  });

  test('a store on a filesystem without idmapped mounts (ramfs): the layers are used through cached copies with shifted owners', async () => {
    const ramfs = path.join(tmp(), 'ramfs');
    fs.mkdirSync(ramfs);
    loadNative().mount('ramfs', ramfs, 'ramfs', 0, 'mode=711');
    try {
      const store = path.join(ramfs, 'store');
      await Store.open(store).importRootfs(path.join(tmp(), 'busybox.tar'), 'busybox:ram', { changes: ['CMD ["sh"]'] });
      const options = { image: 'busybox:ram', root: store, args: ['sh', '-c', 'id -u; stat -c "%u:%g %A" /etc/passwd /bin/busybox; echo hi > /etc/new && cat /etc/new'] };
      const r = await collect(options);
      expect(r.stderr).toBe('');
      expect(r.stdout).toBe('0\n0:0 -rw-r--r--\n0:0 -rwxr-xr-x\nhi\n');
      // One copy of the image's layer for these maps, owned by the mapped root on the host, the original untouched.
      const copies = execFileSync('sh', ['-c', `ls -d ${store}/overlay2/*/remap-*`], { encoding: 'utf8' }).trim().split('\n');
      expect(copies).toHaveLength(1);
      expect(fs.statSync(path.join(copies[0], 'etc', 'passwd')).uid).toBe(BASE);
      expect(fs.statSync(path.join(path.dirname(copies[0]), 'diff', 'etc', 'passwd')).uid).toBe(0);
      const made = fs.statSync(copies[0]).mtimeMs;
      // The next container reuses it.
      expect((await collect(options)).exitCode).toBe(0);
      expect(fs.statSync(copies[0]).mtimeMs).toBe(made);
    } finally {
      loadNative().umount2(ramfs, 2 /* MNT_DETACH */);
    }
  });

  test('default creates the dockremap ranges after the highest one in use, as dockerd does; an unknown user is an error', async () => {
    const fresh = { ...files(), subuid: path.join(tmp(), 'subuid-fresh'), subgid: path.join(tmp(), 'subgid-fresh') };
    fs.writeFileSync(fresh.subuid, 'alice:100000:65536\nbob:165536:65536');
    const ids = await remapMappings('default', fresh);
    expect(ids.uid).toEqual([{ containerID: 0, hostID: 231072, size: 65536 }]);
    expect(ids.gid).toEqual([{ containerID: 0, hostID: 231072, size: 65536 }]);
    expect(parseSubIds(fs.readFileSync(fresh.subuid, 'utf8')).map((r) => r.owner)).toEqual(['alice', 'bob', 'dockremap']);
    // Asked again, nothing more is added.
    await remapMappings('default', fresh);
    expect(fs.readFileSync(fresh.subgid, 'utf8')).toBe('dockremap:231072:65536\n');
    await expect(collect({ usernsRemap: 'nobody-here' })).rejects.toThrow(/usernsRemap: nobody-here has no range in .*subuid/);
  });
});
