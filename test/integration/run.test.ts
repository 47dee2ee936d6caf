import * as fs from 'node:fs';
import * as path from 'node:path';
import { run, SyscallError } from '../../src';
import { busyboxRootfs, describeAsRoot, useTempDir } from '../helpers/fixtures';
import { checkLeaksAfterEach, snapshot } from '../helpers/leaks';
import { runCollect } from '../helpers/run';
import { StateStore } from '../../src/runtime/state';
import { loadNative } from '../../src/native';

describeAsRoot('run: namespaces, root filesystem and process', () => {
  const tmp = useTempDir('tsrun-run-');
  const state = () => path.join(tmp(), 'state');
  checkLeaksAfterEach();

  test('the command is PID 1 and ps lists only the container\'s processes', async () => {
    const r = await runCollect(['sh', '-c', 'echo $$; ps -o pid,comm; true'], { stateDir: state() });
    expect(r.exitCode).toBe(0);
    const [pid, header, ...procs] = r.stdout.trim().split('\n');
    expect(pid).toBe('1');
    expect(header).toMatch(/PID/);
    expect(procs.map((l) => l.trim().split(/\s+/)[1])).toEqual(['sh', 'ps']);
  });

  test('the hostname defaults to the first 12 characters of the id, or is the given one', async () => {
    const c = await run({ rootfs: busyboxRootfs(), args: ['hostname'], stdio: ['ignore', 'pipe', 'inherit'], stateDir: state() });
    let out = '';
    c.stdout?.on('data', (d) => (out += d));
    await c.wait();
    expect(out.trim()).toBe(c.id.slice(0, 12));
    expect(c.hostname).toBe(c.id.slice(0, 12));
    const named = await runCollect(['sh', '-c', 'hostname; echo $HOSTNAME'], { stateDir: state(), hostname: 'box1' });
    expect(named.stdout).toBe('box1\nbox1\n');
  });

  test('the container sees fds 0, 1, 2 and nothing of the runtime\'s', async () => {
    // An fd this process holds open must not reach the container (CVE-2024-21626).
    const held = fs.openSync(__filename, 'r');
    try {
      const r = await runCollect(['ls', '/proc/self/fd'], { stateDir: state() });
      // 3 is the directory ls itself opened to list the fds.
      expect(r.stdout.trim().split('\n').sort()).toEqual(['0', '1', '2', '3']);
    } finally {
      fs.closeSync(held);
    }
  });

  test('the container may run on every CPU the runtime may, and the runtime\'s thread is unpinned after the clone', async () => {
    // spawn pins the calling thread to its CPU for the clone, so that the
    // child starts there; the child gives itself the thread's CPUs back.
    const allowed = (status: string): string => /^Cpus_allowed_list:\s*(\S+)$/m.exec(status)?.[1] ?? '';
    const own = allowed(fs.readFileSync('/proc/thread-self/status', 'utf8'));
    const r = await runCollect(['cat', '/proc/self/status'], { stateDir: state() });
    expect(allowed(r.stdout)).toBe(own);
    expect(allowed(fs.readFileSync('/proc/thread-self/status', 'utf8'))).toBe(own);
  });

  test('mountinfo shows the container\'s root and the host\'s mount table is unchanged', async () => {
    const before = snapshot().mounts;
    const r = await runCollect(['cat', '/proc/self/mountinfo'], { stateDir: state() });
    const mounts = r.stdout.trim().split('\n').map((l) => l.split(' ')[4]);
    expect(mounts[0]).toBe('/');
    expect(mounts).toEqual(expect.arrayContaining(['/proc', '/dev', '/dev/pts', '/dev/shm', '/dev/mqueue', '/sys']));
    // Nothing of the host's other mounts is visible.
    expect(mounts).not.toContain('/sys/fs/cgroup');
    expect(r.stdout).toContain(` ${busyboxRootfs()} / `);
    expect(snapshot().mounts).toEqual(before);
  });

  test('/dev has the standard nodes and links, /sys is read-only', async () => {
    const r = await runCollect(
      ['sh', '-c', 'for n in null zero full random urandom tty; do [ -c /dev/$n ] || echo missing $n; done; for l in fd stdin ptmx; do readlink /dev/$l; done; head -c 4 /dev/zero | wc -c; touch /sys/x 2>/dev/null || echo sys-ro'],
      { stateDir: state() },
    );
    expect(r.stdout).toBe('/proc/self/fd\n/proc/self/fd/0\npts/ptmx\n4\nsys-ro\n');
  });

  test('network none has only loopback, up; host shares the host\'s interfaces', async () => {
    const none = await runCollect(['sh', '-c', 'ip -o link | cut -d: -f2; ping -c1 -W1 127.0.0.1 >/dev/null && echo lo-ok'], { stateDir: state() });
    expect(none.stdout).toBe(' lo\nlo-ok\n');
    const host = await runCollect(['sh', '-c', 'ip -o link | wc -l'], { stateDir: state(), network: 'host' });
    const hostLinks = fs.readdirSync('/sys/class/net').length;
    expect(Number(host.stdout.trim())).toBe(hostLinks);
  });

  test('--pid host sees the host\'s processes, including this test runner', async () => {
    const r = await runCollect(['sh', '-c', `[ -d /proc/${process.pid} ] && echo seen`], { stateDir: state(), pid: 'host' });
    expect(r.stdout).toBe('seen\n');
  });

  test('env, working directory and user are applied', async () => {
    const r = await runCollect(['sh', '-c', 'id -u; id -g; id -G; pwd; echo $FOO; echo $HOME; echo $PATH'], {
      stateDir: state(),
      env: ['FOO=bar', 'PATH=/bin:/sbin'],
      cwd: '/tmp',
      user: 'tester',
    });
    expect(r.stdout.split('\n')).toEqual(['1000', '1000', '1000 1500', '/tmp', 'bar', '/home/tester', '/bin:/sbin', '']);
  });

  test('exit codes propagate exactly; a signal gives 128+N', async () => {
    expect((await runCollect(['sh', '-c', 'exit 42'], { stateDir: state() })).exitCode).toBe(42);
    const c = await run({ rootfs: busyboxRootfs(), args: ['sleep', '30'], stdio: 'ignore', stateDir: state() });
    // PID 1 has no SIGTERM handler, so only SIGKILL ends it.
    expect(c.kill('SIGKILL')).toBe(true);
    expect(await c.wait()).toEqual({ exitCode: 137, signal: 'SIGKILL', oomKilled: false });
    expect(c.kill('SIGTERM')).toBe(false);
  });

  test('a trapped signal reaches the container\'s init', async () => {
    const c = await run({ rootfs: busyboxRootfs(), args: ['sh', '-c', 'trap "exit 43" USR1; echo ready; while :; do sleep 0.05; done'], stdio: ['ignore', 'pipe', 'inherit'], stateDir: state() });
    await new Promise((resolve) => c.stdout?.once('data', resolve));
    c.kill('USR1');
    expect((await c.wait()).exitCode).toBe(43);
  });

  test('stdin is forwarded and its EOF propagates', async () => {
    const r = await runCollect(['sh', '-c', 'cat; echo done'], { stateDir: state(), input: 'hello\n' });
    expect(r.stdout).toBe('hello\ndone\n');
  });

  test('an AbortSignal kills the container', async () => {
    const abort = new AbortController();
    const c = await run({ rootfs: busyboxRootfs(), args: ['sleep', '30'], stdio: 'ignore', stateDir: state(), signal: abort.signal });
    abort.abort();
    expect((await c.wait()).signal).toBe('SIGKILL');
    await expect(run({ rootfs: busyboxRootfs(), args: ['true'], stateDir: state(), signal: abort.signal })).rejects.toThrow(/abort/i);
  });

  test('read-only root refuses writes outside the tmpfs mounts', async () => {
    const r = await runCollect(['sh', '-c', 'touch /x 2>/dev/null || echo ro; touch /dev/shm/x && echo shm-rw'], { stateDir: state(), readOnly: true });
    expect(r.stdout).toBe('ro\nshm-rw\n');
  });

  test('the chroot path (no pivot_root) also gives the container its own root', async () => {
    const r = await runCollect(['sh', '-c', 'echo $$; ls /proc/self/fd | wc -l; [ -e /proc/1/root/bin/busybox ] && echo root'], { stateDir: state(), noPivot: true });
    expect(r.stdout).toBe('1\n4\nroot\n');
  });

  test('a user namespace maps root to an unprivileged host uid', async () => {
    const r = await runCollect(['sh', '-c', 'id -u; cat /proc/self/uid_map /proc/self/gid_map; echo $$'], {
      stateDir: state(),
      idMappings: { uid: [{ containerID: 0, hostID: 200000, size: 65536 }], gid: [{ containerID: 0, hostID: 200000, size: 65536 }] },
    });
    expect(r.stderr).toBe('');
    const lines = r.stdout.trim().split('\n').map((l) => l.trim().split(/\s+/).join(' '));
    expect(lines).toEqual(['0', '0 200000 65536', '0 200000 65536', '1']);
  });

  test('the record names the init by pid and start time, as /proc/PID/stat gives them', async () => {
    const c = await run({ rootfs: busyboxRootfs(), args: ['sleep', '30'], stdio: 'ignore', stateDir: state() });
    try {
      const saved = JSON.parse(fs.readFileSync(path.join(state(), c.id, 'state.json'), 'utf8'));
      const stat = fs.readFileSync(`/proc/${c.pid}/stat`, 'utf8');
      const startTime = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]);
      expect(startTime).toBeGreaterThan(0);
      expect(saved).toMatchObject({ status: 'running', pid: c.pid, pidStartTime: startTime });
    } finally {
      c.kill('SIGKILL');
      await c.wait();
    }
  });

  test('--rm removes the state; otherwise the stopped state keeps the exit code', async () => {
    const kept = await run({ rootfs: busyboxRootfs(), args: ['sh', '-c', 'exit 3'], stdio: 'ignore', stateDir: state(), name: 'kept' });
    await kept.wait();
    const saved = JSON.parse(fs.readFileSync(path.join(state(), kept.id, 'state.json'), 'utf8'));
    expect(saved).toMatchObject({ id: kept.id, name: 'kept', status: 'stopped', exitCode: 3 });
    await expect(run({ rootfs: busyboxRootfs(), args: ['true'], stateDir: state(), name: 'kept' })).rejects.toThrow(/already in use/);
    const removed = await run({ rootfs: busyboxRootfs(), args: ['true'], stdio: 'ignore', stateDir: state(), autoRemove: true });
    await removed.wait();
    expect(fs.existsSync(path.join(state(), removed.id))).toBe(false);
  });

  /**
   * A start made to fail after the clone by `failure` (a spy, restored
   * after) rejects with `message`, and leaves nothing: no record, the name
   * free, and (checked after each test) no process, cgroup or mount.
   */
  async function expectStartUndone(name: string, stdio: 'ignore' | 'pipe', failure: () => jest.SpyInstance, message: string): Promise<void> {
    fs.mkdirSync(state(), { recursive: true });
    const records = (): string[] => fs.readdirSync(state()).filter((e) => /^[0-9a-f]{64}$/.test(e));
    const before = records();
    const spy = failure();
    try {
      await expect(run({ rootfs: busyboxRootfs(), args: ['sleep', '1000'], stdio, stateDir: state(), name })).rejects.toThrow(message);
    } finally {
      spy.mockRestore();
    }
    expect(records()).toEqual(before);
    expect(await runCollect(['true'], { stateDir: state(), name })).toMatchObject({ exitCode: 0 });
  }

  test('a failure after the clone (here the state write that says running) kills and reaps the init and undoes the start', async () => {
    const save = StateStore.prototype.save;
    await expectStartUndone(
      'after-clone',
      'ignore',
      () =>
        jest.spyOn(StateStore.prototype, 'save').mockImplementation(function (this: StateStore, saved) {
          if (saved.status === 'running') throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
          save.call(this, saved);
        }),
      'ENOSPC',
    );
  });

  test('an exit watcher that cannot be made fails the start, and the init is killed and reaped', async () => {
    await expectStartUndone(
      'no-watcher',
      'pipe',
      () =>
        jest.spyOn(loadNative(), 'ExitWatcher').mockImplementation(() => {
          throw Object.assign(new Error('EMFILE: too many open files, epoll_ctl'), { code: 'EMFILE' });
        }),
      'EMFILE',
    );
  });

  test('100 containers started at once all exit 0', async () => {
    const containers = await Promise.all(Array.from({ length: 100 }, () => run({ rootfs: busyboxRootfs(), args: ['true'], stdio: 'ignore', stateDir: state(), autoRemove: true })));
    const results = await Promise.all(containers.map((c) => c.wait()));
    expect(results.every((r) => r.exitCode === 0)).toBe(true);
  });

  test('SyscallError is exported for callers', () => {
    expect(new SyscallError('rootfs', 'mount', 2, '/x').code).toBe('ENOENT');
  });
});
