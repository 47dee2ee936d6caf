import * as fs from 'node:fs';
import * as path from 'node:path';
import { ExitCode, NotFoundError, SyscallError, ValidationError, exitCodeForStartError, run } from '../../src';
import { busyboxRootfs, describeAsRoot, useTempDir } from '../helpers/fixtures';
import { checkLeaksAfterEach } from '../helpers/leaks';

describeAsRoot('run: failures name the step and the cause, and leave nothing behind', () => {
  const tmp = useTempDir('tsrun-errors-');
  const state = () => path.join(tmp(), 'state');
  checkLeaksAfterEach();

  async function startError(options: Partial<Parameters<typeof run>[0]>): Promise<unknown> {
    try {
      const c = await run({ rootfs: busyboxRootfs(), args: ['true'], stdio: 'ignore', stateDir: state(), ...options });
      await c.wait();
    } catch (err) {
      return err;
    }
    throw new Error('the container started');
  }

  test('a missing command by path: exec ENOENT, 127', async () => {
    const err = await startError({ args: ['/bin/nope'] });
    expect(err).toBeInstanceOf(SyscallError);
    expect(err).toMatchObject({ step: 'process', syscall: 'exec', path: '/bin/nope', code: 'ENOENT' });
    expect((err as Error).message).toBe('process: exec /bin/nope: ENOENT (no such file or directory)');
    expect(exitCodeForStartError(err)).toBe(ExitCode.NotFound);
  });

  test('a command not in PATH says so', async () => {
    const err = await startError({ args: ['nope'] });
    expect((err as Error).message).toMatch(/exec nope: ENOENT .*executable file not found in \$PATH/);
    expect(exitCodeForStartError(err)).toBe(127);
  });

  test('a file that is not executable: EACCES, 126', async () => {
    const err = await startError({ args: ['/etc/passwd'] });
    expect(err).toMatchObject({ syscall: 'exec', code: 'EACCES' });
    expect(exitCodeForStartError(err)).toBe(126);
  });

  test('a nonexistent working directory: chdir ENOENT, 126', async () => {
    const err = await startError({ cwd: '/nowhere' });
    expect(err).toMatchObject({ step: 'process', syscall: 'chdir', path: '/nowhere', code: 'ENOENT' });
    expect(exitCodeForStartError(err)).toBe(126);
  });

  test('an unknown user fails before anything is created: 125', async () => {
    const err = await startError({ user: 'ghost' });
    expect(err).toBeInstanceOf(NotFoundError);
    expect((err as Error).message).toBe('unable to find user ghost: no matching entries in passwd file');
    expect(exitCodeForStartError(err)).toBe(125);
  });

  test('a missing or non-directory rootfs: 125', async () => {
    const missing = await startError({ rootfs: path.join(tmp(), 'nope') });
    expect(missing).toBeInstanceOf(ValidationError);
    expect((missing as Error).message).toMatch(/^rootfs: .*nope does not exist$/);
    const file = path.join(tmp(), 'file');
    fs.writeFileSync(file, '');
    expect(((await startError({ rootfs: file })) as Error).message).toMatch(/is not a directory/);
  });

  test('a failing mount names its target; a rootfs without /proc is given one', async () => {
    // A rootfs whose /proc is a regular file cannot take the proc mount.
    const root = path.join(tmp(), 'badroot');
    fs.cpSync(busyboxRootfs(), root, { recursive: true, verbatimSymlinks: true });
    fs.rmSync(path.join(root, 'proc'), { recursive: true });
    fs.writeFileSync(path.join(root, 'proc'), '');
    const err = await startError({ rootfs: root });
    expect(err).toMatchObject({ step: 'rootfs', syscall: 'mount', path: path.join(root, 'proc'), code: 'ENOTDIR' });
    expect((err as Error).message).toBe(`rootfs: mount ${path.join(root, 'proc')}: ENOTDIR (not a directory; proc from proc)`);
    fs.rmSync(path.join(root, 'proc'));
    const c = await run({ rootfs: root, args: ['true'], stdio: 'ignore', stateDir: state() });
    expect((await c.wait()).exitCode).toBe(0);
    expect(fs.statSync(path.join(root, 'proc')).isDirectory()).toBe(true);
  });

  test('a failed start removes the container\'s state', async () => {
    const own = path.join(tmp(), 'state-failed');
    await startError({ args: ['/bin/nope'], name: 'failed', stateDir: own });
    expect(fs.readdirSync(own)).toEqual(['names']);
    expect(fs.readdirSync(path.join(own, 'names'))).toEqual([]);
  });
});
