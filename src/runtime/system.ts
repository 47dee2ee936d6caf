import fs = require('node:fs');
import path = require('node:path');
import type { CheckOptions, CheckReport } from '../storage/check';
import { overlayRoot } from '../storage/container-layers';
import { Store } from '../storage/store';
import { removeLeftoverContainerCgroups } from './container-resources';
import { ContainerLocation, abandonedContainerIds, listContainers, removeContainer } from './containers';
import { storeRoot } from './image-container';
import { removeLeftoverAttachments } from '../network/attachments';
import { silentLogger } from '../logger';
import { seccompCacheDirIn } from '../linux/seccomp';
import { stateDirOf } from './options';
import { treeSize } from '../util/tree-size';
import { pruneVolumes, volumeUsage } from './volumes';

/**
 * Host-wide housekeeping: `tsrun system prune`, `df` and `check`. Prune is
 * also how the host and the store get back to a clean state after a tsrun
 * was killed half-way through an operation: what it made is either
 * finished by a later command or found and removed here.
 */

export interface SystemPruneOptions extends ContainerLocation {
  /** Every image no container uses, not only the dangling ones (`docker system prune -a`); with `volumes`, unused named volumes too. */
  all?: boolean;
  /** Also the volumes no container names: anonymous ones (`all`: named ones too). */
  volumes?: boolean;
}

export interface SystemPruneResult {
  /** Ids of the containers removed: exited, or left by a tsrun that was killed. */
  containers: string[];
  /** Ids of the containers whose leftover cgroups were removed. */
  cgroups: string[];
  /** Ids of the containers whose network attachments a killed tsrun left, now detached (CNI DEL). */
  networks: string[];
  /** Image ids, then the diff IDs of the layers that went with them. */
  images: string[];
  volumes: string[];
  reclaimedBytes: number;
  /** What could not be removed; the rest was. */
  failed: { what: string; error: unknown }[];
}

export async function pruneSystem(options: SystemPruneOptions = {}): Promise<SystemPruneResult> {
  const result: SystemPruneResult = { containers: [], cgroups: [], networks: [], images: [], volumes: [], reclaimedBytes: 0, failed: [] };
  const abandoned = abandonedContainerIds(options);
  for (const container of listContainers(options)) {
    if (!abandoned.has(container.id)) continue;
    try {
      result.reclaimedBytes += containerSize(options, container.id);
      await removeContainer(container.id, options);
      result.containers.push(container.id);
    } catch (error) {
      result.failed.push({ what: `container ${container.id}`, error });
    }
  }
  const cgroups = await removeLeftoverContainerCgroups(options);
  result.cgroups = cgroups.removed;
  result.failed.push(...cgroups.failed.map(({ id, error }) => ({ what: `cgroup of container ${id}`, error })));
  const networks = await removeLeftoverAttachments(storeRoot(options), options.logger ?? silentLogger);
  result.networks = networks.removed;
  result.failed.push(...networks.failed.map(({ id, error }) => ({ what: `network of container ${id}`, error })));
  if (fs.existsSync(storeRoot(options))) {
    const images = await Store.open(storeRoot(options), options.logger).prune({ all: options.all });
    result.images = images.deleted;
    result.reclaimedBytes += images.reclaimedBytes;
  }
  // Derived data, rebuilt by the next start; a tsrun killed while writing an entry leaves a temp file there.
  fs.rmSync(seccompCacheDirIn(stateDirOf(options)), { recursive: true, force: true });
  if (options.volumes) {
    const volumes = await pruneVolumes({ root: options.root, all: options.all });
    result.volumes = volumes.removed;
    result.reclaimedBytes += volumes.reclaimedBytes;
  }
  return result;
}

export interface DiskUsageRow {
  total: number;
  active: number;
  size: number;
  reclaimable: number;
}

/** `docker system df`: images (shared layers once), containers (their writable layers) and volumes. */
export async function diskUsage(options: ContainerLocation = {}): Promise<{ images: DiskUsageRow; containers: DiskUsageRow; volumes: DiskUsageRow }> {
  const root = storeRoot(options);
  const images = fs.existsSync(root) ? Store.open(root, options.logger).imageUsage() : { total: 0, active: 0, size: 0, reclaimable: 0 };
  const containers = listContainers(options);
  const sizes = containers.map((c) => ({ running: c.status === 'running', size: containerSize(options, c.id) }));
  return {
    images,
    containers: {
      total: containers.length,
      active: sizes.filter((s) => s.running).length,
      size: sizes.reduce((sum, s) => sum + s.size, 0),
      reclaimable: sizes.filter((s) => !s.running).reduce((sum, s) => sum + s.size, 0),
    },
    volumes: fs.existsSync(root) ? await volumeUsage({ root: options.root }) : { total: 0, active: 0, size: 0, reclaimable: 0 },
  };
}

/** `tsrun system check`: see storage/check.ts. */
export async function checkSystem(options: ContainerLocation & CheckOptions = {}): Promise<CheckReport> {
  return Store.open(storeRoot(options), options.logger).check(options);
}

/** Bytes in a container's writable layer (0 for a container on a plain root filesystem). */
function containerSize(location: ContainerLocation, id: string): number {
  return treeSize(path.join(overlayRoot(storeRoot(location)), id, 'diff'));
}

