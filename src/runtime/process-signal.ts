import fs = require('node:fs');
import { syscallErrorFrom } from '../errors';
import { isRunning } from '../linux/proc';
import { loadNative } from '../native';

/**
 * Signals the process recorded as (pid, startTime) through a pidfd, after
 * checking through that pidfd's pid that it is still that process: a
 * recycled pid is never hit. Returns false when it is gone.
 */
export function signalProcess(pid: number, startTime: number | undefined, signal: number): boolean {
  const native = loadNative();
  let pidfd: number;
  try {
    pidfd = native.pidfdOpen(pid);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ESRCH') return false;
    throw syscallErrorFrom('kill', err);
  }
  try {
    if (!isRunning(pid, startTime)) return false;
    native.pidfdSendSignal(pidfd, signal);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ESRCH') return false;
    throw syscallErrorFrom('kill', err);
  } finally {
    fs.closeSync(pidfd);
  }
}
