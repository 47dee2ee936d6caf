import type { Options } from 'yargs';
import { findCommand, parseValidArgs, separateContainerCommand } from '../../src/cli/argv';
import { RUN_OPTIONS, runCommand } from '../../src/cli/commands/run';
import type { CliCommand } from '../../src/cli/command';
import { allCommands, commandInput, commandParser } from '../../src/cli/main';

const GLOBALS: Record<string, Options> = {
  root: { type: 'string' },
  state: { type: 'string' },
  'log-level': { type: 'string' },
  debug: { type: 'boolean' },
};

describe('separateContainerCommand (docker run: options stop at the first positional)', () => {
  test.each<[string[], number, string[]]>([
    // run IMAGE [COMMAND...]
    [['busybox', 'sh', '-c', 'ls -e'], 1, ['busybox', '--', 'sh', '-c', 'ls -e']],
    [['-e', 'A=1', '--rm', 'busybox', 'ls', '-l'], 1, ['-e', 'A=1', '--rm', 'busybox', '--', 'ls', '-l']],
    [['--name=x', '-w', '/tmp', 'busybox', 'pwd'], 1, ['--name=x', '-w', '/tmp', 'busybox', '--', 'pwd']],
    // Flags after the image are the container's, as with docker run IMAGE --version.
    [['busybox', '--version'], 1, ['busybox', '--', '--version']],
    [['busybox', '--rm', 'ls'], 1, ['busybox', '--', '--rm', 'ls']],
    [['busybox', '-e', 'X'], 1, ['busybox', '--', '-e', 'X']],
    // -e takes one value: the next word is the image.
    [['-e', 'A=1', 'img', 'B=2'], 1, ['-e', 'A=1', 'img', '--', 'B=2']],
    // Nothing to separate.
    [['busybox'], 1, ['busybox']],
    [['--rm', '-e', 'A=1'], 1, ['--rm', '-e', 'A=1']],
    [[], 1, []],
    // An explicit -- is left as it is.
    [['--rm', 'busybox', '--', 'ls', '-l'], 1, ['--rm', 'busybox', '--', 'ls', '-l']],
    [['--rm', '--', 'busybox', 'ls'], 1, ['--rm', '--', 'busybox', 'ls']],
    // run --rootfs DIR COMMAND...: the command is the first positional.
    [['--rootfs', '/r', 'ls', '-l'], 0, ['--rootfs', '/r', '--', 'ls', '-l']],
    [['--rootfs=/r', '-e', 'A', 'ls', '-e'], 0, ['--rootfs=/r', '-e', 'A', '--', 'ls', '-e']],
    [['--rootfs', '/r', '--', 'ls'], 0, ['--rootfs', '/r', '--', 'ls']],
  ])('%j after %i positional(s) -> %j', (args, before, expected) => {
    expect(separateContainerCommand(args, RUN_OPTIONS, before)).toEqual(expected);
  });
});

describe('tsrun run: what reaches the command', () => {
  const parse = async (args: string[]): Promise<{ positionals: string[]; argv: Record<string, unknown> }> => {
    const argv = (await commandParser(runCommand as never, args).parseAsync()) as unknown as Record<string, unknown> & { _: unknown[]; '--'?: unknown[] };
    return { positionals: [...argv._, ...(argv['--'] ?? [])].map(String), argv };
  };

  test('--rootfs DIR with a command that has its own flags', async () => {
    const { positionals, argv } = await parse(['--rm', '--rootfs', '/r', 'sh', '-c', 'echo hi -e']);
    expect(positionals).toEqual(['sh', '-c', 'echo hi -e']);
    expect(argv).toMatchObject({ rm: true, rootfs: '/r' });
  });

  test('IMAGE with flags for the container', async () => {
    const { positionals, argv } = await parse(['-e', 'A=1', '--name', 'web', 'busybox', '--rm', '-e', 'B=2']);
    expect(positionals).toEqual(['busybox', '--rm', '-e', 'B=2']);
    expect(argv).toMatchObject({ rm: false, env: ['A=1'], name: 'web' });
  });

  test('a single-word command, and an image alone', async () => {
    expect((await parse(['--rootfs', '/r', 'true'])).positionals).toEqual(['true']);
    expect((await parse(['busybox'])).positionals).toEqual(['busybox']);
  });

  test('a boolean flag never takes the next word as its value, as with docker: `true` and `false` there are positionals', async () => {
    expect(await parse(['--rootfs', '/r', '--rm', 'true'])).toMatchObject({ positionals: ['true'], argv: { rm: true } });
    expect(await parse(['--rm', 'false', 'busybox'])).toMatchObject({ positionals: ['false', 'busybox'], argv: { rm: true } });
    expect(await parse(['-dit', 'true', '-d', 'false'])).toMatchObject({ positionals: ['true', '-d', 'false'], argv: { detach: true, interactive: true, tty: true } });
    expect(await parse(['--name', 'true', '--rm=false', 'busybox', 'true'])).toMatchObject({ positionals: ['busybox', 'true'], argv: { name: 'true', rm: false } });
  });

  test('tsrun\'s own unknown options before the image are still refused', async () => {
    await expect(parse(['--bogus', 'busybox', 'true'])).rejects.toThrow(/Unknown argument/);
  });
});

