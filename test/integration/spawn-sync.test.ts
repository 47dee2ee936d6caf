import * as fs from 'node:fs';
import { loadNative } from '../../src/native';
import { serializePlan } from '../../src/runtime/plan';
import { describeAsRoot } from '../helpers/fixtures';
import { checkLeaksAfterEach } from '../helpers/leaks';
import { until } from '../helpers/until';

const EPIPE = 32;

describeAsRoot('spawn: a forked child waiting at a sync point', () => {
  checkLeaksAfterEach();

  test('ends, reporting its step, when the parent\'s end of the channel goes away (a killed tsrun)', async () => {
    const native = loadNative();
    const plan = serializePlan([
      { op: 'SyncSignal', args: [5], phase: 'test' },
      { op: 'SyncWait', phase: 'test', detail: 'waiting for the parent' },
      { op: 'Exec', lists: [['/bin/true'], ['true'], []], phase: 'test' },
    ]);
    const [parentEnd, childEnd] = native.socketPair();
    const spawned = native.spawn(plan, { cloneFlags: 0, mode: 'fork', syncFd: childEnd, parentSyncFd: parentEnd });
    fs.closeSync(childEnd);
    let ended = false;
    try {
      expect(native.syncWait(parentEnd, 10_000)).toBe(5);
      // As when the parent dies: its end closes, and no copy of it is left open in the child.
      fs.closeSync(parentEnd);
      await until(() => native.waitExit(spawned.pidfd, false) ?? undefined, 'the child to end', 5_000);
      ended = true;
      expect(native.readChildError(spawned.errorFd)).toEqual({ step: 1, errno: EPIPE });
    } finally {
      if (!ended) {
        native.pidfdSendSignal(spawned.pidfd, 9);
        native.waitExit(spawned.pidfd, true);
        native.readChildError(spawned.errorFd);
      }
      fs.closeSync(spawned.pidfd);
    }
  });
});
