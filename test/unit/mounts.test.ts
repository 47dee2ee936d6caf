import * as fs from 'node:fs';
import * as path from 'node:path';
import { ValidationError } from '../../src/errors';
import { DEFAULT_DEVICES, deviceSteps, makedev } from '../../src/linux/devices';
import { MS, mountSteps, parseMountOptions } from '../../src/linux/mounts';
import { canPivotRoot, rootfsSteps } from '../../src/linux/rootfs';
import type { Mount, Spec } from '../../src/oci/runtime-spec';
import { StepFlag } from '../../src/runtime/plan-opcodes';
import { useTempDir } from '../helpers/fixtures';

describe('parseMountOptions', () => {
  test('flags set and cleared in order; the last word wins', () => {
    expect(parseMountOptions(['nosuid', 'nodev', 'noexec', 'ro']).flags).toBe(MS.NOSUID | MS.NODEV | MS.NOEXEC | MS.RDONLY);
    expect(parseMountOptions(['ro', 'rw']).flags).toBe(0);
    expect(parseMountOptions(['rw', 'ro']).flags).toBe(MS.RDONLY);
    expect(parseMountOptions(['noatime', 'atime', 'nodiratime']).flags).toBe(MS.NODIRATIME);
    expect(parseMountOptions(['rbind']).flags).toBe(MS.BIND | MS.REC);
    expect(parseMountOptions(['strictatime', 'relatime', 'norelatime']).flags).toBe(MS.STRICTATIME);
  });

  test('propagation is kept apart, in order', () => {
    expect(parseMountOptions(['rprivate', 'shared', 'rslave', 'unbindable'])).toEqual({
      flags: 0,
      propagation: [MS.PRIVATE | MS.REC, MS.SHARED, MS.SLAVE | MS.REC, MS.UNBINDABLE],
      data: '',
    });
  });

  test('everything else is filesystem data, comma-joined', () => {
    expect(parseMountOptions(['nosuid', 'mode=755', 'size=65536k', 'newinstance'])).toEqual({ flags: MS.NOSUID, propagation: [], data: 'mode=755,size=65536k,newinstance' });
    expect(parseMountOptions()).toEqual({ flags: 0, propagation: [], data: '' });
  });

  test('the MS_ values are the kernel\'s', () => {
    // <linux/mount.h>
    expect(MS).toMatchObject({ RDONLY: 1, NOSUID: 2, NODEV: 4, NOEXEC: 8, REMOUNT: 32, BIND: 4096, MOVE: 8192, REC: 16384, PRIVATE: 1 << 18, SLAVE: 1 << 19, SHARED: 1 << 20 });
  });
});

describe('mountSteps', () => {
  test('a filesystem: one mount with its flags and data', () => {
    const steps = mountSteps({ destination: '/dev/shm', type: 'tmpfs', source: 'shm', options: ['nosuid', 'nodev', 'mode=1777'] }, '/r/dev/shm', 'rootfs');
    expect(steps).toEqual([
      { op: 'Mount', args: [MS.NOSUID | MS.NODEV], strs: ['shm', '/r/dev/shm', 'tmpfs', 'mode=1777'], phase: 'rootfs', target: '/r/dev/shm', detail: 'tmpfs from shm' },
    ]);
  });

  test('a filesystem without a source uses its type; without data, no data', () => {
    const [step] = mountSteps({ destination: '/proc', type: 'proc' }, '/r/proc', 'p');
    expect(step.strs).toEqual(['proc', '/r/proc', 'proc', null]);
  });

  test('a read-only bind: the bind, then a remount with the flags; then propagation', () => {
    const steps = mountSteps({ destination: '/data', source: '/host/data', options: ['rbind', 'ro', 'nosuid', 'rslave', 'foo=bar'] }, '/r/data', 'p');
    expect(steps.map((s) => [s.args, s.strs])).toEqual([
      [[MS.BIND | MS.REC], ['/host/data', '/r/data', null, null]],
      [[MS.REMOUNT | MS.BIND | MS.RDONLY | MS.NOSUID], [null, '/r/data', null, null]],
      [[MS.SLAVE | MS.REC], [null, '/r/data', null, null]],
    ]);
  });

  test('a plain bind needs no remount, whatever its type says', () => {
    const steps = mountSteps({ destination: '/x', type: 'none', source: '/y', options: ['bind'] }, '/r/x', 'p');
    expect(steps).toHaveLength(1);
    expect(steps[0].args).toEqual([MS.BIND]);
    expect(steps[0].strs).toEqual(['/y', '/r/x', null, null]);
  });

  test('a mount that is neither a bind nor typed is refused', () => {
    expect(() => mountSteps({ destination: '/x', source: 'y' }, '/r/x', 'p')).toThrow(ValidationError);
    expect(() => mountSteps({ destination: '/x', source: 'y' }, '/r/x', 'p')).toThrow('mounts[/x].type: a mount that is not a bind needs a type');
  });
});

