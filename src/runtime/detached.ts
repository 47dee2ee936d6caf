import fs = require('node:fs');
import type { RestartPolicy } from './run';
import { TsrunError } from '../errors';
import { silentLogger } from '../logger';
import { isRunning } from '../linux/proc';
import { containerCgroup } from './container-cgroup';
import { ContainerLocation, Found, cleanupRecorded, containerId, containerName, findContainer, ociStatus, removeContainer, runtimeState, updateRuntimeState } from './containers';
import { checkOperation } from './lifecycle';
import { MonitorExit, awaitExec, releaseInit, waitForExit } from './monitor';
import { signalNumber } from './signals';
import { signalProcess } from './process-signal';

function short(found: Found): string {
  return containerName(found);
}

function requireMonitor(found: Found, what: string): void {
  if (!found.monitor.exists()) {
    throw new TsrunError(`${what}: container ${short(found)} was not started detached (tsrun run -d or create); its tsrun process holds its exit`, 'EINVAL');
  }
}

export interface StartHooks {
  /** Runs once the container is created (anew, for a stopped one), before its init is released: `start -a` attaches here. */
  beforeStart?: (id: string) => Promise<void>;
}

/**
 * Starts a container (`tsrun start`) and resolves once its command has
 * exec'd: a created one is released; a stopped one is made anew from what
 * it was created with, as Docker starts an exited container again.
 */
export async function startContainer(reference: string, location: ContainerLocation & StartHooks = {}): Promise<string> {
  let found = findContainer(reference, location);
  const status = ociStatus(found);
  // Docker's start of a running container is a no-op.
  if (status === 'running') return containerId(found);
  requireMonitor(found, 'start');
  if (status === 'stopped') {
    await cleanupRecorded(containerId(found), location);
    await containerCgroup(containerId(found)).destroy();
    const { recreate } = await import('./run');
    await recreate(containerId(found), containerName(found), location);
    found = findContainer(containerId(found), location);
  } else {
    checkOperation(short(found), status, 'start');
  }
  found.monitor.markStopped(false);
  await location.beforeStart?.(containerId(found));
  const { pid, pidStartTime } = runtimeState(found);
  await releaseInit(found.monitor.fifo, pid, pidStartTime);
  updateRuntimeState(found, location, { status: 'running', startedAt: new Date().toISOString() });
  await awaitExec(found.monitor);
  return containerId(found);
}

/**
 * Once a detached container has exited: resolves when its cleanup is done
 * (the exit recorded, the cgroup gone, with --rm the container too), as
 * `docker run` returns only then.
 */
export async function awaitContainerCleanup(id: string, location: ContainerLocation = {}): Promise<void> {
  await cleanupRecorded(id, location);
}

/** `tsrun restart`: stop (SIGTERM, then SIGKILL after the timeout), then start again. */
export async function restartContainer(reference: string, options: ContainerLocation & { timeoutSeconds?: number } = {}): Promise<string> {
  const id = await stopContainer(reference, options);
  return startContainer(id, options);
}

/** Sends a signal to the container's init through a pidfd, after checking the pid is still that process. */
export function signalContainer(found: Found, signal: string | number): void {
  const { pid, pidStartTime } = runtimeState(found);
  signalProcess(pid, pidStartTime, signalNumber(signal));
}

/** `tsrun kill [-s SIGNAL]`: default SIGKILL, as Docker's. */
export function killContainer(reference: string, signal: string | number = 'SIGKILL', location: ContainerLocation = {}): string {
  const found = findContainer(reference, location);
  checkOperation(short(found), ociStatus(found), 'kill');
  signalContainer(found, signal);
  return containerId(found);
}

/**
 * `tsrun stop [-t SECS]`: SIGTERM (or `signal`), then SIGKILL once
 * `timeoutSeconds` have passed, and wait for the exit. A stopped
 * container is left as it is.
 */
export async function stopContainer(reference: string, options: ContainerLocation & { timeoutSeconds?: number; signal?: string } = {}): Promise<string> {
  const found = findContainer(reference, options);
  const status = ociStatus(found);
  checkOperation(short(found), status, 'stop');
  if (status === 'stopped') return containerId(found);
  if (found.monitor.exists()) found.monitor.markStopped(true);
  signalContainer(found, options.signal ?? 'SIGTERM');
  const timeout = AbortSignal.timeout(Math.max(0, options.timeoutSeconds ?? 10) * 1000);
  try {
    await exitOf(found, options, timeout);
  } catch (err) {
    if (!timeout.aborted) throw err;
    signalContainer(found, 'SIGKILL');
    await exitOf(found, options);
  }
  return containerId(found);
}

