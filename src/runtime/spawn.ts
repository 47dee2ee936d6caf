import fs = require('node:fs');
import { TsrunError } from '../errors';
import { writeIdMaps } from '../linux/idmap';
import { processStartTime } from '../linux/proc';
import { loadNative } from '../native';
import type { Spec } from '../oci/runtime-spec';
import { ContainerPlan, SyncMessage } from './container-plan';
import { childFailure, serializePlan } from './plan';
import { FORK_NOTICE } from './plan-opcodes';

/** How long the parent waits for the child to reach a sync point. */
const SYNC_TIMEOUT_MS = 10_000;

/** The parent's work at the child's sync points, besides the uid/gid maps. */
export interface SpawnHooks {
  /** The child waits in its new network namespace: set it up (synchronously). */
  network?(pid: number): void;
}

export interface SpawnedProcess {
  pid: number;
  pidfd: number;
  /** Its start time as /proc/PID/stat gives it, when the child read it for us (see startTimeOf). */
  startTime?: number;
}

/** The start time that identifies the process in a record, with the pid: the child's own reading, or /proc's. */
export function startTimeOf(process: SpawnedProcess): number | undefined {
  return process.startTime ?? processStartTime(process.pid) ?? undefined;
}

/** Kills and reaps a child that must not run on (a failed setup). */
export function killAndReap(process: SpawnedProcess): void {
  const native = loadNative();
  try {
    native.pidfdSendSignal(process.pidfd, 9);
  } catch {
    // Already gone: reaping below is all that is left.
  }
  try {
    native.waitExit(process.pidfd, true);
  } finally {
    fs.closeSync(process.pidfd);
  }
}

/**
 * Clones the child, does the parent's half at each sync point, and returns
 * once the container's process has exec'd (or, for a plan with an exec
 * fifo, once it is created and waits there). If any step fails the child is
 * reaped and the error names the step, the syscall, the path and errno.
 */
export function spawnContainer(spec: Spec, plan: ContainerPlan, hooks: SpawnHooks = {}): SpawnedProcess {
  const native = loadNative();
  const buffer = serializePlan(plan.steps);
  // [parent end, child end]; the child end is closed once the child has it.
  const sync: number[] = plan.mode === 'fork' ? native.socketPair() : [];
  let spawned: (SpawnedProcess & { errorFd: number }) | undefined;
  let created = false;
  try {
    spawned = native.spawn(buffer, { cloneFlags: plan.cloneFlags, mode: plan.mode, syncFd: sync[1], parentSyncFd: sync[0] });
    if (plan.steps.some((step) => step.op === 'ForkIntoParent')) {
      const followed = followFork(plan, spawned);
      if ('error' in followed) {
        fs.closeSync(spawned.errorFd);
        spawned = undefined;
        throw followed.error;
      }
      spawned = { ...followed, errorFd: spawned.errorFd };
    }
    if (sync.length > 0) {
      fs.closeSync(sync.pop() as number);
      created = runParentSide(spec, spawned.pid, sync[0], hooks) === SyncMessage.Created;
    }
  } catch (err) {
    if (spawned) {
      fs.closeSync(spawned.errorFd);
      killAndReap(spawned);
    }
    throw err;
  } finally {
    sync.forEach((fd) => fs.closeSync(fd));
  }

  // A created init waits on its exec fifo; whoever starts it learns of the exec by other means.
  if (created) {
    fs.closeSync(spawned.errorFd);
    return { pid: spawned.pid, pidfd: spawned.pidfd };
  }
  const report = native.readChildError(spawned.errorFd);
  if (report) {
    native.waitExit(spawned.pidfd, true);
    fs.closeSync(spawned.pidfd);
    throw childFailure(plan.steps, report);
  }
  return { pid: spawned.pid, pidfd: spawned.pidfd, startTime: spawned.startTime };
}

/**
 * A plan that joins a pid namespace goes on in a process its first one
 * forks (as this process's child) and reports; the first one exits and is
 * reaped here. Returns the process that goes on, or why there is none.
 */
function followFork(plan: ContainerPlan, first: SpawnedProcess & { errorFd: number }): SpawnedProcess | { error: Error } {
  const native = loadNative();
  const report = native.readChildError(first.errorFd, true);
  native.waitExit(first.pidfd, true);
  fs.closeSync(first.pidfd);
  if (report === null) return { error: new TsrunError('spawn: the child exited before it reached its pid namespace', 'ECHILD') };
  if (report.step !== FORK_NOTICE) return { error: childFailure(plan.steps, report) };
  return { pid: report.errno, pidfd: native.pidfdOpen(report.errno) };
}

/**
 * The parent's half of the plan, until the child execs (null) or says it
 * is created and waits on its exec fifo (SyncMessage.Created).
 */
export function runParentSide(spec: Spec, pid: number, fd: number, hooks: SpawnHooks = {}): number | null {
  const native = loadNative();
  for (;;) {
    const message = native.syncWait(fd, SYNC_TIMEOUT_MS);
    // null: the child stopped before the next sync point; its error
    // report on the error channel says why.
    if (message === null || message === SyncMessage.Created) return message;
    switch (message) {
      case SyncMessage.UserMapRequest:
        writeIdMaps(pid, spec.linux.uidMappings ?? [], spec.linux.gidMappings ?? []);
        native.syncRelease(fd, SyncMessage.UserMapDone);
        break;
      case SyncMessage.NetworkRequest:
        if (!hooks.network) throw new TsrunError('spawn: the child asked for a network, and none was prepared', 'EPROTO');
        hooks.network(pid);
        native.syncRelease(fd, SyncMessage.NetworkDone);
        break;
      default:
        throw new TsrunError(`spawn: unexpected sync message ${message} from the child`, 'EPROTO');
    }
  }
}