describe('devices', () => {
  test('makedev is glibc\'s encoding', () => {
    expect(makedev(1, 3)).toBe(0x103n);
    expect(makedev(5, 0)).toBe(0x500n);
    expect(makedev(259, 1)).toBe(0x10301n);
    // Minor above 255 and major above 4095 take the high bits.
    expect(makedev(8, 0x12345)).toBe(0x12300845n);
    expect(makedev(0x1000, 0)).toBe(1n << 44n);
  });

  test('mknod with type bits and mode, then the standard links', () => {
    const steps = deviceSteps([...DEFAULT_DEVICES.slice(0, 1), { path: '/dev/sda', type: 'b', major: 8, minor: 0, fileMode: 0o660 }, { path: '/dev/fifo', type: 'p', major: 0, minor: 0 }], '/r/dev', false);
    expect(steps.slice(0, 3).map((s) => [s.op, s.args, s.strs])).toEqual([
      ['Mknod', [0o020666, 0x103n], ['/r/dev/null']],
      ['Mknod', [0o060660, 0x800n], ['/r/dev/sda']],
      ['Mknod', [0o010666, 0n], ['/r/dev/fifo']],
    ]);
    expect(steps.slice(3).map((s) => [s.op, s.flags, s.strs])).toEqual([
      ['Symlink', StepFlag.IgnoreExist, ['/proc/self/fd', '/r/dev/fd']],
      ['Symlink', StepFlag.IgnoreExist, ['/proc/self/fd/0', '/r/dev/stdin']],
      ['Symlink', StepFlag.IgnoreExist, ['/proc/self/fd/1', '/r/dev/stdout']],
      ['Symlink', StepFlag.IgnoreExist, ['/proc/self/fd/2', '/r/dev/stderr']],
      ['Symlink', StepFlag.IgnoreExist, ['pts/ptmx', '/r/dev/ptmx']],
    ]);
  });

  test('in a user namespace: an empty file with the host node bound onto it', () => {
    const steps = deviceSteps(DEFAULT_DEVICES.slice(0, 2), '/r/dev', true);
    expect(steps.slice(0, 4).map((s) => [s.op, s.args, s.strs])).toEqual([
      ['Touch', [0o600], ['/r/dev/null']],
      ['Mount', [MS.BIND], ['/dev/null', '/r/dev/null', null, null]],
      ['Touch', [0o600], ['/r/dev/zero']],
      ['Mount', [MS.BIND], ['/dev/zero', '/r/dev/zero', null, null]],
    ]);
  });
});