/**
 * The exit of a container: its monitor's exit file for a detached one;
 * for one in the foreground of a tsrun, the record that tsrun writes once
 * it has reaped the init (-1 when that tsrun died first).
 */
async function exitOf(found: Found, location: ContainerLocation, signal?: AbortSignal): Promise<MonitorExit> {
  if (found.monitor.exists()) return waitForExit(found.monitor, signal);
  let delay = 5;
  for (;;) {
    const current = findContainer(containerId(found), location);
    const recorded = runtimeState(current);
    if (recorded.status === 'exited' || recorded.status === 'stopped') return { exitCode: recorded.exitCode ?? -1, signal: null, finishedAt: recorded.finishedAt ?? '' };
    const owner = recorded.owner;
    if (ociStatus(current) === 'stopped' && (!owner || !isRunning(owner.pid, owner.startTime))) return { exitCode: -1, signal: null, finishedAt: '' };
    signal?.throwIfAborted();
    await new Promise((resolve) => setTimeout(resolve, delay));
    delay = Math.min(delay * 2, 100);
  }
}

/** `tsrun wait`: the exit code, once the container has exited. */
export async function waitContainer(reference: string, location: ContainerLocation = {}, signal?: AbortSignal): Promise<MonitorExit> {
  const found = findContainer(reference, location);
  checkOperation(short(found), ociStatus(found), 'wait');
  return exitOf(found, location, signal);
}

/** Whether the container's restart policy asks for another run after this exit. */
function shouldRestart(found: Found, exitCode: number): boolean {
  let policy: RestartPolicy | undefined;
  try {
    policy = (JSON.parse(fs.readFileSync(found.monitor.options, 'utf8')) as { restart?: RestartPolicy }).restart;
  } catch {
    return false;
  }
  if (!policy || policy.name === 'no' || found.monitor.stoppedByHand()) return false;
  if (policy.name === 'on-failure') return exitCode !== 0 && (policy.maximumRetryCount === undefined || policy.maximumRetryCount === 0 || found.monitor.restartCount() < policy.maximumRetryCount);
  return true;
}

/** CNI DEL for a container whose network outlived the tsrun that made it. */
async function leaveNetwork(id: string, location: ContainerLocation): Promise<void> {
  const { findAttachment, detachRecord } = await import('../network/attachments');
  const { storeRoot } = await import('./image-container');
  const root = storeRoot(location);
  const attachment = findAttachment(root, id);
  if (attachment) await detachRecord(root, attachment, location.logger ?? silentLogger);
}

/** Docker's back-off between restarts: 100 ms, doubling, at most a minute. */
function restartDelayMs(count: number): number {
  return Math.min(100 * 2 ** count, 60_000);
}

/**
 * What the monitor runs once the init has exited (`tsrun container-cleanup`):
 * the exit goes into the container's record, the cgroup is removed (after
 * reading whether the OOM killer struck); then the restart policy may
 * start it again, or a container run with --rm goes.
 */
export async function cleanupContainer(reference: string, location: ContainerLocation = {}): Promise<void> {
  const found = findContainer(reference, location);
  const exit = found.monitor.exit();
  if (exit === null) throw new TsrunError(`container ${short(found)} has not exited`, 'ESTATE');
  const cgroup = containerCgroup(containerId(found));
  const oomKilled = exit.exitCode === 137 && cgroup.exists() && cgroup.oomKilled();
  await cgroup.destroy();
  await leaveNetwork(containerId(found), location);
  updateRuntimeState(found, location, { status: 'stopped', pid: 0, exitCode: exit.exitCode, finishedAt: exit.finishedAt, oomKilled });
  const autoRemove = found.kind === 'image' ? found.record.hostConfig.autoRemove : found.state.autoRemove === true;
  if (autoRemove) {
    await removeContainer(containerId(found), location);
    return;
  }
  if (!shouldRestart(found, exit.exitCode)) return;
  const count = found.monitor.restartCount();
  await new Promise((resolve) => setTimeout(resolve, restartDelayMs(count)));
  // Removed or started by hand meanwhile: nothing left to do.
  const now = findContainer(containerId(found), location);
  if (ociStatus(now) !== 'stopped' || now.monitor.stoppedByHand()) return;
  now.monitor.setRestartCount(count + 1);
  await startContainer(containerId(found), location);
}
