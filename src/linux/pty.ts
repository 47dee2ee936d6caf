import type { PlanStep } from '../runtime/plan';

export interface TerminalSize {
  rows: number;
  cols: number;
}

/**
 * Makes the container's process the leader of a new session whose
 * controlling terminal is a pty of the container's own devpts: setsid, the
 * pty opened through the container's /dev/ptmx (its master sent back on
 * `consoleFd`), owned by `owner` (the process's uid), the slave as fds
 * 0, 1 and 2, then TIOCSCTTY. Runs after
 * pivot_root, so /dev/ptmx is the container's.
 */
export function terminalSteps(consoleFd: number, size: TerminalSize | undefined, owner: number): PlanStep[] {
  const phase = 'terminal';
  const packedSize = size ? ((size.rows & 0xffff) << 16) | (size.cols & 0xffff) : 0;
  return [
    { op: 'Setsid', phase, detail: 'new session for the terminal' },
    { op: 'OpenPty', args: [consoleFd, packedSize, owner], strs: ['/dev/ptmx'], phase, target: '/dev/ptmx', detail: 'allocate the container\'s terminal' },
    { op: 'SetCtty', args: [0], phase, detail: 'make the pty the controlling terminal' },
  ];
}
