/**
 * Polls `probe` until it gives a value (not undefined or false), for states
 * another process reaches in its own time (a detached container's log, a
 * monitor's exit); fails naming `what` after the timeout. Not a timing
 * assertion: the bound only keeps a broken run from hanging.
 */
export async function until<T>(probe: () => T | undefined | false, what: string, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = probe();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
