/**
 * Polls `probe` until it gives a value (not undefined or false), for states
 * another process reaches in its own time (a detached container's log, a
 * monitor's exit); fails naming `what` after ~10 s. Not a timing assertion:
 * the bound only keeps a broken run from hanging.
 */
export async function until<T>(what: string, probe: () => T | undefined | false): Promise<T> {
  for (let i = 0; i < 500; i++) {
    const value = probe();
    if (value !== undefined && value !== false) return value;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error(`timed out waiting for ${what}`);
}
