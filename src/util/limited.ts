/**
 * Runs `task` on every item, at most `limit` at once, starting them in
 * order. At the first failure no further task starts, `onFailure` is
 * called (to abort the running ones), and the failure is thrown once every
 * started task has settled: nothing keeps running after this returns.
 */
export async function mapLimited<T, R>(items: readonly T[], limit: number, task: (item: T, index: number) => Promise<R>, onFailure?: (err: unknown) => void): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  let failure: { error: unknown } | undefined;
  const worker = async (): Promise<void> => {
    while (failure === undefined && next < items.length) {
      const index = next++;
      try {
        results[index] = await task(items[index], index);
      } catch (err) {
        if (failure === undefined) {
          failure = { error: err };
          onFailure?.(err);
        }
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
  if (failure !== undefined) throw failure.error;
  return results;
}
