import fs = require('node:fs');

/**
 * When `pid` started, in clock ticks after boot (/proc/PID/stat field 22),
 * or null when there is no such process or it is a zombie. A pid and its
 * start time name one process even after the pid is reused.
 */
export function processStartTime(pid: number): number | null {
  let stat: string;
  try {
    stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return null;
  }
  // The command name may hold spaces and parentheses; the fields after its last ')' are fixed.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  if (fields[0] === 'Z' || fields[0] === 'X') return null;
  return Number(fields[19]);
}

/** Whether the process recorded as (pid, startTime) still runs. */
export function isRunning(pid: number, startTime: number | undefined): boolean {
  if (pid <= 0) return false;
  const now = processStartTime(pid);
  return now !== null && (startTime === undefined || now === startTime);
}

/** A process as a pid and the start time that tells it from a later process with the same pid. */
export interface ProcessIdentity {
  pid: number;
  startTime: number;
}

let self: ProcessIdentity | undefined;

/** This process, for records that other processes check for liveness (see isRunning). */
export function ownIdentity(): ProcessIdentity {
  self ??= { pid: process.pid, startTime: processStartTime(process.pid) ?? 0 };
  return self;
}
