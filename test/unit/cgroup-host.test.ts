import * as fs from 'node:fs';
import * as path from 'node:path';
import { TsrunError } from '../../src/errors';
import { cgroupHostFrom, createCgroupDriver, detectCgroupHost, parseCgroupMounts, parseProcCgroup } from '../../src/linux/cgroups';
import { V1Driver } from '../../src/linux/cgroups/v1';
import { V2Driver } from '../../src/linux/cgroups/v2';
import { useBuiltInCgroupParent } from '../helpers/cgroups';
import { useTempDir } from '../helpers/fixtures';

// This host's own files (Debian 12 booted with cgroup v1: systemd's hybrid layout).
const HYBRID_MOUNTINFO = `22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw
23 22 0:5 / /sys rw,nosuid,nodev,noexec,relatime shared:2 - sysfs sysfs rw
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 31 0:33 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
38 31 0:35 / /sys/fs/cgroup/blkio rw,relatime - cgroup cgroup rw,blkio
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
`;
const HYBRID_CGROUP = `9:name=systemd:/
8:pids:/
7:blkio:/
6:freezer:/
5:devices:/
4:memory:/process_api/ab5e956f578aa2f4deed760111c06868
3:cpuset:/
2:cpuacct:/
1:cpu:/
0::/
`;

// A Debian 11/Ubuntu 20.04 style legacy host: cpu and cpuacct co-mounted, no cgroup2.
const LEGACY_MOUNTINFO = `25 0 8:1 / / rw - ext4 /dev/sda1 rw
30 25 0:26 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
31 30 0:27 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:10 - cgroup cgroup rw,xattr,name=systemd
35 30 0:31 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:15 - cgroup cgroup rw,cpu,cpuacct
36 30 0:32 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:16 - cgroup cgroup rw,memory
37 30 0:33 / /sys/fs/cgroup/pids rw,nosuid,nodev,noexec,relatime shared:17 - cgroup cgroup rw,pids
38 30 0:34 / /sys/fs/cgroup/cpuset rw,nosuid,nodev,noexec,relatime shared:18 - cgroup cgroup rw,cpuset,clone_children
39 30 0:35 / /sys/fs/cgroup/blkio rw,nosuid,nodev,noexec,relatime shared:19 - cgroup cgroup rw,blkio
40 30 0:36 / /sys/fs/cgroup/freezer rw,nosuid,nodev,noexec,relatime shared:20 - cgroup cgroup rw,freezer
`;
const LEGACY_CGROUP = `12:freezer:/
11:blkio:/user.slice
10:cpuset:/
9:pids:/user.slice/user-1000.slice
8:memory:/user.slice/user-1000.slice
4:cpu,cpuacct:/user.slice
1:name=systemd:/user.slice/user-1000.slice/session-2.scope
`;

// Debian 12 default: everything in one cgroup2 hierarchy.
const UNIFIED_MOUNTINFO = `22 1 254:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw
27 23 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
`;
const UNIFIED_CGROUP = '0::/user.slice/user-0.slice/session-1.scope\n';

useBuiltInCgroupParent();

