import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { busyboxRootfs, describeAsRoot, useTempDir } from '../helpers/fixtures';
import { checkLeaksAfterEach } from '../helpers/leaks';
import { TmuxSession, hasTmux, written } from '../helpers/tmux';
import { monitorOf } from '../helpers/processes';
import { until } from '../helpers/until';
import { CliResult, TSRUN, runCli } from '../helpers/cli';

if (!hasTmux) console.warn('skipped the attach -it test: tmux is not installed (scripts/setup.sh installs it)');
const withTmux = hasTmux ? test : test.skip;

describeAsRoot('attach: run -dit, create -t, run -di; detach keys', () => {
  const tmp = useTempDir('tsrun-attach-');
  const root = () => path.join(tmp(), 'store');
  const stateDir = () => path.join(tmp(), 'state');
  checkLeaksAfterEach();

  const globals = (): string[] => ['--root', root(), '--state', stateDir()];
  const tsrun = (args: string[], input?: string): CliResult => runCli(globals(), args, input);
  const ok = (...args: string[]): string => {
    const result = tsrun(args);
    if (result.status !== 0) throw new Error(`tsrun ${args.join(' ')} exited ${result.status}: ${result.stderr}`);
    return result.stdout;
  };
  const status = (name: string): string => (JSON.parse(ok('inspect', name))[0] as { State: { Status: string } }).State.Status;

  withTmux('run -dit, then attach through a real terminal: typed commands run, ctrl-p ctrl-q detaches and the container runs on; attached again, exit 4 ends attach with 4', async () => {
    const id = ok('run', '-dit', '--name', 'shell', '--rootfs', busyboxRootfs(), 'sh').trim();
    // A directory per session, so that no file of another test's session is taken for this one's.
    const dir = fs.mkdtempSync(path.join(tmp(), 'session-'));
    const script = path.join(dir, 'session.sh');
    const attach = [TSRUN, ...globals(), 'attach', 'shell'].join(' ');
    fs.writeFileSync(
      script,
      [
        `stty -g > ${dir}/mode-before`,
        attach,
        `echo $? > ${dir}/exit-1`,
        `stty -g > ${dir}/mode-1`,
        `while [ ! -e ${dir}/again ]; do sleep 0.1; done`,
        attach,
        `echo $? > ${dir}/exit-2`,
        `stty -g > ${dir}/mode-2`,
        'exec sleep 600',
      ].join('\n'),
    );
    const session = new TmuxSession(dir, script);
    try {
      // Nothing is replayed on attach: the shell's answer to a typed command is what shows it is connected.
      session.type('x=second; echo first-$((6*7)); stty size; tty\r');
      await until(() => (/^first-42$/m.test(session.screen()) ? true : undefined), 'the output of the first command');
      await until(() => (/^\/dev\/pts\/0$/m.test(session.screen()) ? true : undefined), 'the output of tty');
      // attach set the container's window to this terminal's size.
      expect(session.screen()).toMatch(/^24 80$/m);

      session.keys('C-p', 'C-q');
      const first = await until(() => written(`${dir}/mode-1`) && fs.readFileSync(`${dir}/exit-1`, 'utf8').trim(), 'attach to detach');
      expect(first).toBe('0');
      expect(fs.readFileSync(`${dir}/mode-1`, 'utf8')).toBe(fs.readFileSync(`${dir}/mode-before`, 'utf8'));
      expect(status('shell')).toBe('running');
      // The shell typed into stays: its variable is still set on the second attach.
      fs.writeFileSync(`${dir}/again`, '');
      session.type('echo $x-$((1+1))\r');
      await until(() => (/^second-2$/m.test(session.screen()) ? true : undefined), 'the output of the second attach');
      const monitor = monitorOf(id);
      const rssKiB = Number(/VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${monitor}/status`, 'utf8'))?.[1]);
      expect(rssKiB).toBeGreaterThan(0);
      expect(rssKiB).toBeLessThan(3.5 * 1024);

      session.type('exit 4\r');
      const second = await until(() => written(`${dir}/mode-2`) && fs.readFileSync(`${dir}/exit-2`, 'utf8').trim(), 'attach to end with the container');
      expect(second).toBe('4');
      expect(fs.readFileSync(`${dir}/mode-2`, 'utf8')).toBe(fs.readFileSync(`${dir}/mode-before`, 'utf8'));
      expect(ok('wait', 'shell')).toBe('4\n');
      // The terminal's output went to the log as well.
      expect(ok('logs', 'shell')).toMatch(/^first-42\r$/m);
    } finally {
      session.kill();
      tsrun(['rm', '-f', 'shell']);
    }
  });

  withTmux('run -it with --detach-keys: the keys detach and the container runs on under its monitor; attach --detach-keys comes back to it', async () => {
    // A directory per session, so that no file of another test's session is taken for this one's.
    const dir = fs.mkdtempSync(path.join(tmp(), 'session-'));
    const script = path.join(dir, 'session.sh');
    fs.writeFileSync(
      script,
      [
        [TSRUN, ...globals(), 'run', '-it', '--rm', '--detach-keys', 'ctrl-x,x', '--name', 'fgshell', '--rootfs', busyboxRootfs(), 'sh'].join(' '),
        `echo $? > ${dir}/exit-1`,
        [TSRUN, ...globals(), 'attach', '--detach-keys', 'ctrl-x,x', 'fgshell'].join(' '),
        `echo $? > ${dir}/exit-2`,
        'exec sleep 600',
      ].join('\n'),
    );
    const session = new TmuxSession(dir, script);
    try {
      session.type('x=kept; echo one-$((1+1))\r');
      await until(() => (/^one-2$/m.test(session.screen()) ? true : undefined), 'the output of the first command');
      session.keys('C-x', 'x');
      expect(await until(() => written(`${dir}/exit-1`) && fs.readFileSync(`${dir}/exit-1`, 'utf8').trim(), 'run to detach')).toBe('0');
      expect(status('fgshell')).toBe('running');
      session.type('echo $x-$((2+2))\r');
      await until(() => (/^kept-4$/m.test(session.screen()) ? true : undefined), 'the output in the second attach');
      session.type('exit 4\r');
      expect(await until(() => written(`${dir}/exit-2`) && fs.readFileSync(`${dir}/exit-2`, 'utf8').trim(), 'attach to end')).toBe('4');
      // --rm: removed once it exited.
      await until(() => tsrun(['inspect', 'fgshell']).status !== 0, 'the container to be removed');
    } finally {
      session.kill();
      tsrun(['rm', '-f', 'fgshell']);
    }
  });

  test('run -di, then attach with piped stdin: its lines reach the container, its end closes the container\'s stdin; stdout and stderr stay apart', () => {
    ok('run', '-di', '--name', 'reader', '--rootfs', busyboxRootfs(), 'sh', '-c', 'while read line; do echo "got $line"; done; echo "stdin closed" >&2; exit 6');
    try {
      const result = tsrun(['attach', 'reader'], 'a\nb\n');
      expect(result).toEqual({ status: 6, stdout: 'got a\ngot b\n', stderr: 'stdin closed\n' });
      expect(ok('logs', 'reader')).toBe('got a\ngot b\n');
    } finally {
      tsrun(['rm', '-f', 'reader']);
    }
  });

  test('create -i, start -ai: attached before it starts, nothing is missed; an exited container starts anew attached', () => {
    ok('create', '-i', '--name', 'once', '--rootfs', busyboxRootfs(), 'sh', '-c', 'echo started; read line; echo "got $line"; exit 2');
    try {
      expect(tsrun(['start', '-ai', 'once'], 'first\n')).toEqual({ status: 2, stdout: 'started\ngot first\n', stderr: '' });
      expect(tsrun(['start', '-ai', 'once'], 'second\n')).toEqual({ status: 2, stdout: 'started\ngot second\n', stderr: '' });
      expect(tsrun(['start', '-a', 'once', 'other'])).toMatchObject({ status: 125, stderr: expect.stringMatching(/one container at a time/) });
    } finally {
      tsrun(['rm', '-f', 'once']);
    }
  });

  test('create -t, start, attach: output only (no -i), from a pty of the container\'s devpts; the exit code ends it', async () => {
    ok('create', '-t', '--name', 'waiter', '--rootfs', busyboxRootfs(), 'sh', '-c', 'while [ ! -e /tmp/go ]; do echo waiting; sleep 0.1; done; tty; exit 3');
    try {
      ok('start', 'waiter');
      const attach = spawn(TSRUN, [...globals(), 'attach', 'waiter'], { stdio: ['ignore', 'pipe', 'pipe'] });
      let output = '';
      attach.stdout.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
      const exited = new Promise<number | null>((resolve) => attach.on('close', resolve));
      await until(() => output.includes('waiting'), 'the attached output');
      ok('exec', 'waiter', 'touch', '/tmp/go');
      expect(await exited).toBe(3);
      expect(output).toMatch(/\/dev\/pts\/0\r\n$/);
    } finally {
      tsrun(['rm', '-f', 'waiter']);
    }
  });

  test('without a terminal, a signal to attach goes to the container (--sig-proxy), whose exit ends attach', async () => {
    ok('run', '-d', '--name', 'trapper', '--rootfs', busyboxRootfs(), 'sh', '-c', 'trap "echo got TERM; exit 9" TERM; while true; do echo waiting; sleep 0.1; done');
    try {
      const attach = spawn(TSRUN, [...globals(), 'attach', 'trapper'], { stdio: ['ignore', 'pipe', 'pipe'] });
      let output = '';
      attach.stdout.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
      const exited = new Promise<number | null>((resolve) => attach.on('close', resolve));
      await until(() => output.includes('waiting'), 'the attached output');
      attach.kill('SIGTERM');
      expect(await exited).toBe(9);
      expect(output).toMatch(/got TERM\n$/);
    } finally {
      tsrun(['rm', '-f', 'trapper']);
    }
  });

  test('attach needs a running detached container: created, exited and foreground ones are refused with the reason', async () => {
    ok('create', '--name', 'idle', '--rootfs', busyboxRootfs(), 'true');
    try {
      const created = tsrun(['attach', 'idle']);
      expect(created.status).toBe(1);
      expect(created.stderr).toMatch(/cannot attach created container idle: attach needs a running container/);
      ok('start', 'idle');
      ok('wait', 'idle');
      const exited = tsrun(['attach', 'idle']);
      expect(exited.status).toBe(1);
      expect(exited.stderr).toMatch(/cannot attach (stopped|exited) container idle/);
      expect(tsrun(['attach', 'nothing-here'])).toMatchObject({ status: 1, stderr: expect.stringMatching(/nothing-here/) });
      expect(tsrun(['attach', '--detach-keys', 'ctrl-1', 'idle'])).toMatchObject({ status: 125, stderr: expect.stringMatching(/detach-keys: "ctrl-1" is not a key/) });
    } finally {
      tsrun(['rm', '-f', 'idle']);
    }
    // A foreground container's output is its own tsrun's.
    const foreground = spawn(TSRUN, [...globals(), 'run', '--name', 'fg', '--rootfs', busyboxRootfs(), 'sh', '-c', 'trap "exit 0" TERM; while true; do sleep 0.1; done'], { stdio: 'ignore' });
    const closed = new Promise((resolve) => foreground.on('close', resolve));
    try {
      await until(() => tsrun(['inspect', 'fg']).status === 0 && status('fg') === 'running', 'the foreground container to run');
      expect(tsrun(['attach', 'fg'])).toMatchObject({ status: 1, stderr: expect.stringMatching(/attach: container fg was not started detached/) });
    } finally {
      foreground.kill('SIGTERM');
      await closed;
    }
  });
});
