import * as fs from 'node:fs';
import * as path from 'node:path';
import { NotFoundError, ValidationError } from '../../src/errors';
import { CAPABILITIES, DEFAULT_CAPABILITIES } from '../../src/linux/capabilities';
import { validateNamespaces } from '../../src/linux/namespaces';
import { DEFAULT_PATH } from '../../src/oci/defaults';
import type { Namespace } from '../../src/oci/runtime-spec';
import { RunOptions, buildSpec } from '../../src/runtime/options';
import { useTempDir } from '../helpers/fixtures';

const ID = '0123456789abcdef0123456789abcdef';

/** The ValidationError `fn` throws, or a failure naming what it did instead. */
function validationError(fn: () => unknown): ValidationError {
  try {
    fn();
  } catch (err) {
    if (err instanceof ValidationError) return err;
    throw new Error(`expected a ValidationError, got ${String(err)}`);
  }
  throw new Error('expected a ValidationError, nothing was thrown');
}

describe('buildSpec', () => {
  const tmp = useTempDir('tsrun-options-');
  let rootfs: string;
  const spec = (options: Partial<RunOptions>): ReturnType<typeof buildSpec> => buildSpec({ rootfs, args: ['sh'], ...options }, ID);
  const fieldOf = (options: Partial<RunOptions>): string => validationError(() => spec(options)).field;

  beforeAll(() => {
    rootfs = path.join(tmp(), 'rootfs');
    fs.mkdirSync(path.join(rootfs, 'etc'), { recursive: true });
    fs.writeFileSync(path.join(rootfs, 'etc', 'passwd'), 'root:x:0:0::/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n');
    fs.writeFileSync(path.join(rootfs, 'etc', 'group'), 'root:x:0:\nwheel:x:10:app\napp:x:1000:\n');
    fs.writeFileSync(path.join(tmp(), 'a-file'), '');
    fs.symlinkSync(rootfs, path.join(tmp(), 'rootfs-link'));
  });

  describe('what it rejects, naming the field', () => {
    test('no command', () => {
      expect(fieldOf({ args: undefined })).toBe('args');
      expect(fieldOf({ args: [] })).toBe('args');
      expect(fieldOf({ args: ['sh', 3 as unknown as string] })).toBe('args');
      expect(fieldOf({ args: [''] })).toBe('args[0]');
    });

    test('a missing rootfs, a rootfs that does not exist, a rootfs that is a file', () => {
      expect(validationError(() => buildSpec({ args: ['sh'] }, ID)).message).toBe('rootfs: is required');
      const missing = path.join(tmp(), 'nope');
      expect(validationError(() => spec({ rootfs: missing })).message).toBe(`rootfs: ${missing} does not exist`);
      const file = path.join(tmp(), 'a-file');
      expect(validationError(() => spec({ rootfs: file })).message).toBe(`rootfs: ${file} is not a directory`);
    });

    test('an env entry that is not KEY=VALUE', () => {
      expect(fieldOf({ env: ['A=1', 'NOEQUALS'] })).toBe('env[1]');
      expect(fieldOf({ env: ['=value'] })).toBe('env[0]');
      expect(fieldOf({ env: ['A=b\0c'] })).toBe('env[0]');
      expect(fieldOf({ env: { '': 'x' } })).toBe('env[0]');
      expect(validationError(() => spec({ env: ['NOEQUALS'] })).message).toBe('env[0]: "NOEQUALS" is not KEY=VALUE');
    });

    test('an unsupported network, a relative cwd', () => {
      expect(fieldOf({ network: 'no such/network' })).toBe('network');
      expect(fieldOf({ network: 'container:' })).toBe('network');
      expect(fieldOf({ cwd: 'tmp' })).toBe('cwd');
    });

    test('a hostname that is invalid, or set while sharing the host UTS namespace', () => {
      expect(fieldOf({ hostname: '-bad' })).toBe('hostname');
      expect(fieldOf({ hostname: 'has space' })).toBe('hostname');
      expect(fieldOf({ hostname: 'a'.repeat(64) })).toBe('hostname');
      expect(fieldOf({ hostname: 'ok', uts: 'host' })).toBe('hostname');
      expect(spec({ hostname: 'a'.repeat(63) }).hostname).toBe('a'.repeat(63));
    });

    test('bad idMappings', () => {
      const ok = [{ containerID: 0, hostID: 100000, size: 65536 }];
      expect(fieldOf({ idMappings: { uid: [], gid: ok } })).toBe('idMappings.uid');
      expect(fieldOf({ idMappings: { uid: ok, gid: [{ containerID: 0, hostID: -1, size: 1 }] } })).toBe('idMappings.gid[0].hostID');
      expect(fieldOf({ idMappings: { uid: [{ containerID: 0, hostID: 1, size: 0 }], gid: ok } })).toBe('idMappings.uid[0].size');
      expect(fieldOf({ idMappings: { uid: [{ containerID: 0.5, hostID: 1, size: 1 }], gid: ok } })).toBe('idMappings.uid[0].containerID');
      const overlapping = [
        { containerID: 0, hostID: 1000, size: 10 },
        { containerID: 10, hostID: 1005, size: 10 },
      ];
      expect(validationError(() => spec({ idMappings: { uid: overlapping, gid: ok } })).message).toBe('idMappings.uid: ranges overlap on hostID');
      // A user namespace where root is not mapped could not set up the container.
      const noRoot = [{ containerID: 1, hostID: 100000, size: 10 }];
      expect(validationError(() => spec({ idMappings: { uid: noRoot, gid: ok } })).message).toBe('idMappings: uid 0 and gid 0 must be mapped');
      expect(fieldOf({ idMappings: { uid: ok, gid: noRoot } })).toBe('idMappings');
    });

    test('a user that is not in the rootfs', () => {
      expect(() => spec({ user: 'ghost' })).toThrow(NotFoundError);
      expect(fieldOf({ user: 'a:b:c' })).toBe('user');
    });

    test('every error is a ValidationError with code EINVAL and "field: message"', () => {
      const err = validationError(() => spec({ cwd: 'rel' }));
      expect(err.code).toBe('EINVAL');
      expect(err.message).toBe('cwd: "rel" must be an absolute path');
    });
  });

  describe('the spec it builds', () => {
    test('defaults: every namespace but user, hostname from the id, root user', () => {
      const s = spec({});
      expect(s.linux.namespaces.map((n) => n.type)).toEqual(['pid', 'network', 'ipc', 'uts', 'mount', 'cgroup']);
      expect(s.hostname).toBe(ID.slice(0, 12));
      const dockerDefault = [...DEFAULT_CAPABILITIES].sort((a, b) => CAPABILITIES[a] - CAPABILITIES[b]);
      expect(s.process).toEqual({
        args: ['sh'],
        env: [`PATH=${DEFAULT_PATH}`, `HOSTNAME=${ID.slice(0, 12)}`, 'HOME=/root'],
        cwd: '/',
        user: { uid: 0, gid: 0, additionalGids: [] },
        capabilities: { bounding: dockerDefault, effective: dockerDefault, permitted: dockerDefault },
        noNewPrivileges: true,
        rlimits: [],
      });
      expect(s.linux.maskedPaths).toContain('/proc/kcore');
      expect(s.linux.readonlyPaths).toContain('/proc/sys');
      expect(s.root).toEqual({ path: rootfs, readonly: false });
      expect(s.linux.uidMappings).toBeUndefined();
      expect(s.mounts.map((m) => m.destination)).toEqual(['/proc', '/dev', '/dev/pts', '/dev/shm', '/dev/mqueue', '/sys']);
    });

    test('the rootfs is made absolute and real', () => {
      const relative = path.relative(process.cwd(), path.join(tmp(), 'rootfs-link'));
      expect(spec({ rootfs: relative }).root.path).toBe(fs.realpathSync(rootfs));
    });

    test('host namespaces are left out; the user namespace comes first', () => {
      expect(spec({ network: 'host', pid: 'host', ipc: 'host', uts: 'host', cgroupns: 'host' }).linux.namespaces).toEqual([{ type: 'mount' }]);
      const ids = [{ containerID: 0, hostID: 100000, size: 65536 }];
      const s = spec({ idMappings: { uid: ids, gid: ids } });
      expect(s.linux.namespaces[0]).toEqual({ type: 'user' });
      expect(s.linux.uidMappings).toEqual(ids);
      expect(s.linux.gidMappings).toEqual(ids);
    });

    test('no HOSTNAME with the host UTS namespace', () => {
      const s = spec({ uts: 'host' });
      expect(s.hostname).toBeUndefined();
      expect(s.process.env.some((e) => e.startsWith('HOSTNAME='))).toBe(false);
    });

    test('env: later entries win over the defaults and each other, in first-seen order', () => {
      expect(spec({ env: ['PATH=/x', 'A=1', 'A=2', 'B=='] }).process.env).toEqual(['PATH=/x', `HOSTNAME=${ID.slice(0, 12)}`, 'HOME=/root', 'A=2', 'B==']);
      expect(spec({ env: { HOME: '/h', C: '' } }).process.env).toEqual([`PATH=${DEFAULT_PATH}`, `HOSTNAME=${ID.slice(0, 12)}`, 'HOME=/h', 'C=']);
    });

    test('the user is resolved in the rootfs', () => {
      const s = spec({ user: 'app' });
      expect(s.process.user).toEqual({ uid: 1000, gid: 1000, additionalGids: [10] });
      expect(s.process.env).toContain('HOME=/home/app');
    });

    test('in a user namespace: devpts gets gid=5 only if gid 5 is mapped; sysfs is bound when the network is the host\'s', () => {
      const rootOnly = [{ containerID: 0, hostID: 100000, size: 1 }];
      const wide = [{ containerID: 0, hostID: 100000, size: 65536 }];
      const devpts = (s: ReturnType<typeof buildSpec>): string[] => s.mounts.find((m) => m.destination === '/dev/pts')?.options ?? [];
      expect(devpts(spec({ idMappings: { uid: wide, gid: rootOnly } }))).not.toContain('gid=5');
      expect(devpts(spec({ idMappings: { uid: wide, gid: wide } }))).toContain('gid=5');
      const shared = spec({ idMappings: { uid: wide, gid: wide }, network: 'host' });
      const sys = shared.mounts.filter((m) => m.destination === '/sys');
      expect(sys).toEqual([{ destination: '/sys', source: '/sys', options: ['rbind', 'nosuid', 'noexec', 'nodev', 'ro'] }]);
      expect(spec({ network: 'host' }).mounts.find((m) => m.destination === '/sys')?.type).toBe('sysfs');
    });
  });
});

