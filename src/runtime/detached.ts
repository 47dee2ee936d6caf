import * as fs from 'node:fs';
import { TsrunError, syscallErrorFrom } from '../errors';
import { isRunning } from '../linux/proc';
import { loadNative } from '../native';
import { containerCgroup } from './container-cgroup';
import { ContainerLocation, Found, containerId, containerName, findContainer, ociStatus, removeContainer, runtimeState, updateRuntimeState } from './containers';
import { checkOperation } from './lifecycle';
import { MonitorExit, awaitExec, releaseInit, waitForExit } from './monitor';
import { signalNumber } from './signals';

function short(found: Found): string {
  return containerName(found);
}

function requireMonitor(found: Found, what: string): void {
  if (!found.monitor.exists()) {
    throw new TsrunError(`${what}: container ${short(found)} was not started detached (tsrun run -d or create); its tsrun process holds its exit`, 'EINVAL');
  }
}

/** Starts a created container (`tsrun start`); resolves once its command has exec'd. */
export async function startContainer(reference: string, location: ContainerLocation = {}): Promise<string> {
  const found = findContainer(reference, location);
  const status = ociStatus(found);
  // Docker's start of a running container is a no-op.
  if (status === 'running') return containerId(found);
  checkOperation(short(found), status, 'start');
  requireMonitor(found, 'start');
  const { pid, pidStartTime } = runtimeState(found);
  await releaseInit(found.monitor.fifo, pid, pidStartTime);
  updateRuntimeState(found, location, { status: 'running', startedAt: new Date().toISOString() });
  await awaitExec(found.monitor);
  return containerId(found);
}

/** Sends a signal to the container's init through a pidfd, after checking the pid is still that process. */
export function signalContainer(found: Found, signal: string | number): void {
  const number = signalNumber(signal);
  const { pid, pidStartTime } = runtimeState(found);
  const native = loadNative();
  let pidfd: number;
  try {
    pidfd = native.pidfdOpen(pid);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ESRCH') return;
    throw syscallErrorFrom('kill', err);
  }
  try {
    if (isRunning(pid, pidStartTime)) native.pidfdSendSignal(pidfd, number);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw syscallErrorFrom('kill', err);
  } finally {
    fs.closeSync(pidfd);
  }
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
  requireMonitor(found, 'stop');
  signalContainer(found, options.signal ?? 'SIGTERM');
  const timeout = AbortSignal.timeout(Math.max(0, options.timeoutSeconds ?? 10) * 1000);
  try {
    await waitForExit(found.monitor, timeout);
  } catch (err) {
    if (!timeout.aborted) throw err;
    signalContainer(found, 'SIGKILL');
    await waitForExit(found.monitor);
  }
  return containerId(found);
}

/** `tsrun wait`: the exit code, once the container has exited. */
export async function waitContainer(reference: string, location: ContainerLocation = {}, signal?: AbortSignal): Promise<MonitorExit> {
  const found = findContainer(reference, location);
  checkOperation(short(found), ociStatus(found), 'wait');
  const recorded = runtimeState(found);
  if (!found.monitor.exists()) {
    if (recorded.status === 'exited' || recorded.status === 'stopped') return { exitCode: recorded.exitCode ?? -1, signal: null, finishedAt: recorded.finishedAt ?? '' };
    requireMonitor(found, 'wait');
  }
  return waitForExit(found.monitor, signal);
}

/**
 * What the monitor runs once the init has exited (`tsrun container-cleanup`):
 * the exit goes into the container's record, the cgroup is removed (after
 * reading whether the OOM killer struck), and a container run with --rm goes.
 */
export async function cleanupContainer(reference: string, location: ContainerLocation = {}): Promise<void> {
  const found = findContainer(reference, location);
  const exit = found.monitor.exit();
  if (exit === null) throw new TsrunError(`container ${short(found)} has not exited`, 'ESTATE');
  const cgroup = containerCgroup(containerId(found));
  const oomKilled = exit.exitCode === 137 && cgroup.exists() && cgroup.oomKilled();
  await cgroup.destroy();
  updateRuntimeState(found, location, { status: 'stopped', pid: 0, exitCode: exit.exitCode, finishedAt: exit.finishedAt, oomKilled });
  const autoRemove = found.kind === 'image' ? found.record.hostConfig.autoRemove : found.state.autoRemove === true;
  if (autoRemove) await removeContainer(containerId(found), location);
}
