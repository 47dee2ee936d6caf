import fs = require('node:fs');
import path = require('node:path');
import { ValidationError, syscallErrorFrom } from '../errors';
import type { ResourceOptions } from '../linux/cgroups/resources';
import { dockerCapabilities } from '../linux/capabilities';
import { DEFAULT_DEVICE_RULES, hostDevices, parseDeviceOption } from '../linux/devices';
import { isMapped, validateIdMappings } from '../linux/idmap';
import { validateNamespaces } from '../linux/namespaces';
import { Ulimit, rlimitsFromUlimits } from '../linux/rlimits';
import { SeccompProfile, containerSeccomp } from '../linux/seccomp';
import { resolveUser } from '../linux/users';
import type { SubIdFiles } from '../linux/userns-remap';
import { DEFAULT_MASKED_PATHS, DEFAULT_NAMESPACES, DEFAULT_PATH, DEFAULT_READONLY_PATHS, OCI_VERSION, defaultMounts } from '../oci/defaults';
import type { IdMapping, LinuxCapabilities, LinuxResources, LinuxSeccomp, Mount, NamespaceType, Spec } from '../oci/runtime-spec';
import type { Logger } from '../logger';
import type * as Volumes from './volumes';
import type { VolumeMount } from './volumes';
import type { TerminalSize } from '../linux/pty';
import type { PortMapping } from '../network/ports';
import type * as Monitor from './monitor';

/** The options that set a container's privileges: kept with it, so that exec gives its processes the same. */
export type PrivilegeOptions = Pick<RunOptions, 'capAdd' | 'capDrop' | 'privileged' | 'noNewPrivileges' | 'seccomp'>;

export function privilegeOptions(options: PrivilegeOptions): PrivilegeOptions {
  const { capAdd, capDrop, privileged, noNewPrivileges, seccomp } = options;
  return { capAdd, capDrop, privileged, noNewPrivileges, seccomp };
}

/** Capabilities (as Docker gives them to `uid`), no_new_privs and the seccomp filter of a container's process. */
export function processPrivileges(options: PrivilegeOptions, uid: number): { capabilities: LinuxCapabilities; noNewPrivileges: boolean; seccomp: LinuxSeccomp | undefined } {
  const privileged = options.privileged ?? false;
  const capabilities = dockerCapabilities({ capAdd: options.capAdd, capDrop: options.capDrop, privileged, uid });
  return {
    capabilities,
    noNewPrivileges: options.noNewPrivileges ?? true,
    seccomp: privileged ? undefined : containerSeccomp(options.seccomp, capabilities.bounding ?? []),
  };
}

/** Where a container's stdin, stdout or stderr goes. A number is an fd of this process. */
export type StdioOption = 'inherit' | 'pipe' | 'ignore' | number;

/**
 * How to run a container. The resource limits are `docker run`'s flags in
 * camelCase (ResourceOptions: memory: '512m', cpus: 1.5, pidsLimit: 100...).
 */
