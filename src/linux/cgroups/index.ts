/**
 * Container cgroups: the host's layout (host.ts), one driver per cgroup
 * version behind CgroupDriver (v1.ts, v2.ts), limits in OCI terms
 * (resources.ts) converted in one place (convert.ts), stats (stats.ts) and
 * the cleanup of cgroups a killed tsrun left behind (below).
 *
 * How a container uses it, in order:
 *
 *   resources = resourcesFromOptions(flags)      validate early: ValidationError names the flag
 *   state record 'creating' written             so that a concurrent prune sees the id as active
 *   cg = createCgroupDriver(id)
 *   warnings = cg.create(resources)              log each; throws leave nothing behind
 *   plan = [...cg.joinSteps(), ...the rest]      first steps of the plan: before setns/unshare of
 *                                                the cgroup namespace and before any uid change
 *   spawn; on a spawn failure: await cg.destroy()
 *   ... stats: sampleStats(cg) twice, statsView(a, b); update: cg.update(resourcesFromOptions(f, { mode: 'update' }))
 *   init exited: oomKilled = cg.oomKilled()      read before destroy
 *   await cg.destroy()                           kills what is left, rmdir with EBUSY retries
 *   prune / any command: removeLeftoverCgroups(id => state says creating|running|paused)
 */
import fs = require('node:fs');
import path = require('node:path');
import { syscallErrorFrom } from '../../errors';
import { CgroupDriver, defaultCgroupParent } from './driver';
import { CgroupOps, checkCgroupNames, descendants, readProcs } from './files';
import { CgroupHost, detectCgroupHost } from './host';
import type * as V1 from './v1';
import type * as V2 from './v2';

export * from './convert';
export * from './cpu-list';
export * from './driver';
export * from './host';
export * from './resources';
export * from './stats';
export type { V1DriverOptions } from './v1';
export type { CgroupOps } from './files';

export interface CgroupDriverOptions {
  /** The host's layout (default: detectCgroupHost()). */
  host?: CgroupHost;
  /** Default "tsrun". */
  parent?: string;
  ops?: Partial<CgroupOps>;
}

/**
 * The driver for a container's cgroup on this host: V2Driver on a unified
 * host, V1Driver on a legacy or hybrid one (a hybrid host's cgroup2 mount
 * has no controllers; the container gets a cgroup there only for
 * cgroup.kill and cgroup.freeze, as runc does).
 */
export function createCgroupDriver(id: string, options: CgroupDriverOptions = {}): CgroupDriver {
  const host = options.host ?? detectCgroupHost();
  const common = { parent: options.parent, ops: options.ops };
  // A host needs one of the two drivers; each is ~15 KiB of a CLI start's code, loaded here.
  /* eslint-disable @typescript-eslint/no-require-imports */
  if (host.mode === 'unified') return new (require('./v2') as typeof V2).V2Driver(host.unifiedMount as string, id, common);
  const { V1Driver } = require('./v1') as typeof V1;
  /* eslint-enable @typescript-eslint/no-require-imports */
  const mounts = Object.values(host.v1Mounts);
  return new V1Driver(mounts.length > 0 ? path.dirname(mounts[0]) : '/sys/fs/cgroup', id, {
    ...common,
    mounts: host.v1Mounts,
    unifiedMount: host.mode === 'hybrid' ? host.unifiedMount : null,
  });
}

/** The root of every hierarchy a container's cgroup has a directory in. */
function hierarchyRoots(host: CgroupHost): string[] {
  const roots = new Set<string>(host.mode === 'unified' ? [] : Object.values(host.v1Mounts));
  if (host.unifiedMount && host.mode !== 'legacy') roots.add(host.unifiedMount);
  return [...roots];
}

/** A container cgroup found under the parent. */
export interface ContainerCgroup {
  id: string;
  /** Its directory in each hierarchy where it exists. */
  paths: string[];
  /** Processes still inside (in any hierarchy). */
  pids: number[];
}

/**
 * Every container cgroup under the parent ("tsrun") in any hierarchy,
 * sorted by id. A cgroup exists from `create` until `destroy`; one whose
 * container is not running was left by a tsrun that died (SIGKILL, crash).
 */
export function listContainerCgroups(options: Omit<CgroupDriverOptions, 'ops'> = {}): ContainerCgroup[] {
  const host = options.host ?? detectCgroupHost();
  const parent = options.parent ?? defaultCgroupParent();
  checkCgroupNames('x', parent);
  const found = new Map<string, ContainerCgroup>();
  for (const root of hierarchyRoots(host)) {
    const base = path.join(root, parent);
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(base, { withFileTypes: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw syscallErrorFrom('cgroups', err, 'listing container cgroups');
    }
    for (const entry of entries) {
      if (!entry.isDirectory()) continue;
      const dir = path.join(base, entry.name);
      const item = found.get(entry.name) ?? { id: entry.name, paths: [], pids: [] };
      item.paths.push(dir);
      const pids = new Set([...item.pids, ...[dir, ...descendants(dir)].flatMap(readProcs)]);
      item.pids = [...pids].sort((a, b) => a - b);
      found.set(entry.name, item);
    }
  }
  return [...found.values()].sort((a, b) => a.id.localeCompare(b.id));
}

/**
 * Container cgroups whose container is not active: `isActive(id)` says
 * whether tsrun's state has that container creating, running or paused
 * (the caller's state store knows; this module does not read it).
 */
export function findLeftoverCgroups(isActive: (id: string) => boolean, options: Omit<CgroupDriverOptions, 'ops'> = {}): ContainerCgroup[] {
  return listContainerCgroups(options).filter((cg) => !isActive(cg.id));
}

export interface LeftoverRemoval {
  removed: string[];
  failed: { id: string; error: unknown }[];
}

/**
 * Kills what is inside and removes every leftover container cgroup
 * (`tsrun system prune`, or any tsrun command on its way). One failure does
 * not stop the others; they are reported in `failed`.
 */
export async function removeLeftoverCgroups(isActive: (id: string) => boolean, options: CgroupDriverOptions = {}): Promise<LeftoverRemoval> {
  const host = options.host ?? detectCgroupHost();
  const result: LeftoverRemoval = { removed: [], failed: [] };
  for (const cg of findLeftoverCgroups(isActive, { ...options, host })) {
    try {
      await createCgroupDriver(cg.id, { ...options, host }).destroy();
      result.removed.push(cg.id);
    } catch (error) {
      result.failed.push({ id: cg.id, error });
    }
  }
  return result;
}

/**
 * Removes the parent cgroup ("tsrun") from every hierarchy where it is
 * empty; returns whether it is gone everywhere. Containers never need this
 * (the parent is shared and cheap); tests and `system prune` use it.
 */
export function removeCgroupParent(options: CgroupDriverOptions = {}): boolean {
  const host = options.host ?? detectCgroupHost();
  const parent = options.parent ?? defaultCgroupParent();
  checkCgroupNames('x', parent);
  const rmdir = options.ops?.rmdir ?? ((dir: string) => fs.rmdirSync(dir));
  let gone = true;
  for (const root of hierarchyRoots(host)) {
    const segments = parent.split('/');
    for (let n = segments.length; n > 0; n--) {
      const dir = path.join(root, ...segments.slice(0, n));
      try {
        rmdir(dir);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'ENOENT') continue;
        if (code === 'EBUSY' || code === 'ENOTEMPTY') {
          gone = false;
          break;
        }
        throw syscallErrorFrom('cgroups', err, 'removing the parent cgroup');
      }
    }
  }
  return gone;
}
