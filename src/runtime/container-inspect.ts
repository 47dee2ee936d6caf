import type { LinuxResources, Mount } from '../oci/runtime-spec';

/** Go's zero time, which Docker prints for "never". */
const ZERO_TIME = '0001-01-01T00:00:00Z';

/** The limits of `docker inspect`'s HostConfig, with Docker's zero values for "not set". */
export interface HostConfigLimits {
  /** Bytes; 0 is unlimited. */
  Memory: number;
  /** Memory plus swap, bytes; 0 not set, -1 unlimited swap. */
  MemorySwap: number;
  MemoryReservation: number;
  /** The CFS quota as CPUs, in billionths (0.5 CPU is 500000000). */
  NanoCpus: number;
  CpuShares: number;
  CpuPeriod: number;
  CpuQuota: number;
  CpusetCpus: string;
  CpusetMems: string;
  /** null when not set, -1 unlimited. */
  PidsLimit: number | null;
  BlkioWeight: number;
}

/** `docker inspect`'s shape for one container, with the parts tsrun has. */
export interface ContainerInspect {
  Id: string;
  Created: string;
  Path: string;
  Args: string[];
  State: {
    Status: 'created' | 'running' | 'exited';
    Running: boolean;
    Paused: boolean;
    Restarting: boolean;
    OOMKilled: boolean;
    Dead: boolean;
    Pid: number;
    ExitCode: number;
    Error: string;
    StartedAt: string;
    FinishedAt: string;
  };
  /** The image's id; "" for a container on a plain root filesystem. */
  Image: string;
  /** "/" and the name, as Docker prints it. */
  Name: string;
  HostConfig: HostConfigLimits & { AutoRemove?: boolean; ReadonlyRootfs?: boolean; NetworkMode?: string };
  Config: { Image: string; Hostname?: string; User?: string; Env?: string[]; WorkingDir?: string };
  /** Its -v, --mount and --tmpfs mounts. */
  Mounts?: { Type: 'bind' | 'volume' | 'tmpfs'; Name?: string; Source: string; Destination: string; Mode: string; RW: boolean; Propagation: string }[];
  /** While the container is on a CNI network. */
  NetworkSettings?: {
    IPAddress: string;
    Gateway: string;
    Ports: Record<string, { HostIp: string; HostPort: string }[]>;
    Networks: Record<string, { IPAddress: string; Gateway: string; IPPrefixLen: number }>;
  };
}

/** A container's place on its CNI network, for inspect. */
export interface InspectNetwork {
  name: string;
  /** CIDR, as the CNI result gives it. */
  address: string;
  gateway: string;
  ports: { hostIP?: string; hostPort: number; containerPort: number; protocol: string }[];
}

/** What a container's record or state says, in the terms inspect needs. */
export interface InspectInput {
  id: string;
  name: string;
  created: string;
  args: string[];
  status: ContainerInspect['State']['Status'];
  pid: number;
  exitCode?: number;
  oomKilled: boolean;
  startedAt?: string;
  finishedAt?: string;
  resources: LinuxResources;
  imageId: string;
  /** The image as named, or `rootfs:DIR`. */
  image: string;
  /** Only image containers keep these. */
  process?: { hostname?: string; user: string; env: string[]; cwd: string };
  hostConfig?: { autoRemove: boolean; readOnly: boolean; network: string; mounts?: Mount[] };
  network?: InspectNetwork;
}

/** A volume's source is `<root>/volumes/<name>/_data`. */
const VOLUME_SOURCE = /\/volumes\/([^/]+)\/_data$/;

function mountsOf(mounts: Mount[]): NonNullable<ContainerInspect['Mounts']> {
  return mounts.map((m) => {
    const options = m.options ?? [];
    const rw = !options.includes('ro');
    if (m.type === 'tmpfs') return { Type: 'tmpfs', Source: '', Destination: m.destination, Mode: options.join(','), RW: rw, Propagation: '' };
    const volume = VOLUME_SOURCE.exec(m.source ?? '');
    const propagation = options.find((o) => /^r?(shared|slave|private)$/.test(o)) ?? 'rprivate';
    return volume
      ? { Type: 'volume', Name: volume[1], Source: m.source ?? '', Destination: m.destination, Mode: rw ? '' : 'ro', RW: rw, Propagation: '' }
      : { Type: 'bind', Source: m.source ?? '', Destination: m.destination, Mode: rw ? '' : 'ro', RW: rw, Propagation: propagation };
  });
}

function networkSettings(network: InspectNetwork): NonNullable<ContainerInspect['NetworkSettings']> {
  const [ip, prefix] = network.address.split('/');
  const ports: Record<string, { HostIp: string; HostPort: string }[]> = {};
  for (const p of network.ports) (ports[`${p.containerPort}/${p.protocol}`] ??= []).push({ HostIp: p.hostIP || '0.0.0.0', HostPort: String(p.hostPort) });
  return { IPAddress: ip, Gateway: network.gateway, Ports: ports, Networks: { [network.name]: { IPAddress: ip, Gateway: network.gateway, IPPrefixLen: Number(prefix) } } };
}

/** OCI limits (-1 unlimited, absent not set) in Docker's HostConfig terms. */
export function hostConfigLimits(resources: LinuxResources): HostConfigLimits {
  const { memory = {}, cpu = {}, pids, blockIO } = resources;
  const positive = (value: number | undefined): number => (value !== undefined && value > 0 ? value : 0);
  const quota = positive(cpu.quota);
  const period = positive(cpu.period);
  return {
    Memory: positive(memory.limit),
    MemorySwap: memory.swap ?? 0,
    MemoryReservation: positive(memory.reservation),
    NanoCpus: quota > 0 && period > 0 ? Math.round((quota / period) * 1e9) : 0,
    CpuShares: cpu.shares ?? 0,
    CpuPeriod: period,
    CpuQuota: quota,
    CpusetCpus: cpu.cpus ?? '',
    CpusetMems: cpu.mems ?? '',
    PidsLimit: pids?.limit ?? null,
    BlkioWeight: blockIO?.weight ?? 0,
  };
}

export function containerInspect(input: InspectInput): ContainerInspect {
  const { process, hostConfig } = input;
  return {
    Id: input.id,
    Created: input.created,
    Path: input.args[0] ?? '',
    Args: input.args.slice(1),
    State: {
      Status: input.status,
      Running: input.status === 'running',
      Paused: false,
      Restarting: false,
      OOMKilled: input.oomKilled,
      Dead: false,
      Pid: input.pid,
      ExitCode: input.exitCode ?? 0,
      Error: '',
      StartedAt: input.startedAt ?? ZERO_TIME,
      FinishedAt: input.finishedAt ?? ZERO_TIME,
    },
    Image: input.imageId,
    Name: `/${input.name}`,
    HostConfig: {
      ...hostConfigLimits(input.resources),
      ...(hostConfig ? { AutoRemove: hostConfig.autoRemove, ReadonlyRootfs: hostConfig.readOnly, NetworkMode: hostConfig.network } : {}),
    },
    Config: {
      Image: input.image,
      ...(process ? { Hostname: process.hostname ?? input.id.slice(0, 12), User: process.user, Env: process.env, WorkingDir: process.cwd } : {}),
    },
    ...(hostConfig?.mounts ? { Mounts: mountsOf(hostConfig.mounts) } : {}),
    ...(input.network ? { NetworkSettings: networkSettings(input.network) } : {}),
  };
}