describe('cgroup host detection', () => {
  test('this host\'s layout is hybrid: v1 controllers plus an empty cgroup2 mount', () => {
    const host = cgroupHostFrom(HYBRID_MOUNTINFO, HYBRID_CGROUP);
    expect(host.mode).toBe('hybrid');
    expect(host.unifiedMount).toBe('/sys/fs/cgroup/unified');
    expect(host.v1Mounts).toEqual({
      cpu: '/sys/fs/cgroup/cpu',
      cpuacct: '/sys/fs/cgroup/cpuacct',
      cpuset: '/sys/fs/cgroup/cpuset',
      memory: '/sys/fs/cgroup/memory',
      pids: '/sys/fs/cgroup/pids',
      devices: '/sys/fs/cgroup/devices',
      blkio: '/sys/fs/cgroup/blkio',
      freezer: '/sys/fs/cgroup/freezer',
    });
    expect(host.own.memory).toBe('/process_api/ab5e956f578aa2f4deed760111c06868');
    expect(host.own['']).toBe('/');
  });

  test('legacy: co-mounted cpu,cpuacct share a directory, name=systemd carries no controller', () => {
    const host = cgroupHostFrom(LEGACY_MOUNTINFO, LEGACY_CGROUP);
    expect(host.mode).toBe('legacy');
    expect(host.unifiedMount).toBeNull();
    expect(host.v1Mounts.cpu).toBe('/sys/fs/cgroup/cpu,cpuacct');
    expect(host.v1Mounts.cpuacct).toBe('/sys/fs/cgroup/cpu,cpuacct');
    expect(host.v1Mounts.cpuset).toBe('/sys/fs/cgroup/cpuset');
    const driver = createCgroupDriver('c1', { host }) as V1Driver;
    expect(driver).toBeInstanceOf(V1Driver);
    // One cgroup per hierarchy: cpu and cpuacct get the same one.
    expect(driver.paths).toEqual([
      '/sys/fs/cgroup/cpu,cpuacct/tsrun/c1',
      '/sys/fs/cgroup/cpuset/tsrun/c1',
      '/sys/fs/cgroup/memory/tsrun/c1',
      '/sys/fs/cgroup/pids/tsrun/c1',
      '/sys/fs/cgroup/blkio/tsrun/c1',
      '/sys/fs/cgroup/freezer/tsrun/c1',
    ]);
    expect(driver.dirOf('cpuacct')).toBe(driver.dirOf('cpu'));
  });

  test('unified: one cgroup2 mount and only the 0:: line; the driver is V2', () => {
    const host = cgroupHostFrom(UNIFIED_MOUNTINFO, UNIFIED_CGROUP);
    expect(host).toEqual({ mode: 'unified', v1Mounts: {}, unifiedMount: '/sys/fs/cgroup', own: { '': '/user.slice/user-0.slice/session-1.scope' } });
    const driver = createCgroupDriver('c1', { host });
    expect(driver).toBeInstanceOf(V2Driver);
    expect(driver.paths).toEqual(['/sys/fs/cgroup/tsrun/c1']);
  });

  test('hybrid: the V1 driver also gets a cgroup in the cgroup2 mount, for cgroup.kill', () => {
    const driver = createCgroupDriver('c1', { host: cgroupHostFrom(HYBRID_MOUNTINFO, HYBRID_CGROUP), parent: 'tsrun/ci' });
    expect(driver.version).toBe(1);
    expect(driver.paths).toContain('/sys/fs/cgroup/unified/tsrun/ci/c1');
    expect(driver.paths).toContain('/sys/fs/cgroup/memory/tsrun/ci/c1');
    expect(driver.paths).not.toContain('/sys/fs/cgroup/systemd/tsrun/ci/c1');
  });

  test('a controller the kernel has not bound to a v1 hierarchy is not used even if a mount names it', () => {
    // hugetlb lives in the cgroup2 hierarchy here; a stale v1 mount would be empty.
    const host = cgroupHostFrom(HYBRID_MOUNTINFO, HYBRID_CGROUP.replace('8:pids:/\n', ''));
    expect(host.v1Mounts.pids).toBeUndefined();
  });

  test('mount points with escaped spaces, and a bind mount of a sub-cgroup loses to the whole hierarchy', () => {
    const mounts = parseCgroupMounts(
      '50 1 0:40 /docker/abc /mnt/x rw - cgroup cgroup rw,memory\n51 1 0:40 / /mnt/cg\\040v1/memory rw - cgroup cgroup rw,memory\n',
    );
    expect(mounts.map((m) => [m.mountPoint, m.root])).toEqual([
      ['/mnt/x', '/docker/abc'],
      ['/mnt/cg v1/memory', '/'],
    ]);
    const host = cgroupHostFrom('50 1 0:40 /docker/abc /mnt/x rw - cgroup cgroup rw,memory\n51 1 0:40 / /mnt/cg\\040v1/memory rw - cgroup cgroup rw,memory\n', '4:memory:/\n');
    expect(host.v1Mounts.memory).toBe('/mnt/cg v1/memory');
    expect(host.mode).toBe('legacy');
  });

  test('optional mountinfo fields before the separator are skipped', () => {
    const mounts = parseCgroupMounts('27 23 0:26 / /sys/fs/cgroup rw shared:4 master:1 - cgroup2 cgroup2 rw,nsdelegate\n');
    expect(mounts).toEqual([{ fstype: 'cgroup2', mountPoint: '/sys/fs/cgroup', root: '/', controllers: [] }]);
  });

  test('/proc/self/cgroup keyed by controller list', () => {
    expect(parseProcCgroup('4:cpu,cpuacct:/a\n0::/b\n1:name=systemd:/c\n')).toEqual({ 'cpu,cpuacct': '/a', '': '/b', 'name=systemd': '/c' });
  });

  test('no cgroup mount at all is an error that says so', () => {
    expect(() => cgroupHostFrom('22 1 254:1 / / rw - ext4 /dev/vda1 rw\n', '0::/\n')).toThrow(TsrunError);
    expect(() => cgroupHostFrom('22 1 254:1 / / rw - ext4 /dev/vda1 rw\n', '0::/\n')).toThrow(/no cgroup hierarchy is mounted/);
  });

  describe('from files', () => {
    const tmp = useTempDir('tsrun-cghost-');

    test('reads the two files it is pointed at', () => {
      fs.writeFileSync(path.join(tmp(), 'mountinfo'), LEGACY_MOUNTINFO);
      fs.writeFileSync(path.join(tmp(), 'cgroup'), LEGACY_CGROUP);
      const host = detectCgroupHost({ mountinfoPath: path.join(tmp(), 'mountinfo'), procCgroupPath: path.join(tmp(), 'cgroup') });
      expect(host.mode).toBe('legacy');
    });

    test('a missing file is a SyscallError naming it', () => {
      expect(() => detectCgroupHost({ mountinfoPath: path.join(tmp(), 'nope'), procCgroupPath: path.join(tmp(), 'cgroup') })).toThrow(/cgroups: open .*nope: ENOENT/);
    });

    test('this machine is detected as hybrid (the layout the integration tests assume)', () => {
      const host = detectCgroupHost();
      expect(['unified', 'legacy', 'hybrid']).toContain(host.mode);
      if (fs.existsSync('/sys/fs/cgroup/unified') && fs.existsSync('/sys/fs/cgroup/memory')) expect(host.mode).toBe('hybrid');
    });
  });
});