export interface RunOptions extends ResourceOptions {
  /** Root filesystem directory of the container; or give `image`. */
  rootfs?: string;
  /** An image of the store at `root` (name[:tag], name@digest or id); the container gets its own layers over it. */
  image?: string;
  /** The image store (default /var/lib/tsrun, or $TSRUN_ROOT). */
  root?: string;
  /** The command and its arguments; args[0] is looked up in the container's PATH. With an image, the default is its Cmd. */
  args?: string[];
  /** Replaces the image's Entrypoint (`[]` clears it), as `docker run --entrypoint`. */
  entrypoint?: string[];
  /** Extra environment, as `KEY=VALUE` strings or an object; overrides the defaults. */
  env?: string[] | Record<string, string>;
  /** Working directory inside the container (default /). It must exist. */
  cwd?: string;
  /** `name|uid[:group|gid]`, resolved in the root filesystem's /etc/passwd and /etc/group. */
  user?: string;
  /** Default: the first 12 characters of the container id. */
  hostname?: string;
  /** Unique among this state directory's containers (default: a short id). */
  name?: string;
  /**
   * `none` (own namespace with loopback only; the default), `host`,
   * `container:NAME` (that container's namespace), `bridge` (the default
   * CNI network) or the name of a network made with createNetwork. A
   * --rootfs container on a network gets /etc/hosts and /etc/resolv.conf
   * bound from its state directory (created in its root if missing).
   */
  network?: string;
  /** `-p`: ports of the host forwarded to the container (CNI networks; see parsePublish). */
  publish?: PortMapping[];
  /** `-P`: every port the image EXPOSEs, each on a free host port. */
  publishAll?: boolean;
  /** `--dns`, `--dns-search`: replace the nameservers and search domains of the host's resolv.conf. */
  dns?: string[];
  dnsSearch?: string[];
  /** `--add-host NAME:IP` lines for /etc/hosts. */
  addHosts?: string[];
  /** `host` shares that namespace with the host, like Docker's `--pid host`. */
  pid?: 'host' | 'private';
  ipc?: 'host' | 'private';
  uts?: 'host' | 'private';
  cgroupns?: 'host' | 'private';
  /** A user namespace with these maps (container id -> host id). */
  idMappings?: { uid: IdMapping[]; gid: IdMapping[] };
  /**
   * `docker run --userns-remap default|USER[:GROUP]`: a user namespace with
   * the user's ranges of /etc/subuid and /etc/subgid (`default`: the
   * dockremap user's, created as dockerd does when missing). An image's
   * layers are seen through idmapped mounts. Not with `idMappings`.
   */
  usernsRemap?: string;
  /** Where `usernsRemap` reads the ranges (default /etc/subuid, /etc/subgid, and /etc/passwd, /etc/group for names). */
  subIdFiles?: SubIdFiles;
  /** Mount the root filesystem read-only. */
  readOnly?: boolean;
  /** tmpfs mounts: container path -> mount options (`size=64m,mode=1777`), as `docker run --tmpfs PATH[:OPTIONS]`; nosuid, nodev and noexec unless the options say otherwise. */
  tmpfs?: Record<string, string>;
  /** More mounts, in the OCI spec's form, after the defaults (`{ destination, type: 'bind', source, options: ['rbind'] }`). */
  mounts?: Mount[];
  /** `-v` and `--mount` in Docker's terms: bind mounts, named and anonymous volumes, tmpfs (see parseVolumeFlag, parseMountFlag); after `tmpfs` and `mounts`. */
  volumes?: VolumeMount[];
  /**
   * Give the process a terminal (`-t`): fds 0, 1 and 2 are a pty of the
   * container's devpts, and `container.terminal` is its master (stdio is
   * then ignored). A size sets the window before the process starts.
   */
  tty?: boolean | TerminalSize;
  /** A detached container's stdin stays open for `tsrun attach` (Docker's `-i` with `-d`); without `tty`, a pipe its monitor holds. */
  openStdin?: boolean;
  /** One value for all three, or one per fd. Default: 'pipe'. */
  stdio?: StdioOption | [StdioOption, StdioOption, StdioOption];
  /** Aborting kills the container with SIGKILL. */
  signal?: AbortSignal;
  /** Remove the container's state when it exits (`--rm`). */
  autoRemove?: boolean;
  /** Runtime state directory (default /run/tsrun, or $TSRUN_STATE). */
  stateDir?: string;
  /** SIGKILL the container if this process dies (default true). */
  dieWithParent?: boolean;
  /** Use MS_MOVE + chroot instead of pivot_root (tsrun also falls back by itself where pivot_root cannot work). */
  noPivot?: boolean;
  /** Capabilities added to Docker's default set (`NET_ADMIN`, `CAP_NET_ADMIN` or `ALL`). */
  capAdd?: string[];
  /** Capabilities removed from Docker's default set (`ALL` removes all but the added ones). */
  capDrop?: string[];
  /** Every capability, no seccomp filter, no masked or read-only paths, /sys writable, as `docker run --privileged`. */
  privileged?: boolean;
  /** PR_SET_NO_NEW_PRIVS: setuid binaries and file capabilities give nothing (default true; Docker's `--security-opt no-new-privileges=false` lifts it). */
  noNewPrivileges?: boolean;
  /**
   * The seccomp filter: Docker's default profile unless this says
   * `unconfined`, names a profile file in Docker's JSON format, or is such
   * a profile (`--security-opt seccomp=...`). None with `privileged`.
   */
  seccomp?: 'unconfined' | string | SeccompProfile;
  /** Resource limits (`--ulimit nofile=1024:2048`); a hard limit above tsrun's own needs CAP_SYS_RESOURCE. */
  ulimits?: Ulimit[];
  /** Host devices to add, as `docker run --device HOST[:CONTAINER][:PERMISSIONS]` (`/dev/fuse`, `/dev/loop0:/dev/disk:r`). */
  devices?: string[];
  /** Run the command under a small reaping init that forwards signals (`--init`), bound in as /dev/tsrun-init. */
  init?: boolean;
  logger?: Logger;
}

export const DEFAULT_STATE_DIR = '/run/tsrun';

/** The runtime state directory: the option, else $TSRUN_STATE, else /run/tsrun. */
export function stateDirOf(options: Pick<RunOptions, 'stateDir'>): string {
  return path.resolve(options.stateDir ?? process.env.TSRUN_STATE ?? DEFAULT_STATE_DIR);
}

/** Where `init` binds tsrun-monitor, whose name there makes it the init (native/monitor.cc). */
const INIT_PATH = '/dev/tsrun-init';

