import { mapLimited } from '../../src/util/limited';

describe('mapLimited', () => {
  test('keeps order, never runs more than the limit at once', async () => {
    let running = 0;
    let peak = 0;
    const results = await mapLimited([5, 1, 4, 2, 3], 2, async (n) => {
      running++;
      peak = Math.max(peak, running);
      await new Promise((resolve) => setTimeout(resolve, n));
      running--;
      return n * 10;
    });
    expect(results).toEqual([50, 10, 40, 20, 30]);
    expect(peak).toBe(2);
  });

  test('the first failure stops new tasks, is reported once, and is thrown after the running ones settle', async () => {
    const started: number[] = [];
    let settled = 0;
    const failures: unknown[] = [];
    const error = await mapLimited(
      [1, 2, 3, 4],
      2,
      async (n) => {
        started.push(n);
        try {
          await new Promise((resolve) => setTimeout(resolve, n === 1 ? 1 : 20));
          if (n <= 2) throw new Error(`task ${n}`);
        } finally {
          settled++;
        }
      },
      (err) => failures.push(err),
    ).catch((err: Error) => err);
    expect((error as Error).message).toBe('task 1');
    expect(started).toEqual([1, 2]);
    expect(settled).toBe(2);
    expect(failures).toHaveLength(1);
  });
});
