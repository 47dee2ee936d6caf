import * as v8 from 'node:v8';
import * as vm from 'node:vm';
import { run } from '../../src';
import { busyboxRootfs, describeAsRoot, useTempDir } from '../helpers/fixtures';
import { expectNoLeaks, settledSnapshot } from '../helpers/leaks';
import { runCollect } from '../helpers/run';

// The full 1,000 runs are in the benchmark (scripts/bench/start.js).
const RUNS = 200;

describeAsRoot('sequential runs from one process', () => {
  const tmp = useTempDir('tsrun-seq-');

  test(`${RUNS} runs leave no fd, mount, zombie or thread behind`, async () => {
    const stateDir = tmp();
    // The first runs start libuv's thread pool and load the addon; count from after them.
    for (let i = 0; i < 3; i++) await runCollect(['true'], { stateDir, autoRemove: true });
    const before = await settledSnapshot();
    for (let i = 0; i < RUNS; i++) {
      if (i % 2 === 0) {
        const container = await run({ rootfs: busyboxRootfs(), args: ['true'], stdio: 'ignore', stateDir, autoRemove: true });
        expect(await container.wait()).toEqual({ exitCode: 0, signal: null, oomKilled: false });
      } else {
        const result = await runCollect(['sh', '-c', 'echo $$'], { stateDir, autoRemove: true });
        expect(result.stdout).toBe('1\n');
      }
    }
    const after = await settledSnapshot();
    expectNoLeaks(before, after);
    expect(after.threads).toBeLessThanOrEqual(before.threads);
  });

  test('a container that exited and is no longer referenced is garbage collected', async () => {
    v8.setFlagsFromString('--expose-gc');
    const gc = vm.runInNewContext('gc') as () => void;
    const stateDir = tmp();
    const runOnce = async (): Promise<WeakRef<object>> => {
      const container = await run({ rootfs: busyboxRootfs(), args: ['true'], stdio: 'ignore', stateDir, autoRemove: true });
      await container.wait();
      return new WeakRef(container);
    };
    const refs: WeakRef<object>[] = [];
    for (let i = 0; i < 5; i++) refs.push(await runOnce());
    // A WeakRef keeps its target until the job that made it ends; collect after.
    for (let i = 0; i < 3; i++) {
      await new Promise((resolve) => setImmediate(resolve));
      gc();
    }
    expect(refs.filter((r) => r.deref() !== undefined)).toHaveLength(0);
  });
});
