import path = require('node:path');
import { ConflictError, NotFoundError, TsrunError } from '../errors';
import type { Logger } from '../logger';
import { silentLogger } from '../logger';
import { detachOverlay } from '../linux/overlay';
import { isRunning } from '../linux/proc';
import { VolumeStore } from '../storage/volumes';
import { findAttachment } from '../network/attachments';
import { overlayRoot, removeContainerLayers } from '../storage/container-layers';
import { ContainerRecord, ContainerStore } from '../storage/containers';
import { diffLayer, listChanges } from '../storage/diff';
import { Store } from '../storage/store';
import type { Image } from '../storage/store';
import { withFileLock } from '../util/file-lock';
import type { LinuxResources } from '../oci/runtime-spec';
import { containerCgroup } from './container-cgroup';
import { ContainerInspect, containerInspect } from './container-inspect';
import { storeLockFile, storeRoot } from './image-container';
import { stateDirOf } from './options';
import { ContainerState, StateStore } from './state';
import { MonitorFiles } from './monitor';
import { OciStatus, checkOperation } from './lifecycle';
import type { ProcessIdentity } from '../linux/proc';
import { signalNumber } from './signals';
import { signalProcess } from './process-signal';

export interface ContainerLocation {
  /** The image store (default /var/lib/tsrun, or $TSRUN_ROOT). */
  root?: string;
  /** Runtime state of containers started on a plain root filesystem (default /run/tsrun, or $TSRUN_STATE). */
  stateDir?: string;
  logger?: Logger;
}

/** One container as `tsrun ps` shows it. */
export interface ContainerSummary {
  id: string;
  name: string;
  /** The image as it was named, or `rootfs:DIR`. */
  image: string;
  command: string[];
  created: string;
  status: 'created' | 'running' | 'exited';
  exitCode?: number;
  startedAt?: string;
  finishedAt?: string;
  pid: number;
  /** Whether the OOM killer ended it (exited containers). */
  oomKilled: boolean;
  /** Its limits, as asked for at run and changed by `tsrun update`. */
  resources: LinuxResources;
}

/** A container of either kind, with the files of its monitor (which only detached containers have). */
export type Found = ({ kind: 'image'; record: ContainerRecord } | { kind: 'rootfs'; state: ContainerState }) & { monitor: MonitorFiles };

function stateStore(location: ContainerLocation): StateStore {
  return new StateStore(stateDirOf(location));
}

function withMonitor<T extends { kind: 'image'; record: ContainerRecord } | { kind: 'rootfs'; state: ContainerState }>(found: T, location: ContainerLocation): T & { monitor: MonitorFiles } {
  const id = found.kind === 'image' ? found.record.id : found.state.id;
  return { ...found, monitor: MonitorFiles.of(stateDirOf(location), id) };
}

/** The fields of a container's state both kinds keep (an image container's record.state, a rootfs container's state.json). */
export interface RuntimeState {
  status: string;
  pid: number;
  pidStartTime?: number;
  owner?: ProcessIdentity;
  startedAt?: string;
  finishedAt?: string;
  exitCode?: number;
  oomKilled?: boolean;
}

export function runtimeState(found: Found): RuntimeState {
  return found.kind === 'image' ? found.record.state : found.state;
}

export function containerId(found: Found): string {
  return found.kind === 'image' ? found.record.id : found.state.id;
}

export function containerName(found: Found): string {
  return found.kind === 'image' ? found.record.name : found.state.name;
}

/**
 * Changes the stored state of a container. `status` is in OCI terms; an
 * image container's record says `exited` for `stopped`. Returns false when
 * the container is gone (removed meanwhile).
 */
