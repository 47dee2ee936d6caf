import * as fs from 'node:fs';
import * as path from 'node:path';
import { ValidationError, syscallErrorFrom } from '../errors';
import type { ResourceOptions } from '../linux/cgroups/resources';
import { isMapped, validateIdMappings } from '../linux/idmap';
import { validateNamespaces } from '../linux/namespaces';
import { resolveUser } from '../linux/users';
import { DEFAULT_NAMESPACES, DEFAULT_PATH, OCI_VERSION, defaultMounts } from '../oci/defaults';
import type { IdMapping, LinuxResources, NamespaceType, Spec } from '../oci/runtime-spec';
import type { Logger } from '../logger';
import { monitorBinary } from './monitor';

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
  /** `none` (own namespace with loopback only) or `host`. */
  network?: 'none' | 'host';
  /** `host` shares that namespace with the host, like Docker's `--pid host`. */
  pid?: 'host' | 'private';
  ipc?: 'host' | 'private';
  uts?: 'host' | 'private';
  cgroupns?: 'host' | 'private';
  /** A user namespace with these maps (container id -> host id). */
  idMappings?: { uid: IdMapping[]; gid: IdMapping[] };
  /** Mount the root filesystem read-only. */
  readOnly?: boolean;
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
  /** Run the command under a small reaping init that forwards signals (`--init`), bound in as /dev/tsrun-init. */
  init?: boolean;
  logger?: Logger;
}

export const DEFAULT_STATE_DIR = '/run/tsrun';

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

/**
 * Turns `run` options into the OCI spec the plan is built from. The limits
 * come in already converted and checked (resourcesFromOptions), so that a
 * bad one stops run() before it creates anything.
 */
export function buildSpec(options: RunOptions, id: string, resources: LinuxResources = {}): Spec {
  if (!Array.isArray(options.args) || options.args.length === 0 || options.args.some((a) => typeof a !== 'string')) {
    throw new ValidationError('args', 'a command is required');
  }
  if (options.args[0] === '') throw new ValidationError('args[0]', 'the command is empty');
  if (options.network !== undefined && options.network !== 'none' && options.network !== 'host') {
    throw new ValidationError('network', `${JSON.stringify(options.network)} is not supported (none, host)`);
  }
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
  const ownNetwork = namespaces.includes('network');
  const mounts = defaultMounts({ devptsGid: !userns || isMapped(userns.gid, 5), sysfs: !userns || ownNetwork });
  if (userns && !ownNetwork) {
    // sysfs cannot be mounted from a user namespace that does not own the
    // network namespace; bind the host's read-only instead, as runc does.
    mounts.push({ destination: '/sys', source: '/sys', options: ['rbind', 'nosuid', 'noexec', 'nodev', 'ro'] });
  }
  if (options.init) {
    // Under the /dev tmpfs: the root filesystem itself is not written to.
    mounts.push({ destination: INIT_PATH, source: monitorBinary(), options: ['bind', 'ro', 'nosuid', 'nodev'] });
  }
  const spec: Spec = {
    ociVersion: OCI_VERSION,
    process: { args: options.init ? [INIT_PATH, '--', ...options.args] : [...options.args], env, cwd, user: { uid: user.uid, gid: user.gid, additionalGids: user.additionalGids } },
    root: { path: rootfs, readonly: options.readOnly ?? false },
    hostname,
    mounts,
    linux: {
      namespaces: namespaces.map((type) => ({ type })),
      uidMappings: userns?.uid,
      gidMappings: userns?.gid,
      rootfsPropagation: 'rprivate',
      resources,
    },
  };
  validateNamespaces(spec.linux.namespaces);
  return spec;
}