describe('findCommand', () => {
  const commands = [{ name: 'run' }, { name: 'images', aliases: ['image ls', 'image list'] }, { name: 'image inspect' }, { name: 'rm' }];

  test('after the global options, the longest matching name', () => {
    expect(findCommand(['run', 'busybox'], GLOBALS, commands)).toEqual({ command: commands[0], index: 0, words: 1 });
    expect(findCommand(['--root', '/x', '--debug', 'image', 'inspect', 'busybox'], GLOBALS, commands)).toEqual({ command: commands[2], index: 3, words: 2 });
    expect(findCommand(['image', 'ls'], GLOBALS, commands)).toMatchObject({ command: commands[1], words: 2 });
    expect(findCommand(['--log-level=debug', 'images', '-a'], GLOBALS, commands)).toMatchObject({ command: commands[1], index: 1, words: 1 });
  });

  test('a command word that is only an option value or a later word does not count', () => {
    expect(findCommand(['--root', 'run'], GLOBALS, commands)).toBeUndefined();
    expect(findCommand(['image'], GLOBALS, commands)).toBeUndefined();
    expect(findCommand(['bogus', 'run'], GLOBALS, commands)).toBeUndefined();
    expect(findCommand([], GLOBALS, commands)).toBeUndefined();
  });

  test('a global boolean never takes the next word, on the fast path and in yargs alike', () => {
    expect(findCommand(['--debug', 'true', 'run'], GLOBALS, commands)).toBeUndefined();
    expect(findCommand(['--debug', 'rm', '--bogus', 'x'], GLOBALS, commands)).toEqual({ command: commands[3], index: 1, words: 1 });
    expect(findCommand(['--bogus', 'x', '--debug', 'false', 'run'], GLOBALS, commands)).toBeUndefined();
  });

  test('an unknown global option is read as yargs reads it: with the next word as its value', () => {
    expect(findCommand(['--bogus', 'x', 'run'], GLOBALS, commands)).toEqual({ command: commands[0], index: 2, words: 1 });
    expect(findCommand(['--bogus', 'run'], GLOBALS, commands)).toBeUndefined();
  });
});