function envList(env: RunOptions['env']): string[] {
  if (!env) return [];
  const list = Array.isArray(env) ? env : Object.entries(env).map(([k, v]) => `${k}=${v}`);
  list.forEach((entry, i) => {
    if (!/^[^=\0]+=[^\0]*$/.test(entry)) throw new ValidationError(`env[${i}]`, `${JSON.stringify(entry)} is not KEY=VALUE`);
  });
  return list;
}

/** Later entries win, as with `docker run -e`. */
function mergeEnv(...lists: string[][]): string[] {
  const merged = new Map<string, string>();
  for (const entry of lists.flat()) merged.set(entry.slice(0, entry.indexOf('=')), entry);
  return [...merged.values()];
}

function checkRootfs(rootfs: string): string {
  if (!rootfs) throw new ValidationError('rootfs', 'is required');
  const absolute = path.resolve(rootfs);
  let stat: fs.Stats;
  try {
    stat = fs.statSync(absolute);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new ValidationError('rootfs', `${absolute} does not exist`);
    throw syscallErrorFrom('rootfs', err);
  }
  if (!stat.isDirectory()) throw new ValidationError('rootfs', `${absolute} is not a directory`);
  return fs.realpathSync.native(absolute);
}

export type NetworkMode = { kind: 'none' } | { kind: 'host' } | { kind: 'container'; container: string } | { kind: 'cni'; network: string };

/** What `network` asks for; the name of a CNI network is checked when the network is looked up. */
export function networkMode(network: string | undefined): NetworkMode {
  if (network === undefined || network === 'none') return { kind: 'none' };
  if (network === 'host') return { kind: 'host' };
  if (typeof network !== 'string' || network === '') throw new ValidationError('network', `${JSON.stringify(network)} is not a network mode`);
  if (network.startsWith('container:')) {
    const container = network.slice('container:'.length);
    if (!container) throw new ValidationError('network', 'container: needs a container name or id');
    return { kind: 'container', container };
  }
  if (!/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/.test(network)) throw new ValidationError('network', `${JSON.stringify(network)} is not none, host, container:NAME or a network name`);
  return { kind: 'cni', network };
}

function namespaceList(options: RunOptions): NamespaceType[] {
  const shared: Partial<Record<NamespaceType, boolean>> = {
    network: options.network === 'host',
    pid: options.pid === 'host',
    ipc: options.ipc === 'host',
    uts: options.uts === 'host',
    cgroup: options.cgroupns === 'host',
  };
  const list = DEFAULT_NAMESPACES.filter((ns) => !shared[ns]);
  return options.idMappings ? ['user', ...list] : list;
}

function containerPath(field: string, destination: string): string {
  if (typeof destination !== 'string' || !destination.startsWith('/')) throw new ValidationError(field, `${JSON.stringify(destination)} must be an absolute path`);
  const normalized = path.posix.normalize(destination);
  if (normalized === '/') throw new ValidationError(field, 'cannot mount over the root');
  return normalized;
}

function tmpfsMounts(tmpfs: RunOptions['tmpfs']): Mount[] {
  return Object.entries(tmpfs ?? {}).map(([destination, options]) => {
    const given = options ? options.split(',').filter(Boolean) : [];
    // Docker's defaults, each overridable (exec, suid, dev).
    const defaults = ['nosuid', 'nodev', 'noexec'].filter((d) => !given.includes(d.slice(2)));
    return { destination: containerPath(`tmpfs[${destination}]`, destination), type: 'tmpfs', source: 'tmpfs', options: [...defaults, ...given] };
  });
}

function extraMounts(mounts: RunOptions['mounts']): Mount[] {
  return (mounts ?? []).map((m, i) => {
    const destination = containerPath(`mounts[${i}].destination`, m.destination);
    const bind = (m.options ?? []).some((o) => o === 'bind' || o === 'rbind') || m.type === 'bind';
    if (bind) {
      if (!m.source || !path.isAbsolute(m.source)) throw new ValidationError(`mounts[${i}].source`, 'a bind mount needs an absolute source path');
      if (!fs.existsSync(m.source)) throw new ValidationError(`mounts[${i}].source`, `${m.source} does not exist`);
      const options = m.options ?? [];
      return { ...m, type: 'bind', destination, options: options.some((o) => o === 'bind' || o === 'rbind') ? options : ['rbind', ...options] };
    }
    if (!m.type) throw new ValidationError(`mounts[${i}].type`, 'a mount that is not a bind needs a type');
    return { ...m, destination };
  });
}

/**
 * Turns `run` options into the OCI spec the plan is built from. The limits
 * come in already converted and checked (resourcesFromOptions), so that a
 * bad one stops run() before it creates anything.
 */
