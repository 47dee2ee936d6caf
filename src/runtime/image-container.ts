import fs = require('node:fs');
import path = require('node:path');
import { NotFoundError, SyscallError, ValidationError, syscallErrorFrom } from '../errors';
import { Logger, silentLogger } from '../logger';
import type { IdMapping, LinuxResources } from '../oci/runtime-spec';
import { OverlayLayout, detachOverlay, mountOverlay } from '../linux/overlay';
import { cachedShiftedCopy, detachIdmapped, hostIdOf, idmappedBinds } from '../linux/userns-remap';
import { resolveInRoot } from '../linux/path-in-root';
import { ProcessIdentity, ownIdentity, processStartTime } from '../linux/proc';
import { containerLayout, createContainerLayers, initLayerName, removeContainerLayers } from '../storage/container-layers';
import { networkFiles } from '../storage/init-layer';
import type { NetworkFiles } from './container-network';
import type { ResolvedMounts } from './volumes';
import { ContainerRecord, ContainerStore } from '../storage/containers';
import { withFileLock } from '../util/file-lock';
import type { ExitResult } from './container';
import { RunOptions, privilegeOptions } from './options';
import { crashPoint } from '../util/crash-point';

export const DEFAULT_STORE_ROOT = '/var/lib/tsrun';

export function storeRoot(options: Pick<RunOptions, 'root'>): string {
  return path.resolve(options.root ?? process.env.TSRUN_ROOT ?? DEFAULT_STORE_ROOT);
}

export function storeLockFile(root: string): string {
  return path.join(root, 'lock');
}

/** The process an image runs, as `docker run` merges it: --entrypoint resets the image's Cmd. */
export function imageProcess(
  imageConfig: { Entrypoint?: string[] | null; Cmd?: string[] | null; Env?: string[] | null; WorkingDir?: string; User?: string } | undefined,
  options: Pick<RunOptions, 'args' | 'entrypoint' | 'env' | 'cwd' | 'user'>,
): { args: string[]; env: string[]; cwd: string; user: string | undefined } {
  const entrypoint = options.entrypoint !== undefined ? options.entrypoint : (imageConfig?.Entrypoint ?? []);
  const command = options.args && options.args.length > 0 ? options.args : options.entrypoint !== undefined ? [] : (imageConfig?.Cmd ?? []);
  const args = [...entrypoint, ...command];
  if (args.length === 0) throw new ValidationError('args', 'no command specified: the image has neither Entrypoint nor Cmd');
  const extraEnv = Array.isArray(options.env) ? options.env : Object.entries(options.env ?? {}).map(([k, v]) => `${k}=${v}`);
  return {
    args,
    env: [...(imageConfig?.Env ?? []), ...extraEnv],
    cwd: options.cwd ?? (imageConfig?.WorkingDir || '/'),
    user: options.user ?? (imageConfig?.User || undefined),
  };
}

/** A container made from an image, between its creation and its removal. */
export interface ImageContainer {
  record: ContainerRecord;
  layout: OverlayLayout;
  /** The merged root filesystem, mounted in this mount namespace until `started` or `startFailed`. */
  rootfs: string;
  process: { args: string[]; env: string[]; cwd: string; user: string | undefined };
  networkFiles(): NetworkFiles;
  started(pid: number, startTime: number | undefined): void;
  usesMounts(mounts: ResolvedMounts): void;
  created(pid: number, monitor: ProcessIdentity): void;
  startFailed(): Promise<void>;
  exited(result: ExitResult): Promise<void>;
}

/**
 * Creates the container's record and layers under the store lock, so that
 * neither an `rmi` nor a garbage collection can take its image's layers
 * away, then mounts its root filesystem.
 */