describe('the fast parse gives what yargs gives, and leaves the rest to yargs', () => {
  /** yargs's result, without the $0 it adds (the script name, which no command reads). */
  const byYargs = async (command: CliCommand<never>, args: string[]): Promise<Record<string, unknown>> => {
    const { $0: _, ...argv } = (await commandParser(command, args).parseAsync()) as unknown as Record<string, unknown>;
    return argv;
  };
  const fast = (command: CliCommand<never>, args: string[]): Record<string, unknown> | undefined => {
    const { options, commandArgs } = commandInput(command, args);
    return parseValidArgs(commandArgs, options);
  };

  /** Each option of the command (and the global ones) given once, with a value it accepts, then one positional. */
  function everyOption(command: CliCommand<never>): string[][] {
    const { options } = commandInput(command, []);
    return Object.entries(options).map(([name, option]) => {
      const flag = option.alias && String(option.alias).length === 1 ? `-${String(option.alias)}` : `--${name}`;
      const value = option.choices ? String(option.choices[option.choices.length - 1]) : option.type === 'number' ? '3' : 'v1';
      if (option.type === 'boolean') return [flag, 'x'];
      if (option.array) return [flag, value, `--${name}=${value}`, 'x'];
      return [`--${name}=${value}`, 'x'];
    });
  }

  test.each(allCommands().map((c) => [c.name, c]))('%s: every option, as yargs parses it', async (_name, command) => {
    for (const args of [[], ['a', '1', 'b'], ...everyOption(command)]) {
      const parsed = fast(command, args);
      expect({ args, parsed }).toEqual({ args, parsed: await byYargs(command, args) });
    }
  });

  test.each([
    [['--rm', '--rootfs', '/r', 'sh', '-c', 'echo hi -e']],
    [['-e', 'A=1', '--name', 'web', 'busybox', '--rm', '-e', 'B=2', '--', 'x']],
    [['-dit', '-p', '8080:80', '-p', '53:53/udp', '-v', '/a:/b:ro', '--cap-add', 'NET_ADMIN', '--cap-drop', 'ALL', 'nginx']],
    [['--memory', '64m', '--cpus', '1.5', '--pids-limit', '10', '--user', '1000:1000', '-w', '/tmp', 'busybox', '123', '4.5', '-1']],
    [['--log-level', 'debug', '--log-format', 'json', '--network', 'none', '--security-opt', 'seccomp=unconfined', '007', 'sleep', '1e3']],
    [['busybox', '--', '--', '12']],
    // Positionals that yargs reads as numbers, and those it leaves strings.
    [['busybox', '0x1f', '.5', '1.', '-0', '0', '00', '0.5', '-.5', '1e-3', '99999999999999999999', '1e400', '0X1F', '0x', '1_000']],
    // A `-` alone is a positional.
    [['--rootfs', '/r', 'cat', '-']],
    // Booleans: never a separate value (see explicitBooleanValues), an inline one read here.
    [['--rm', 'false', 'busybox']],
    [['--rootfs', '/r', '-dt', 'true']],
    [['--rm=false', '--init=true', 'busybox']],
    [['-dt=false', '-i=true', 'busybox']],
  ])('run %j', async (args) => {
    const parsed = fast(runCommand as never, args);
    expect(parsed).toBeDefined();
    expect(parsed).toEqual(await byYargs(runCommand as never, args));
  });

  test.each([
    ['an unknown option', ['--bogus', 'busybox']],
    ['an unknown short option', ['-Z', 'busybox']],
    ['a value outside the choices', ['--log-format', 'xml', 'busybox']],
    ['a missing value', ['--name']],
    ['a value that looks like an option', ['--name', '-d', 'busybox']],
    ['--help', ['--help']],
    ['--help among others', ['--rm', '--help', 'busybox']],
    ['a boolean given a value other than true or false', ['--rm=no', 'busybox']],
    ['a short option with an inline value', ['-e=A=1', 'busybox']],
    ['an empty value', ['--entrypoint', '', 'busybox']],
    ['an empty inline value', ['--entrypoint=', 'busybox']],
    ['a single-valued option given twice', ['--name', 'a', '--name', 'b', 'busybox']],
    ['a short flag cluster ending in an option with a value', ['-dp', '80:80', 'busybox']],
    ['a negative number', ['--memory-swap', '-1', 'busybox']],
    ['a short option with an attached value', ['-eA=1', 'busybox']],
  ])('%s goes to yargs', async (_what, args) => {
    expect(fast(runCommand as never, args)).toBeUndefined();
  });

  test('a number option: decimal digits are read here, anything else by yargs', async () => {
    const stop = allCommands().find((c) => c.name === 'stop') as CliCommand<never>;
    for (const args of [['-t', '5', 'c'], ['--time=2.5', 'c']]) expect(fast(stop, args)).toEqual(await byYargs(stop, args));
    for (const args of [['-t', '0x10', 'c'], ['-t', '1e3', 'c'], ['-t', 'soon', 'c'], ['-t', '-1', 'c']]) expect(fast(stop, args)).toBeUndefined();
  });

  test('options after positionals, for commands without a container command', async () => {
    const rm = allCommands().find((c) => c.name === 'rm') as CliCommand<never>;
    for (const args of [['a', '-f', 'b'], ['a', '--force', '--', '-f']]) {
      const parsed = fast(rm, args);
      expect(parsed).toBeDefined();
      expect(parsed).toEqual(await byYargs(rm, args));
    }
  });

  test('an option table with a feature the fast parse does not reproduce goes to yargs', () => {
    expect(parseValidArgs(['--n', '2'], { n: { type: 'number', coerce: (v: number) => v * 2 } })).toBeUndefined();
  });
});
