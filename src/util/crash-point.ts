/**
 * The steps of multi-step operations after which a crash leaves something
 * made and not yet finished: a record, layers, a mount, a cgroup, staged
 * or published blobs. Each is undone by `tsrun system prune` (and by the
 * command that next needs the store: staging of dead processes goes on
 * any write).
 */
export const CRASH_POINTS = {
  run: ['run:record', 'run:layers', 'run:mounted', 'run:cgroup', 'run:started', 'run:exited'],
  pull: ['pull:layer', 'pull:staged', 'publish:blobs', 'publish:layers', 'publish:records'],
  commit: ['commit:staged', 'publish:blobs', 'publish:layers', 'publish:records'],
} as const;

export type CrashPoint = (typeof CRASH_POINTS)[keyof typeof CRASH_POINTS][number];

/** The test hook: `TSRUN_DEBUG_KILL_AT=<step>` makes tsrun SIGKILL itself at that step, as a crash or `kill -9` would. */
export const KILL_AT_ENV = 'TSRUN_DEBUG_KILL_AT';

export function crashPoint(step: CrashPoint): void {
  if (process.env[KILL_AT_ENV] === step) process.kill(process.pid, 'SIGKILL');
}
