import { containerInspect, hostConfigLimits } from '../../src/runtime/container-inspect';

const MiB = 1024 * 1024;

describe('docker inspect for containers', () => {
  test("limits in Docker's HostConfig terms: 0 and null where not set", () => {
    expect(hostConfigLimits({})).toEqual({
      Memory: 0,
      MemorySwap: 0,
      MemoryReservation: 0,
      NanoCpus: 0,
      CpuShares: 0,
      CpuPeriod: 0,
      CpuQuota: 0,
      CpusetCpus: '',
      CpusetMems: '',
      PidsLimit: null,
      BlkioWeight: 0,
    });
    expect(
      hostConfigLimits({
        memory: { limit: 32 * MiB, swap: -1, reservation: 16 * MiB },
        cpu: { shares: 512, quota: 50000, period: 100000, cpus: '0-1', mems: '0' },
        pids: { limit: 20 },
        blockIO: { weight: 300 },
      }),
    ).toEqual({
      Memory: 32 * MiB,
      MemorySwap: -1,
      MemoryReservation: 16 * MiB,
      NanoCpus: 500_000_000,
      CpuShares: 512,
      CpuPeriod: 100000,
      CpuQuota: 50000,
      CpusetCpus: '0-1',
      CpusetMems: '0',
      PidsLimit: 20,
      BlkioWeight: 300,
    });
    // Unlimited memory and quota are Docker's 0.
    expect(hostConfigLimits({ memory: { limit: -1 }, cpu: { quota: -1, period: 100000 }, pids: { limit: -1 } })).toMatchObject({ Memory: 0, CpuQuota: 0, NanoCpus: 0, PidsLimit: -1 });
  });

  const base = {
    id: 'ab'.repeat(32),
    name: 'web',
    created: '2024-01-02T03:04:05.000Z',
    args: ['sh', '-c', 'exit 3'],
    pid: 0,
    oomKilled: false,
    resources: {},
  };

  test('an exited image container: state, exit code, OOM, config and host config', () => {
    const inspect = containerInspect({
      ...base,
      status: 'exited',
      exitCode: 137,
      oomKilled: true,
      startedAt: '2024-01-02T03:04:06.000Z',
      finishedAt: '2024-01-02T03:04:07.000Z',
      imageId: 'sha256:' + 'cd'.repeat(32),
      image: 'busybox:latest',
      process: { user: '', env: ['PATH=/bin'], cwd: '/' },
      hostConfig: { autoRemove: false, readOnly: true, network: 'none' },
      resources: { memory: { limit: 32 * MiB } },
    });
    expect(inspect).toMatchObject({
      Id: base.id,
      Path: 'sh',
      Args: ['-c', 'exit 3'],
      State: { Status: 'exited', Running: false, OOMKilled: true, Pid: 0, ExitCode: 137, StartedAt: '2024-01-02T03:04:06.000Z', FinishedAt: '2024-01-02T03:04:07.000Z' },
      Image: 'sha256:' + 'cd'.repeat(32),
      Name: '/web',
      HostConfig: { Memory: 32 * MiB, AutoRemove: false, ReadonlyRootfs: true, NetworkMode: 'none' },
      Config: { Image: 'busybox:latest', Hostname: base.id.slice(0, 12), User: '', Env: ['PATH=/bin'], WorkingDir: '/' },
    });
  });

  test("a running container on a plain root filesystem: Go's zero time for the finish, no image", () => {
    const inspect = containerInspect({ ...base, status: 'running', pid: 4242, startedAt: '2024-01-02T03:04:06.000Z', imageId: '', image: 'rootfs:/srv/box' });
    expect(inspect.State).toMatchObject({ Status: 'running', Running: true, Pid: 4242, ExitCode: 0, FinishedAt: '0001-01-01T00:00:00Z' });
    expect(inspect.Image).toBe('');
    expect(inspect.Config).toEqual({ Image: 'rootfs:/srv/box' });
    expect(inspect.HostConfig).not.toHaveProperty('AutoRemove');
  });

  test('mounts and network settings in Docker\'s terms', () => {
    const inspect = containerInspect({
      ...base,
      status: 'running',
      pid: 7,
      imageId: 'sha256:' + 'cd'.repeat(32),
      image: 'busybox:latest',
      hostConfig: {
        autoRemove: false,
        readOnly: false,
        network: 'web-net',
        mounts: [
          { destination: '/data', type: 'bind', source: '/srv/data', options: ['rbind', 'ro', 'rshared'] },
          { destination: '/cache', type: 'bind', source: '/var/lib/tsrun/volumes/cache/_data', options: ['rbind', 'rw', 'rprivate'] },
          { destination: '/tmp', type: 'tmpfs', source: 'tmpfs', options: ['noexec', 'nosuid', 'nodev', 'rw'] },
        ],
      },
      network: { name: 'web-net', address: '10.89.1.2/24', gateway: '10.89.1.1', ports: [{ hostIP: '127.0.0.1', hostPort: 18080, containerPort: 8080, protocol: 'tcp' }] },
    });
    expect(inspect.Mounts).toEqual([
      { Type: 'bind', Source: '/srv/data', Destination: '/data', Mode: 'ro', RW: false, Propagation: 'rshared' },
      { Type: 'volume', Name: 'cache', Source: '/var/lib/tsrun/volumes/cache/_data', Destination: '/cache', Mode: '', RW: true, Propagation: '' },
      { Type: 'tmpfs', Source: '', Destination: '/tmp', Mode: 'noexec,nosuid,nodev,rw', RW: true, Propagation: '' },
    ]);
    expect(inspect.NetworkSettings).toEqual({
      IPAddress: '10.89.1.2',
      Gateway: '10.89.1.1',
      Ports: { '8080/tcp': [{ HostIp: '127.0.0.1', HostPort: '18080' }] },
      Networks: { 'web-net': { IPAddress: '10.89.1.2', Gateway: '10.89.1.1', IPPrefixLen: 24 } },
    });
  });
});