describe('validateNamespaces', () => {
  const fieldOf = (namespaces: Namespace[]): string => validationError(() => validateNamespaces(namespaces)).field;

  test('accepts the usual lists and joinable paths', () => {
    expect(() => validateNamespaces([{ type: 'pid' }, { type: 'mount' }, { type: 'user' }, { type: 'network', path: '/proc/1/ns/net' }])).not.toThrow();
    expect(() => validateNamespaces([])).not.toThrow();
  });

  test('an unknown type, a type listed twice', () => {
    expect(fieldOf([{ type: 'pid' }, { type: 'time' as 'pid' }])).toBe('linux.namespaces[1].type');
    expect(validationError(() => validateNamespaces([{ type: 'uts' }, { type: 'ipc' }, { type: 'uts' }])).message).toBe(
      'linux.namespaces[2].type: namespace uts is listed twice',
    );
  });

  test.each(['pid', 'user', 'cgroup', 'network'] as const)('joining a %s namespace by path is allowed', (type) => {
    expect(() => validateNamespaces([{ type: 'mount' }, { type, path: '/proc/1/ns/x' }])).not.toThrow();
  });

  test('joining a pid namespace by path from a new user namespace is refused', () => {
    expect(fieldOf([{ type: 'user' }, { type: 'pid', path: '/proc/1/ns/pid' }])).toBe('linux.namespaces');
  });
});
