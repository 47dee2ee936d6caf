import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { run } from '../../src';
import { busyboxRootfs, describeAsRoot, useTempDir } from '../helpers/fixtures';
import { checkLeaksAfterEach } from '../helpers/leaks';
import { TmuxSession, hasTmux, written } from '../helpers/tmux';
import { until } from '../helpers/until';

const TSRUN = path.resolve(__dirname, '..', '..', 'bin', 'tsrun');
if (!hasTmux) console.warn('skipped the -it tests: tmux is not installed (scripts/setup.sh installs it)');
const withTmux = hasTmux ? test : test.skip;

describeAsRoot('terminals: run -it, -i, exec -it', () => {
  const tmp = useTempDir('tsrun-tty-');
  const state = () => path.join(tmp(), 'state');
  // Its own store: a detached container's cleanup (and run -it's) looks there.
  const root = () => path.join(tmp(), 'store');
  checkLeaksAfterEach();

  /**
   * Runs `command` (tsrun's arguments) in a tmux pane whose shell records its
   * terminal mode around it, types `stty size; tty` into the container's
   * shell, resizes the window, types `stty size; exit 3`: the sizes, the
   * tty, the exit code and the mode afterwards must all be right.
   */
  async function driveShell(command: string[]): Promise<void> {
    // A directory per session: a file the last session left would say this one's tsrun had exited.
    const dir = fs.mkdtempSync(path.join(tmp(), 'session-'));
    const script = path.join(dir, 'session.sh');
    fs.writeFileSync(
      script,
      [
        `stty -g > ${dir}/mode-before`,
        [TSRUN, '--state', state(), '--root', root(), ...command].join(' '),
        `echo $? > ${dir}/exit-code`,
        `stty -g > ${dir}/mode-after`,
        'exec sleep 600',
      ].join('\n'),
    );
    const session = new TmuxSession(dir, script);
    try {
      await until(() => (/# $/m.test(session.screen()) ? true : undefined), 'the container shell prompt');
      session.type('stty size; tty\r');
      await until(() => (/^\/dev\/pts\/\d+$/m.test(session.screen()) ? true : undefined), 'the output of tty');
      expect(session.screen()).toMatch(/^24 80$/m);

      session.resize(100, 30);
      session.type('stty size; exit 3\r');
      const code = await until(() => (written(`${dir}/mode-after`) ? fs.readFileSync(`${dir}/exit-code`, 'utf8').trim() : undefined), 'tsrun to exit');
      expect(session.screen()).toMatch(/^30 100$/m);
      expect(code).toBe('3');
      expect(fs.readFileSync(`${dir}/mode-after`, 'utf8')).toBe(fs.readFileSync(`${dir}/mode-before`, 'utf8'));
    } finally {
      session.kill();
    }
  }

  withTmux('run -it through a real terminal: window size, resize, /dev/pts tty, exit code; the host mode is restored', async () => {
    await driveShell(['run', '-it', '--rm', '--rootfs', busyboxRootfs(), 'sh']);
  });

  withTmux('exec -it into a detached container: a pty of its own devpts, window size, resize, exit code; the host mode is restored', async () => {
    spawnSync(TSRUN, ['--state', state(), '--root', root(), 'run', '-d', '--name', 'box', '--rootfs', busyboxRootfs(), 'sleep', '1000'], { encoding: 'utf8' });
    try {
      await driveShell(['exec', '-it', 'box', 'sh']);
      // The container's init keeps running; its devpts had the exec's pty.
      const exec = spawnSync(TSRUN, ['--state', state(), '--root', root(), 'exec', '-t', 'box', 'sh', '-c', 'tty; ls /dev/pts | tr "\\n" " "; echo $TERM'], { encoding: 'utf8' });
      expect(exec).toMatchObject({ status: 0, stdout: '/dev/pts/0\r\n0 ptmx xterm\r\n' });
      const refused = spawnSync(TSRUN, ['--state', state(), '--root', root(), 'exec', '-it', 'box', 'sh'], { input: '', encoding: 'utf8' });
      expect(refused.status).toBe(125);
      expect(refused.stderr).toMatch(/the input device is not a TTY/);
    } finally {
      spawnSync(TSRUN, ['--state', state(), '--root', root(), 'rm', '-f', 'box']);
    }
  });

  test('-i forwards stdin to its end of file; without -i the container reads /dev/null', () => {
    const tsrun = (flags: string[]): ReturnType<typeof spawnSync> =>
      spawnSync(TSRUN, ['--state', state(), '--root', root(), 'run', '--rm', ...flags, '--rootfs', busyboxRootfs(), 'sh', '-c', 'cat; echo "[eof]"; [ -t 0 ] || echo "not a tty"'], { input: 'line 1\nline 2', encoding: 'utf8', timeout: 30_000 });
    expect(tsrun(['-i'])).toMatchObject({ status: 0, stdout: 'line 1\nline 2[eof]\nnot a tty\n' });
    expect(tsrun([])).toMatchObject({ status: 0, stdout: '[eof]\nnot a tty\n' });
    const refused = tsrun(['-it']);
    expect(refused.status).toBe(125);
    expect(refused.stderr).toMatch(/the input device is not a TTY/);
  });

  test('-t without a host terminal still gives the container a pty, whose output comes back, owned by the process\'s user', () => {
    const result = spawnSync(TSRUN, ['--state', state(), '--root', root(), 'run', '--rm', '-t', '-u', '1000:1000', '--rootfs', busyboxRootfs(), 'sh', '-c', 'tty; [ -t 1 ] && echo yes; stat -c "%u %g %a" $(tty)'], { encoding: 'utf8', timeout: 30_000 });
    expect(result.status).toBe(0);
    expect(result.stdout).toBe('/dev/pts/0\r\nyes\r\n1000 5 620\r\n');
  });

  test('library: tty gives a terminal of the asked size; resize() reaches the process; the stream ends with it', async () => {
    const container = await run({ rootfs: busyboxRootfs(), stateDir: state(), tty: { rows: 10, cols: 40 }, args: ['sh', '-c', 'stty size; read line; stty size; exit 4'] });
    expect(container.terminal).not.toBeNull();
    expect(container.stdin).toBe(container.terminal?.stream);
    let output = '';
    container.terminal?.stream.setEncoding('utf8').on('data', (d: string) => (output += d));
    await until(() => (output.includes('10 40') ? true : undefined), 'the first size');
    container.terminal?.resize({ rows: 20, cols: 50 });
    container.terminal?.stream.write('go\r');
    expect(await container.wait()).toMatchObject({ exitCode: 4 });
    expect(output).toMatch(/10 40\r\ngo\r\n20 50\r\n$/);
    expect(container.terminal?.stream.destroyed).toBe(true);
  });
});
