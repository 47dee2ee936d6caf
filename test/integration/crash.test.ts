import { ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CRASH_POINTS, KILL_AT_ENV } from '../../src/util/crash-point';
import { busyboxRootfs, describeAsRoot, useTempDir } from '../helpers/fixtures';
import { until } from '../helpers/until';
import { storeSnapshot, tarOf, writeOciLayout } from '../helpers/images';
import { checkLeaksAfterEach } from '../helpers/leaks';
import { useRegistry } from '../helpers/registry';

const TSRUN = path.resolve(__dirname, '..', '..', 'bin', 'tsrun');

interface Result {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/**
 * tsrun is SIGKILLed at every named step of run, pull and commit
 * (TSRUN_DEBUG_KILL_AT); then `tsrun system prune` must leave the store
 * byte for byte as it was before the operation, and the host without a
 * mount, cgroup or process of it (the leak checks after each test).
 */
describeAsRoot('crash safety: a tsrun killed at any step, then system prune', () => {
  const tmp = useTempDir('tsrun-crash-');
  const registry = useRegistry();
  checkLeaksAfterEach();
  const root = (): string => path.join(tmp(), 'store');
  const state = (): string => path.join(tmp(), 'state');

  function tsrun(args: string[], killAt?: string): Result {
    const env = { ...process.env };
    if (killAt) env[KILL_AT_ENV] = killAt;
    return spawnSync(TSRUN, ['--root', root(), '--state', state(), ...args], { encoding: 'utf8', input: '', env, timeout: 60_000 });
  }

  function prune(): void {
    expect(tsrun(['system', 'prune', '-f'])).toMatchObject({ status: 0, stderr: '' });
  }

  beforeAll(() => {
    const tar = path.join(tmp(), 'busybox.tar');
    fs.writeFileSync(tar, tarOf(busyboxRootfs()));
    expect(tsrun(['import', '-c', 'CMD ["sh"]', tar, 'busybox:base']).status).toBe(0);
    const layout = path.join(tmp(), 'layout');
    writeOciLayout(layout, [tarOf(busyboxRootfs())], { cmd: ['sh'] });
    execFileSync('skopeo', ['copy', '-q', '--dest-tls-verify=false', `oci:${layout}`, `docker://${registry().host}/busybox:1`]);
    // Every directory an operation makes once exists from here on, as in a store in use.
    expect(tsrun(['run', '--rm', 'busybox:base', 'true']).status).toBe(0);
    expect(tsrun(['pull', '-q', `${registry().host}/busybox:1`]).status).toBe(0);
    expect(tsrun(['rmi', `${registry().host}/busybox:1`]).status).toBe(0);
  });

  test.each(CRASH_POINTS.run.map((step) => [step]))('run, killed at %s', async (step) => {
    const before = storeSnapshot(root());
    const killed = tsrun(['run', '--name', `crash-${step.replace(':', '-')}`, 'busybox:base', 'sh', '-c', 'echo hello'], step);
    expect(killed.signal).toBe('SIGKILL');
    // The init, if it started, dies with its tsrun (PR_SET_PDEATHSIG); prune takes what it leaves.
    await until(() => !tsrun(['ps', '-a']).stdout.includes(' Up '), 'the container to be seen as exited');
    prune();
    expect(tsrun(['ps', '-a', '-q']).stdout).toBe('');
    expect(storeSnapshot(root())).toEqual(before);
    expect(tsrun(['system', 'check'])).toMatchObject({ status: 0, stdout: expect.stringMatching(/^store OK: /) });
  });

  test.each(CRASH_POINTS.pull.map((step) => [step]))('pull, killed at %s', (step) => {
    const before = storeSnapshot(root());
    const reference = `${registry().host}/busybox:1`;
    expect(tsrun(['pull', '-q', reference], step).signal).toBe('SIGKILL');
    prune();
    expect(storeSnapshot(root())).toEqual(before);
    expect(tsrun(['system', 'check'])).toMatchObject({ status: 0, stdout: expect.stringMatching(/^store OK: /) });
    // Nothing half-made stands in the way of the next pull.
    expect(tsrun(['pull', '-q', reference])).toMatchObject({ status: 0, stdout: `${reference}\n` });
    expect(tsrun(['rmi', reference]).status).toBe(0);
    expect(storeSnapshot(root())).toEqual(before);
  });

  describe('commit of a running container', () => {
    let runner: ChildProcess | undefined;
    let exited: Promise<void> | undefined;

    beforeAll(async () => {
      runner = spawn(TSRUN, ['--root', root(), '--state', state(), 'run', '--name', 'source', 'busybox:base', 'sh', '-c', 'echo data > /made; echo ready; exec sleep 1000'], { stdio: ['ignore', 'pipe', 'inherit'] });
      let output = '';
      runner.stdout?.setEncoding('utf8').on('data', (d: string) => (output += d));
      exited = new Promise((resolve) => runner?.on('close', () => resolve()));
      await until(() => output.includes('ready'), 'the container to start');
    });

    afterAll(async () => {
      runner?.kill('SIGKILL');
      await exited;
      expect(tsrun(['rm', '-f', 'source']).status).toBe(0);
    });

    test.each(CRASH_POINTS.commit.map((step) => [step]))('killed at %s', (step) => {
      const before = storeSnapshot(root());
      expect(tsrun(['commit', 'source', 'committed:1'], step).signal).toBe('SIGKILL');
      prune();
      expect(storeSnapshot(root())).toEqual(before);
      expect(tsrun(['ps', '-q']).stdout).not.toBe('');
    });
  });
});
