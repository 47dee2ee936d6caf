import { ConflictError, ValidationError } from '../errors';
import { LeftoverRemoval, ResourceOptions, StatsSample, StatsView, hasResources, removeLeftoverCgroups, resourcesFromOptions, sampleStats, statsView } from '../linux/cgroups';
import type { LinuxResources } from '../oci/runtime-spec';
import { cgroupHost, containerCgroup } from './container-cgroup';
import { ContainerLocation, ContainerSummary, abandonedContainerIds, findContainer, listContainers, saveContainerResources, summaryOf } from './containers';

/** One `docker stats` row: a container and its numbers between two samples. */
export interface ContainerStats extends StatsView {
  id: string;
  name: string;
}

export interface StatsOptions extends ContainerLocation {
  /** Time between the two samples a row is made of (default 1000 ms, as docker stats). */
  intervalMs?: number;
  /** Stops a stream between two rounds. */
  signal?: AbortSignal;
}

const DEFAULT_STATS_INTERVAL_MS = 1000;

/** The named containers, which must be running; with no names, every running container. */
function runningContainers(references: string[], location: ContainerLocation): ContainerSummary[] {
  if (references.length === 0) return listContainers(location).filter((c) => c.status === 'running');
  return references.map((reference) => {
    const summary = summaryOf(findContainer(reference, location));
    if (summary.status !== 'running') throw new ConflictError(`container ${reference} is not running`);
    return summary;
  });
}

/** A sample of each container's cgroup; null for one that exited meanwhile (its cgroup is gone). */
function sampleAll(containers: ContainerSummary[]): (StatsSample | null)[] {
  return containers.map((c) => {
    const cgroup = containerCgroup(c.id);
    if (!cgroup.exists()) return null;
    const sample = sampleStats(cgroup);
    // Read as zeros when the cgroup went while its files were read.
    return cgroup.exists() ? sample : null;
  });
}

const sleep = (ms: number, signal?: AbortSignal): Promise<void> =>
  new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
    function done(): void {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
  });

/**
 * `docker stats`: a row per container every interval, each from its
 * cgroup's counters at the start and the end of the interval (CPU % needs
 * two). Without names, the running containers of each round; a named
 * container that is not running is an error, one that stops drops out,
 * and the stream ends when none is left.
 *
 * @example
 * for await (const rows of streamContainerStats(['web'])) console.log(rows[0].cpuPercent);
 */
export async function* streamContainerStats(references: string[], options: StatsOptions = {}): AsyncGenerator<ContainerStats[]> {
  let containers = runningContainers(references, options);
  let previous = sampleAll(containers);
  while (!options.signal?.aborted) {
    await sleep(options.intervalMs ?? DEFAULT_STATS_INTERVAL_MS, options.signal);
    if (options.signal?.aborted) return;
    const current = sampleAll(containers);
    const rows: ContainerStats[] = [];
    containers.forEach((c, i) => {
      const [before, after] = [previous[i], current[i]];
      if (before && after) rows.push({ id: c.id, name: c.name, ...statsView(before, after) });
    });
    yield rows;
    if (references.length === 0) {
      containers = runningContainers([], options);
      previous = sampleAll(containers);
    } else {
      containers = containers.filter((_, i) => current[i] !== null);
      previous = current.filter((sample): sample is StatsSample => sample !== null);
      if (containers.length === 0) return;
    }
  }
}

/** One round of `docker stats --no-stream`: two samples an interval apart. */
export async function containerStats(references: string[], options: StatsOptions = {}): Promise<ContainerStats[]> {
  for await (const rows of streamContainerStats(references, options)) return rows;
  return [];
}

/** Each group of `change` over the same group of `base`; a group `change` lacks stays. */
function mergeResources(base: LinuxResources, change: LinuxResources): LinuxResources {
  const merged: LinuxResources = { ...base };
  for (const group of ['memory', 'cpu', 'pids', 'blockIO'] as const) {
    if (change[group]) Object.assign(merged, { [group]: { ...base[group], ...change[group] } });
  }
  return merged;
}

export interface UpdateResult {
  id: string;
  /** Limits the kernel could not apply (see CgroupDriver.update). */
  warnings: string[];
  /** The container's limits now. */
  resources: LinuxResources;
}

/**
 * `docker update`: changes the limits of a running container (whichever
 * tsrun process started it), in its cgroup and in its record. Only the
 * options given change.
 */
export function updateContainer(reference: string, options: ResourceOptions, location: ContainerLocation = {}): UpdateResult {
  const change = resourcesFromOptions(options, { mode: 'update' });
  if (!hasResources(change)) throw new ValidationError('resources', 'nothing to update: give at least one limit');
  const found = findContainer(reference, location);
  const summary = summaryOf(found);
  const cgroup = containerCgroup(summary.id);
  if (summary.status !== 'running' || !cgroup.exists()) throw new ConflictError(`cannot update container ${reference}: it is not running`);
  const warnings = cgroup.update(change);
  const resources = mergeResources(summary.resources, change);
  saveContainerResources(found, location, resources);
  return { id: summary.id, warnings, resources };
}

/**
 * Removes the cgroups that tsrun processes killed mid-run (SIGKILL, a
 * crash) left behind: those of this location's containers that nothing
 * looks after any more, with whatever still runs inside. A cgroup that no
 * record here knows of is left alone: it may belong to a container of
 * another state directory or store.
 */
export async function removeLeftoverContainerCgroups(location: ContainerLocation = {}): Promise<LeftoverRemoval> {
  // A container's record is written before its cgroup is made, so one
  // created after this listing is unknown here, and kept.
  const abandoned = abandonedContainerIds(location);
  const removal = await removeLeftoverCgroups((id) => !abandoned.has(id), { host: cgroupHost() });
  for (const { id, error } of removal.failed) location.logger?.warn({ id, err: error }, 'removing a leftover cgroup failed');
  return removal;
}