describe('rootfsSteps', () => {
  const tmp = useTempDir('tsrun-rootfs-');
  let root: string;

  beforeAll(() => {
    root = path.join(tmp(), 'root');
    fs.mkdirSync(path.join(root, 'real-proc'), { recursive: true });
    fs.mkdirSync(path.join(root, 'dev'));
    // A link in the image where a mount goes: followed, inside the root.
    fs.symlinkSync('/real-proc', path.join(root, 'proc'));
    // A link under the future /dev tmpfs: the tmpfs hides it, so it must not be followed.
    fs.symlinkSync('/etc', path.join(root, 'dev', 'shm'));
    fs.writeFileSync(path.join(tmp(), 'host-file'), 'x');
  });

  const spec = (mounts: Mount[], extra: Partial<Spec['linux']> = {}): Spec => ({
    ociVersion: '1.2.0',
    process: { args: ['sh'], env: [], cwd: '/', user: { uid: 0, gid: 0 } },
    root: { path: root },
    mounts,
    linux: { namespaces: [{ type: 'mount' }], ...extra },
  });
  const mountTargets = (steps: ReturnType<typeof rootfsSteps>): (string | null | undefined)[] => steps.filter((s) => s.op === 'Mount').map((s) => s.strs?.[1]);

  test('mount points are resolved in the root, but a path under a fresh filesystem is taken literally', () => {
    const steps = rootfsSteps(
      spec([
        { destination: '/proc', type: 'proc', source: 'proc' },
        { destination: '/dev', type: 'tmpfs', source: 'tmpfs' },
        { destination: '/dev/shm', type: 'tmpfs', source: 'shm' },
      ]),
      { pivot: true, inUserNamespace: false },
    );
    expect(mountTargets(steps)).toEqual(['/', root, `${root}/real-proc`, `${root}/dev`, `${root}/dev/shm`]);
    expect(steps.filter((s) => s.op === 'Mkdir').map((s) => s.strs?.[0])).toEqual([`${root}/real-proc`, `${root}/dev`, `${root}/dev`, `${root}/dev/shm`]);
    // The devices go into the /dev tmpfs.
    expect(steps.filter((s) => s.op === 'Mknod').map((s) => s.strs?.[0])).toEqual(DEFAULT_DEVICES.map((d) => `${root}${d.path}`));
  });

  test('a bind of a file gets a file to mount on; no /dev tmpfs, no devices', () => {
    const steps = rootfsSteps(spec([{ destination: '/etc/hostname', source: path.join(tmp(), 'host-file'), options: ['bind'] }]), { pivot: true, inUserNamespace: false });
    const touch = steps.findIndex((s) => s.op === 'Touch');
    expect(steps[touch].strs).toEqual([`${root}/etc/hostname`]);
    expect(steps[touch - 1]).toMatchObject({ op: 'Mkdir', strs: [`${root}/etc`] });
    expect(steps[touch + 1]).toMatchObject({ op: 'Mount', strs: [path.join(tmp(), 'host-file'), `${root}/etc/hostname`, null, null] });
    expect(steps.some((s) => s.op === 'Mknod' || s.op === 'Symlink')).toBe(false);
  });

  test('the root propagation follows the spec', () => {
    const first = (p?: string): unknown => rootfsSteps(spec([], { rootfsPropagation: p }), { pivot: true, inUserNamespace: false })[1].args;
    expect(first()).toEqual([MS.REC | MS.PRIVATE]);
    expect(first('rslave')).toEqual([MS.REC | MS.SLAVE]);
    expect(first('shared')).toEqual([MS.REC | MS.SHARED]);
  });
});

describe('canPivotRoot', () => {
  const tmp = useTempDir('tsrun-mountinfo-');
  const withRoot = (fstype: string, mountPoint = '/'): boolean => {
    const file = path.join(tmp(), `mountinfo-${fstype}-${mountPoint.replace(/\//g, '_')}`);
    fs.writeFileSync(file, `22 1 0:2 / ${mountPoint} rw shared:1 - ${fstype} rootfs rw\n30 22 0:5 / /proc rw,nosuid - proc proc rw\n`);
    return canPivotRoot(file);
  };

  test('false on an initramfs root, true otherwise', () => {
    expect(withRoot('rootfs')).toBe(false);
    expect(withRoot('ramfs')).toBe(false);
    expect(withRoot('ext4')).toBe(true);
    expect(withRoot('tmpfs')).toBe(true);
    // Only the mount on / counts.
    expect(withRoot('ramfs', '/mnt')).toBe(true);
  });

  test('this process\'s answer: its root is no initramfs here, and a second call reads nothing', () => {
    expect(canPivotRoot()).toBe(true);
    // The module object itself: `import * as` gives a copy of its properties.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const read = jest.spyOn(require('node:fs') as typeof fs, 'readFileSync');
    try {
      expect(canPivotRoot()).toBe(true);
      expect(read).not.toHaveBeenCalled();
    } finally {
      read.mockRestore();
    }
  });

  test('optional fields of any number before the separator', () => {
    const file = path.join(tmp(), 'many-optional');
    fs.writeFileSync(file, '22 1 0:2 / / rw shared:1 master:2 propagate_from:3 - rootfs rootfs rw\n');
    expect(canPivotRoot(file)).toBe(false);
  });
});