export function updateRuntimeState(found: Found, location: ContainerLocation, change: Partial<Omit<RuntimeState, 'status'>> & { status?: OciStatus }): boolean {
  try {
    if (found.kind === 'image') {
      new ContainerStore(storeRoot(location)).update(found.record.id, (record) => {
        const status = change.status === undefined ? record.state.status : change.status === 'stopped' ? 'exited' : change.status === 'running' ? 'running' : 'created';
        record.state = { ...record.state, ...change, status };
      });
    } else {
      const store = stateStore(location);
      const current = store.load(found.state.id);
      store.save({ ...current, ...change, status: change.status === 'paused' ? 'running' : (change.status ?? current.status) });
    }
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
}

/**
 * The container's status in OCI terms, from its record, its init's
 * liveness and its monitor's exit file (which is there before the cleanup
 * that the monitor starts has updated the record).
 */
export function ociStatus(found: Found): OciStatus {
  const { status, pid, pidStartTime } = runtimeState(found);
  if (status === 'exited' || status === 'stopped') return 'stopped';
  if (status === 'creating') return 'creating';
  if (found.monitor.exit() !== null || !isRunning(pid, pidStartTime)) return 'stopped';
  return status === 'created' ? 'created' : 'running';
}

/**
 * A record that says running whose init is gone belongs to a tsrun that was
 * killed (its container died with it): it is reported as exited, code
 * unknown (-1), as Docker reports a container whose monitor died.
 */
function liveStatus(status: string, pid: number, pidStartTime: number | undefined): { status: ContainerSummary['status']; lost: boolean } {
  if (status === 'created' && pid > 0 && !isRunning(pid, pidStartTime)) return { status: 'exited', lost: true };
  if (status === 'running') return isRunning(pid, pidStartTime) ? { status: 'running', lost: false } : { status: 'exited', lost: true };
  return { status: status === 'created' || status === 'creating' ? 'created' : 'exited', lost: false };
}

/** A container that has exited under its monitor, before the cleanup recorded it. */
function monitorExit(found: Found): { status: 'exited'; lost: false; exitCode: number; finishedAt: string } | null {
  const { status } = runtimeState(found);
  if (status !== 'running' && status !== 'created') return null;
  const exit = found.monitor.exit();
  return exit && { status: 'exited', lost: false, exitCode: exit.exitCode, finishedAt: exit.finishedAt };
}

export function summaryOf(found: Found): ContainerSummary {
  const summary = recordedSummary(found);
  const exited = monitorExit(found);
  return exited ? { ...summary, status: 'exited', exitCode: exited.exitCode, finishedAt: exited.finishedAt, pid: 0 } : summary;
}

function recordedSummary(found: Found): ContainerSummary {
  if (found.kind === 'image') {
    const { record } = found;
    const live = liveStatus(record.state.status, record.state.pid, record.state.pidStartTime);
    return {
      id: record.id,
      name: record.name,
      image: record.image,
      command: record.args,
      created: record.created,
      status: live.status,
      exitCode: live.lost ? -1 : record.state.exitCode,
      startedAt: record.state.startedAt,
      finishedAt: record.state.finishedAt,
      pid: live.status === 'exited' ? 0 : record.state.pid,
      oomKilled: record.state.oomKilled ?? false,
      resources: record.hostConfig.resources ?? {},
    };
  }
  const { state } = found;
  const live = liveStatus(state.status, state.pid, state.pidStartTime);
  return {
    id: state.id,
    name: state.name,
    image: `rootfs:${state.rootfs}`,
    command: state.command,
    created: state.created,
    status: live.status,
    exitCode: live.lost ? -1 : state.exitCode,
    startedAt: state.startedAt,
    finishedAt: state.finishedAt,
    pid: live.status === 'exited' ? 0 : state.pid,
    oomKilled: state.oomKilled ?? false,
    resources: state.resources ?? {},
  };
}

function allContainers(location: ContainerLocation): Found[] {
  return [
    ...new ContainerStore(storeRoot(location)).list().map((record) => withMonitor({ kind: 'image' as const, record }, location)),
    ...stateStore(location).list().map((state) => withMonitor({ kind: 'rootfs' as const, state }, location)),
  ];
}

/** Every container: those made from images and those on a plain root filesystem, newest first. */
export function listContainers(location: ContainerLocation = {}): ContainerSummary[] {
  return allContainers(location).map(summaryOf).sort((a, b) => b.created.localeCompare(a.created));
}

/**
 * Whether no process looks after the container any more: it exited, or
 * the process that started it (its owner, which records the exit) died
 * while it was being created or ran. Its cgroup, if one is left, is a leftover.
 */
function abandoned(found: Found): boolean {
  const { status, pid, pidStartTime, owner } = found.kind === 'image' ? found.record.state : found.state;
  if (status === 'exited' || status === 'stopped') return true;
  if (status === 'running' && isRunning(pid, pidStartTime)) return false;
  // Being created, or its init exited a moment ago: the owner is on it, if it lives.
  if (owner) return !isRunning(owner.pid, owner.startTime);
  return status === 'running';
}

/** The ids of this location's containers that nothing looks after any more (see abandoned()). */
export function abandonedContainerIds(location: ContainerLocation = {}): Set<string> {
  return new Set(
    allContainers(location)
      .filter(abandoned)
      .map((found) => (found.kind === 'image' ? found.record.id : found.state.id)),
  );
}

/** By name, id or unique id prefix, among both kinds of containers. */
export function findContainer(reference: string, location: ContainerLocation): Found {
  try {
    return withMonitor({ kind: 'image', record: new ContainerStore(storeRoot(location)).find(reference) }, location);
  } catch (err) {
    if (!(err instanceof NotFoundError)) throw err;
  }
  const states = stateStore(location).list();
  const byName = states.find((s) => s.name === reference);
  if (byName) return withMonitor({ kind: 'rootfs', state: byName }, location);
  const byId = /^[0-9a-f]+$/.test(reference) ? states.filter((s) => s.id.startsWith(reference)) : [];
  if (byId.length === 1) return withMonitor({ kind: 'rootfs', state: byId[0] }, location);
  if (byId.length > 1) throw new ConflictError(`container id prefix ${reference} is ambiguous: it matches ${byId.length} containers`);
  throw new NotFoundError('container', reference, `No such container: ${reference}`);
}

/** One container by name, id or unique id prefix. */
export function containerSummary(reference: string, location: ContainerLocation = {}): ContainerSummary {
  return summaryOf(findContainer(reference, location));
}

/** A container as `docker inspect` shows it. */
export function inspectContainer(reference: string, location: ContainerLocation = {}): ContainerInspect {
  const found = findContainer(reference, location);
  const summary = summaryOf(found);
  const common = { ...summary, args: summary.command };
  if (found.kind === 'rootfs') return containerInspect({ ...common, imageId: '' });
  const { record } = found;
  const attachment = summary.status === 'running' ? findAttachment(storeRoot(location), record.id) : null;
  const ip = attachment?.result?.ips?.find((i) => i.address.includes('.'));
  return containerInspect({
    ...common,
    imageId: record.imageId,
    process: { hostname: record.hostname, user: record.user, env: record.env, cwd: record.cwd },
    hostConfig: record.hostConfig,
    network: attachment && ip ? { name: attachment.network, address: ip.address, gateway: ip.gateway ?? '', ports: attachment.runtimeConfig.portMappings } : undefined,
  });
}

/** Replaces the limits a container's record keeps, once `tsrun update` has changed its cgroup. */
export function saveContainerResources(found: Found, location: ContainerLocation, resources: LinuxResources): void {
  if (found.kind === 'image') {
    new ContainerStore(storeRoot(location)).update(found.record.id, (record) => {
      record.hostConfig.resources = resources;
    });
    return;
  }
  const store = stateStore(location);
  store.save({ ...store.load(found.state.id), resources });
}

/**
 * SIGKILLs a container's init through a pidfd (after checking it is still
 * the process recorded) and waits until it is gone; its parent, the tsrun
 * that started it, reaps it.
 */
async function killAndWait(id: string, pid: number, pidStartTime: number | undefined, timeoutMs = 10_000): Promise<void> {
  if (!signalProcess(pid, pidStartTime, signalNumber('SIGKILL'))) return;
  await waitUntilGone(pid, pidStartTime, timeoutMs).catch((err: unknown) => {
    throw new TsrunError(`container ${id.slice(0, 12)} did not die within ${timeoutMs} ms of SIGKILL`, 'ETIMEDOUT', { cause: err });
  });
}

async function waitUntilGone(pid: number, startTime: number | undefined, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (isRunning(pid, startTime)) {
    if (Date.now() > deadline) throw new TsrunError(`process ${pid} did not exit within ${timeoutMs} ms`, 'ETIMEDOUT');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/**
 * Waits until the cleanup a detached container's monitor starts at its exit
 * has recorded it (it removes the cgroup first): a new run must not begin
 * under it, nor a removal take the directory it writes to. False if it
 * removed the container itself (--rm). Bounded: a cleanup that never ran
 * (its monitor died) leaves the record as it was.
 */
export async function cleanupRecorded(id: string, location: ContainerLocation, timeoutMs = 10_000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    let found: Found;
    try {
      found = findContainer(id, location);
    } catch (err) {
      if (err instanceof NotFoundError) return false;
      throw err;
    }
    const { status } = runtimeState(found);
    if (status === 'stopped' || status === 'exited' || Date.now() > deadline) return true;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/**
 * Removes a container: its layers and record, or its runtime state. A
 * running one is refused unless `force`, which kills it first (`docker rm -f`).
 * Returns the container's id.
 */
export async function removeContainer(reference: string, options: ContainerLocation & { force?: boolean; volumes?: boolean } = {}): Promise<string> {
  const found = findContainer(reference, options);
  const summary = summaryOf(found);
  const status = ociStatus(found);
  checkOperation(summary.id.slice(0, 12), status, 'remove', { force: options.force });
  const { pid, pidStartTime, owner } = runtimeState(found);
  // A created init waits on its fifo; Docker removes such a container without -f.
  if (status === 'running' || status === 'created' || status === 'paused') await killAndWait(summary.id, pid, pidStartTime);
  // Its monitor writes the exit and goes; what it writes must not land in a removed directory.
  if (found.monitor.exists() && owner) await waitUntilGone(owner.pid, owner.startTime);
  // Nor what the cleanup it started records (a process of its own): the rm of a --rm container is its.
  if (found.monitor.exists() && owner && owner.pid !== process.ppid && !(await cleanupRecorded(summary.id, options))) return summary.id;
  // Gone already when the tsrun that ran it saw it exit; left over when that tsrun was killed.
  await containerCgroup(summary.id).destroy();
  found.monitor.remove();
  if (found.kind === 'rootfs') {
    stateStore(options).remove(found.state);
    return summary.id;
  }
  const root = storeRoot(options);
  await withFileLock(storeLockFile(root), 'exclusive', () => {
    // Still mounted here when the tsrun that created it was killed before the container started.
    detachOverlay(path.join(overlayRoot(root), found.record.id, 'merged'));
    removeContainerLayers(root, found.record.id);
    new ContainerStore(root).remove(found.record);
    if (options.volumes) removeAnonymousVolumes(root, found.record.hostConfig.volumes ?? []);
  });
  return summary.id;
}

/** `rm -v`: the anonymous volumes a removed container made (named ones stay, as with Docker). */
function removeAnonymousVolumes(root: string, names: string[]): void {
  const volumes = new VolumeStore(root);
  for (const name of names) if (volumes.get(name)?.Anonymous) volumes.remove(name, []);
}

function imageContainer(reference: string, location: ContainerLocation, what: string): ContainerRecord {
  const found = findContainer(reference, location);
  if (found.kind !== 'image') throw new TsrunError(`${what}: container ${found.state.name} runs on a plain root filesystem, not on an image`, 'EINVAL');
  return found.record;
}

/** What the container changed over its image, as `docker diff` prints it: A(dded), C(hanged), D(eleted). */
export function containerChanges(reference: string, location: ContainerLocation = {}): { kind: 'A' | 'C' | 'D'; path: string }[] {
  const root = storeRoot(location);
  const record = imageContainer(reference, location, 'diff');
  const store = Store.open(root, location.logger ?? silentLogger);
  const lowerDirs = [...store.resolve(record.imageId).layers].reverse().map((layer) => layer.dir);
  return listChanges(path.join(overlayRoot(root), record.id, 'diff'), lowerDirs);
}

export interface CommitOptions extends ContainerLocation {
  /** Dockerfile instructions applied to the new image's config (`CMD ["sh"]`, `ENV A=1`...). */
  changes?: string[];
  message?: string;
  author?: string;
}

/**
 * A new image: the container's image plus one layer made of its writable
 * layer (never its -init layer, so hostname, hosts and resolv.conf stay
 * out). `reference` tags it.
 */
export async function commitContainer(reference: string, target: string | undefined, options: CommitOptions = {}): Promise<Image> {
  const root = storeRoot(options);
  const record = imageContainer(reference, options, 'commit');
  const store = Store.open(root, options.logger ?? silentLogger);
  const parent = store.resolve(record.imageId);
  return store.createLayerImage(parent, diffLayer(path.join(overlayRoot(root), record.id, 'diff')), {
    reference: target,
    changes: options.changes,
    comment: options.message,
    author: options.author,
  });
}