export async function createImageContainer(
  options: RunOptions & { image: string },
  id: string,
  name: string,
  resources: LinuxResources,
  logger: Logger,
): Promise<ImageContainer> {
  const root = storeRoot(options);
  const containers = new ContainerStore(root);
  const lock = storeLockFile(root);
  // The store's modules (compression, tar) are loaded only for image containers.
  const { Store } = await import('../storage/store');
  // A store that was never written to has no lock file yet, and no images: the lookup says so.
  fs.mkdirSync(root, { recursive: true, mode: 0o700 });
  const { record, layout, process, exposedPorts } = await withFileLock(lock, 'exclusive', () => {
    const image = Store.open(root, logger).resolve(options.image);
    const process = imageProcess(image.config.config, options);
    const record: ContainerRecord = {
      id,
      name,
      created: new Date().toISOString(),
      image: options.image,
      imageId: image.id,
      layers: image.layers.map((l) => l.diffID),
      args: process.args,
      env: process.env,
      cwd: process.cwd,
      user: process.user ?? '',
      hostname: options.hostname,
      hostConfig: { autoRemove: options.autoRemove ?? false, readOnly: options.readOnly ?? false, network: options.network ?? 'none', resources, privileges: privilegeOptions(options) },
      state: { status: 'created', pid: 0, owner: ownIdentity() },
    };
    containers.create(record);
    crashPoint('run:record');
    try {
      const hostname = options.uts === 'host' ? fs.readFileSync('/proc/sys/kernel/hostname', 'utf8').trim() : (options.hostname ?? id.slice(0, 12));
      const layout = createContainerLayers(root, id, image.layers.map((l) => l.link), { hostname, network: options.network ?? 'none' });
      crashPoint('run:layers');
      return { record, layout, process, exposedPorts: image.config.config?.ExposedPorts };
    } catch (err) {
      containers.remove(record);
      throw err;
    }
  });

  return mountedContainer(options, record, layout, process, exposedPorts, logger);
}

/**
 * A stopped container made from an image, to start again: its record and
 * layers as they are (the writable layer keeps its changes), mounted anew.
 */
export async function reopenImageContainer(options: RunOptions, id: string): Promise<ImageContainer> {
  const root = storeRoot(options);
  const containers = new ContainerStore(root);
  const record = containers.load(id);
  record.state = { ...record.state, status: 'created', pid: 0, owner: ownIdentity() };
  containers.save(record);
  const process = { args: record.args, env: record.env, cwd: record.cwd, user: record.user || undefined };
  const logger = options.logger ?? silentLogger;
  const exposedPorts = options.publishAll ? await imageExposedPorts(root, record.imageId, logger) : undefined;
  return mountedContainer({ ...options, autoRemove: record.hostConfig.autoRemove }, record, containerLayout(root, id), process, exposedPorts, logger, true);
}

/** The image's EXPOSE, for `-P` on a restart; none if the image has gone meanwhile. */
async function imageExposedPorts(root: string, imageId: string, logger: Logger): Promise<NetworkFiles['exposedPorts']> {
  const { Store } = await import('../storage/store');
  try {
    return await withFileLock(storeLockFile(root), 'shared', () => Store.open(root, logger).resolve(imageId).config.config?.ExposedPorts);
  } catch (err) {
    if (err instanceof NotFoundError) return undefined;
    throw err;
  }
}