export function buildSpec(options: RunOptions, id: string, resources: LinuxResources = {}, userMounts: Mount[] = [], joinNetwork?: string): Spec {
  if (!Array.isArray(options.args) || options.args.length === 0 || options.args.some((a) => typeof a !== 'string')) {
    throw new ValidationError('args', 'a command is required');
  }
  if (options.args[0] === '') throw new ValidationError('args[0]', 'the command is empty');
  const network = networkMode(options.network);
  if (network.kind === 'container' && !joinNetwork) throw new ValidationError('network', `the namespace of container ${network.container} was not resolved`);
  const rootfs = checkRootfs(options.rootfs ?? '');
  const namespaces = namespaceList(options);
  const ownUts = namespaces.includes('uts');
  if (options.hostname !== undefined && !ownUts) throw new ValidationError('hostname', 'cannot be set when the UTS namespace is the host\'s');
  if (options.hostname !== undefined && !/^[a-zA-Z0-9]([a-zA-Z0-9.-]{0,62})$/.test(options.hostname)) {
    throw new ValidationError('hostname', `${JSON.stringify(options.hostname)} is not a valid hostname`);
  }
  const cwd = options.cwd ?? '/';
  if (!cwd.startsWith('/')) throw new ValidationError('cwd', `${JSON.stringify(cwd)} must be an absolute path`);

  const userns = options.idMappings;
  if (userns) {
    validateIdMappings('idMappings.uid', userns.uid);
    validateIdMappings('idMappings.gid', userns.gid);
    if (!isMapped(userns.uid, 0) || !isMapped(userns.gid, 0)) throw new ValidationError('idMappings', 'uid 0 and gid 0 must be mapped');
  }

  const user = resolveUser(rootfs, options.user);
  const hostname = ownUts ? (options.hostname ?? id.slice(0, 12)) : undefined;
  const defaults = [`PATH=${DEFAULT_PATH}`, ...(hostname ? [`HOSTNAME=${hostname}`] : []), `HOME=${user.home}`];
  const env = mergeEnv(defaults, envList(options.env));
  const ownNetwork = namespaces.includes('network') && !joinNetwork;
  const privileged = options.privileged ?? false;
  const mounts = defaultMounts({ devptsGid: !userns || isMapped(userns.gid, 5), sysfs: !userns || ownNetwork, sysfsWritable: privileged });
  if (userns && !ownNetwork) {
    // sysfs cannot be mounted from a user namespace that does not own the
    // network namespace; bind the host's read-only instead, as runc does.
    mounts.push({ destination: '/sys', source: '/sys', options: ['rbind', 'nosuid', 'noexec', 'nodev', 'ro'] });
  }
  mounts.push(...tmpfsMounts(options.tmpfs), ...extraMounts(options.mounts), ...userMounts);
  const added = (options.devices ?? []).map((d, i) => parseDeviceOption(`devices[${i}]`, d));
  const devices = privileged ? hostDevices() : added.map((a) => a.device);
  const deviceRules = privileged ? [{ allow: true, access: 'rwm' }] : [...DEFAULT_DEVICE_RULES, ...added.map((a) => a.rule)];
  const { capabilities, noNewPrivileges, seccomp } = processPrivileges(options, user.uid);
  // The volumes and monitor modules are loaded only by the containers that
  // use them: they are a tenth of a plain `tsrun run`'s code otherwise.
  /* eslint-disable @typescript-eslint/no-require-imports */
  if (options.init) {
    // Under the /dev tmpfs: the root filesystem itself is not written to.
    mounts.push({ destination: INIT_PATH, source: (require('./monitor') as typeof Monitor).monitorBinary(), options: ['bind', 'ro', 'nosuid', 'nodev'] });
  }
  const rootfsPropagation = options.volumes?.length ? (require('./volumes') as typeof Volumes).rootPropagationFor(options.volumes) : 'rprivate';
  /* eslint-enable @typescript-eslint/no-require-imports */
  const spec: Spec = {
    ociVersion: OCI_VERSION,
    process: {
      args: options.init ? [INIT_PATH, '--', ...options.args] : [...options.args],
      env,
      cwd,
      user: { uid: user.uid, gid: user.gid, additionalGids: user.additionalGids },
      capabilities,
      noNewPrivileges,
      rlimits: rlimitsFromUlimits(options.ulimits),
    },
    root: { path: rootfs, readonly: options.readOnly ?? false },
    hostname,
    mounts,
    linux: {
      namespaces: namespaces.map((type) => (type === 'network' && joinNetwork ? { type, path: joinNetwork } : { type })),
      uidMappings: userns?.uid,
      gidMappings: userns?.gid,
      rootfsPropagation,
      resources: { ...resources, devices: deviceRules },
      devices,
      maskedPaths: privileged ? [] : [...DEFAULT_MASKED_PATHS],
      readonlyPaths: privileged ? [] : [...DEFAULT_READONLY_PATHS],
      seccomp,
    },
  };
  validateNamespaces(spec.linux.namespaces);
  return spec;
}
