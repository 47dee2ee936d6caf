/**
 * Whether this process did work that later processes skip, such as
 * compiling a seccomp program into the shared cache. The CLI's code cache
 * (scripts/cli-loader.js) holds the functions its writing run compiled; written
 * by such a run, it would carry that work's code into every later start.
 */
let didOneTimeWork = false;

export function noteOneTimeWork(): void {
  didOneTimeWork = true;
}

/** Whether this run is like the ones that follow it: no one-time work done. */
export function isSteadyStateRun(): boolean {
  return !didOneTimeWork;
}