/** Mounts the container's root filesystem; what is returned records its start and exit. */
async function mountedContainer(
  options: RunOptions,
  record: ContainerRecord,
  layout: OverlayLayout,
  process: ImageContainer['process'],
  exposedPorts: NetworkFiles['exposedPorts'],
  logger: Logger,
  reopened = false,
): Promise<ImageContainer> {
  const root = storeRoot(options);
  const containers = new ContainerStore(root);
  const lock = storeLockFile(root);
  const id = record.id;
  const remove = (): Promise<void> =>
    withFileLock(lock, 'exclusive', () => {
      removeContainerLayers(root, id);
      containers.remove(record);
    });
  let mounted = false;
  const unmount = (): void => {
    if (mounted) detachOverlay(layout.merged);
    mounted = false;
  };

  try {
    if (options.idMappings) mountRemappedOverlay(layout, options.idMappings, logger);
    else mountOverlay(layout);
    mounted = true;
    crashPoint('run:mounted');
    createWorkingDir(layout.merged, process.cwd);
  } catch (err) {
    unmount();
    if (!reopened) await remove();
    throw err;
  }
  return {
    record,
    layout,
    rootfs: layout.merged,
    process,
    networkFiles: () => ({ ...networkFiles(path.join(layout.base, initLayerName(id), 'diff')), mounts: [], exposedPorts }),
    usesMounts(mounts) {
      record.hostConfig.volumes = mounts.volumes;
      record.hostConfig.mounts = mounts.mounts;
    },
    started(pid, startTime) {
      // The container has its own copy of the mount; detaching the host's
      // means nothing is left mounted when the container goes, however it goes.
      unmount();
      record.state = { ...record.state, status: 'running', pid, pidStartTime: startTime, startedAt: new Date().toISOString() };
      containers.save(record);
    },
    created(pid, monitor) {
      unmount();
      record.state = { ...record.state, status: 'created', pid, pidStartTime: processStartTime(pid) ?? undefined, owner: monitor };
      containers.save(record);
    },
    async startFailed() {
      unmount();
      if (options.autoRemove) await remove();
    },
    async exited(result) {
      if (options.autoRemove) {
        await remove();
        return;
      }
      try {
        containers.update(id, (r) => {
          r.state = { ...r.state, status: 'exited', pid: 0, exitCode: result.exitCode, oomKilled: result.oomKilled, finishedAt: new Date().toISOString() };
        });
      } catch (err) {
        // `tsrun rm -f` removed it while it ran.
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      }
    },
  };
}

/**
 * With a user namespace, the layers are seen through idmapped mounts, so
 * that what host root owns in them the container's root owns; the
 * writable layer's root goes to the container's root on the host, and
 * files the container writes land with its host ids. The idmapped binds
 * are detached once overlayfs holds its own references to them. Where the
 * store's filesystem cannot take idmapped mounts (ramfs, older kernels),
 * each layer is used through a copy with shifted owners, made once per
 * set of maps and kept with the layer.
 */
function mountRemappedOverlay(layout: OverlayLayout, ids: { uid: IdMapping[]; gid: IdMapping[] }, logger: Logger): void {
  const containerDir = path.dirname(path.join(layout.base, layout.upper));
  // The container's root, an unprivileged host id, must pass through the
  // store to its root filesystem: as dockerd with userns-remap, the
  // directories above it become traversable (o+x, not readable).
  for (const dir of [path.dirname(layout.base), layout.base, containerDir]) fs.chmodSync(dir, fs.statSync(dir).mode | 0o011);
  for (const dir of [layout.upper, layout.work]) fs.chownSync(path.join(layout.base, dir), hostIdOf(ids.uid, 0), hostIdOf(ids.gid, 0));
  const lowers = layout.lower.map((l) => path.join(layout.base, l));
  let binds: string[] = [];
  try {
    binds = idmappedBinds(lowers, path.join(containerDir, 'idmapped'), ids.uid, ids.gid);
  } catch (err) {
    if (!(err instanceof SyscallError && IDMAP_UNSUPPORTED.has(err.code))) throw err;
    logger.debug({ err: err.message }, 'no idmapped mounts on this store: using layer copies with shifted owners');
  }
  try {
    const lower = binds.length > 0 ? binds : lowers.map((l) => cachedShiftedCopy(fs.realpathSync(l), ids.uid, ids.gid));
    mountOverlay({ ...layout, base: containerDir, lower: lower.map((l) => path.relative(containerDir, l)), upper: path.basename(layout.upper), work: path.basename(layout.work) });
  } finally {
    detachIdmapped(binds);
  }
}

/** What mount_setattr says where a filesystem or kernel has no idmapped mounts. */
const IDMAP_UNSUPPORTED = new Set(['EINVAL', 'EOPNOTSUPP', 'ENOSYS', 'EPERM']);

/** Docker creates a missing working directory in the container's writable layer. */
function createWorkingDir(rootfs: string, cwd: string): void {
  if (!cwd.startsWith('/')) throw new ValidationError('cwd', `${JSON.stringify(cwd)} must be an absolute path`);
  const target = resolveInRoot(rootfs, cwd);
  try {
    fs.mkdirSync(target, { recursive: true, mode: 0o755 });
  } catch (err) {
    throw syscallErrorFrom('workdir', err);
  }
}
