import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { containerResolvConf, writeInitLayer } from '../../src/storage/init-layer';

describe('init layer', () => {
  test('loopback nameservers are dropped, the rest kept', () => {
    const host = 'search example.org\nnameserver 127.0.0.53\nnameserver 10.0.0.2\nnameserver ::1\noptions edns0\n';
    expect(containerResolvConf(host)).toBe('search example.org\nnameserver 10.0.0.2\noptions edns0\n');
  });

  test('with only loopback nameservers, the public fallback', () => {
    expect(containerResolvConf('nameserver 127.0.0.53\n')).toBe(
      'nameserver 8.8.8.8\nnameserver 8.8.4.4\nnameserver 2001:4860:4860::8888\nnameserver 2001:4860:4860::8844\n',
    );
  });

  test('holds hostname, hosts, resolv.conf, mtab and the mount points', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsrun-init-'));
    try {
      const resolv = path.join(dir, 'host-resolv.conf');
      fs.writeFileSync(resolv, 'nameserver 192.0.2.1\n');
      const layer = path.join(dir, 'layer');
      fs.mkdirSync(layer);
      writeInitLayer(layer, { hostname: 'web1', network: 'none', hostResolvConf: resolv });
      expect(fs.readFileSync(path.join(layer, 'etc/hostname'), 'utf8')).toBe('web1\n');
      expect(fs.readFileSync(path.join(layer, 'etc/hosts'), 'utf8')).toMatch(/^127\.0\.0\.1\tlocalhost$/m);
      expect(fs.readFileSync(path.join(layer, 'etc/resolv.conf'), 'utf8')).toBe('nameserver 192.0.2.1\n');
      expect(fs.readlinkSync(path.join(layer, 'etc/mtab'))).toBe('/proc/mounts');
      for (const dirName of ['dev', 'dev/pts', 'dev/shm', 'proc', 'sys']) expect(fs.statSync(path.join(layer, dirName)).isDirectory()).toBe(true);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
