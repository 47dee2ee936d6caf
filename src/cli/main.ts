import type { Argv, Options } from 'yargs';
import { PARSER_CONFIGURATION, explicitBooleanValues, findCommand, parseValidArgs, separateContainerCommand } from './argv';
import type { CliCommand, GlobalArgs } from './command';
import { UsageError, reportError } from './fail';
import { LOG_LEVELS, createLogger } from './logging';
import { isSteadyStateRun } from '../util/one-time-work';
import { type NativeBinding, adoptNative } from '../native';
import { setSpareNetworkNamespace } from '../linux/spare-netns';

const GLOBAL_OPTIONS = {
  root: { type: 'string', default: process.env.TSRUN_ROOT ?? '/var/lib/tsrun', describe: 'image and layer store ($TSRUN_ROOT)' },
  state: { type: 'string', default: process.env.TSRUN_STATE ?? '/run/tsrun', describe: 'runtime state directory ($TSRUN_STATE)' },
  'log-level': { type: 'string', choices: LOG_LEVELS, default: 'warn' },
  'log-format': { type: 'string', choices: ['json', 'text'], default: 'text' },
  log: { type: 'string', describe: 'write logs to this file instead of stderr' },
  debug: { type: 'boolean', default: false, describe: 'print stacks with errors' },
  config: { type: 'string', requiresArg: true, describe: 'location of client config files: registry credentials (default $DOCKER_CONFIG or ~/.docker)' },
} satisfies Record<string, Options>;

/** A command module's exports: its commands, among other things. */
type CommandModule = Record<string, unknown>;

/* eslint-disable @typescript-eslint/no-require-imports */
/**
 * Each command module with the names of the commands it defines, each
 * command's own name first and then its aliases (Docker's `container ls`
 * for `ps`). A command line loads only its command's module: evaluating
 * all ten, with their option tables and imports, was ~2 ms of every `tsrun
 * run`. The order is the order of the help's command list.
 * test/unit/cli-commands.test.ts checks the index against the modules.
 */
const COMMAND_INDEX: { load(): CommandModule; names: string[][] }[] = [
  { load: () => require('./commands/run'), names: [['run'], ['create', 'container create']] },
  {
    load: () => require('./commands/lifecycle'),
    names: [
      ['start', 'container start'],
      ['stop', 'container stop'],
      ['restart', 'container restart'],
      ['kill', 'container kill'],
      ['wait', 'container wait'],
      ['logs', 'container logs'],
      ['exec', 'container exec'],
      ['attach', 'container attach'],
      ['top', 'container top'],
      ['container-cleanup'],
    ],
  },
  {
    load: () => require('./commands/containers'),
    names: [['ps', 'container ls', 'container list'], ['rm', 'container rm'], ['commit', 'container commit'], ['diff', 'container diff'], ['inspect', 'container inspect']],
  },
  { load: () => require('./commands/build'), names: [['build', 'image build']] },
  { load: () => require('./commands/resources'), names: [['stats', 'container stats'], ['update', 'container update']] },
  {
    load: () => require('./commands/images'),
    names: [
      ['images', 'image ls', 'image list'],
      ['image import', 'import'],
      ['image inspect'],
      ['load', 'image load'],
      ['save', 'image save'],
      ['tag', 'image tag'],
      ['rmi', 'image rm', 'image remove'],
      ['image prune'],
    ],
  },
  { load: () => require('./commands/system'), names: [['system prune'], ['system df'], ['system check']] },
  {
    load: () => require('./commands/networks'),
    names: [['network create'], ['network ls', 'network list'], ['network inspect'], ['network rm', 'network remove'], ['network check']],
  },
  {
    load: () => require('./commands/volumes'),
    names: [['volume create'], ['volume ls', 'volume list'], ['volume inspect'], ['volume rm', 'volume remove'], ['volume prune']],
  },
  { load: () => require('./commands/registry'), names: [['pull', 'image pull'], ['push', 'image push'], ['login'], ['logout']] },
];
/* eslint-enable @typescript-eslint/no-require-imports */

/** A value a command module exports that is a command. */
export function isCliCommand(value: unknown): value is CliCommand<never> {
  return typeof value === 'object' && value !== null && typeof (value as CliCommand<never>).name === 'string' && typeof (value as CliCommand<never>).execute === 'function';
}

/** A command by the names that select it; `load` evaluates its module. */
export interface IndexedCommand {
  name: string;
  aliases: string[];
  load(): CliCommand<never>;
}

export const COMMANDS: IndexedCommand[] = COMMAND_INDEX.flatMap(({ load, names }) =>
  names.map(([name, ...aliases]) => ({
    name,
    aliases,
    load: () => {
      const command = Object.values(load()).find((value) => isCliCommand(value) && value.name === name);
      if (!command) throw new Error(`cli/main.ts: the module COMMAND_INDEX names for "${name}" does not define it`);
      return command as CliCommand<never>;
    },
  })),
);

/** Every command, every module loaded: for the help's list. */
export function allCommands(): CliCommand<never>[] {
  return COMMANDS.map((command) => command.load());
}

/**
 * yargs, loaded when a command line needs it (help, an error, no command):
 * a plainly valid one is parsed without it (parseValidArgs), and loading
 * and evaluating it (with cliui, y18n and the rest) is ~1 ms of a start.
 */
function yargs(args: string[]): Argv {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return (require('yargs/yargs') as typeof import('yargs/yargs'))(args);
}

function withCommonSettings<T>(cli: Argv<T>): Argv<T> {
  return cli
    .scriptName('tsrun')
    .strictOptions()
    .help()
    .fail((msg, err) => {
      throw err ?? new UsageError(msg);
    });
}

/** A subcommand's options with the global ones, and its arguments with booleans' values inline and `--` where a container command begins. */
export function commandInput(command: CliCommand<never>, args: string[]): { options: Record<string, Options>; commandArgs: string[] } {
  const options = { ...GLOBAL_OPTIONS, ...command.options };
  const hasContainerCommand = command.containerCommandAfter !== undefined;
  const flagged = explicitBooleanValues(args, options, hasContainerCommand);
  const commandArgs = hasContainerCommand ? separateContainerCommand(flagged, options, command.containerCommandAfter as number) : flagged;
  return { options, commandArgs };
}

/**
 * yargs's parser for one subcommand: its own options plus the global ones,
 * with the subcommand's name removed (settings: PARSER_CONFIGURATION).
 * Registering subcommands with yargs would make it render and cache the
 * whole help text on every run (~20 ms).
 */
export function commandParser(command: CliCommand<never>, args: string[]): Argv<GlobalArgs> {
  return yargsCommandParser(command, commandInput(command, args));
}

function yargsCommandParser(command: CliCommand<never>, { options, commandArgs }: ReturnType<typeof commandInput>): Argv<GlobalArgs> {
  return withCommonSettings(yargs(commandArgs).usage(command.usage).parserConfiguration({ ...PARSER_CONFIGURATION, 'populate--': true }).options(options).version(false)) as unknown as Argv<GlobalArgs>;
}

/** A subcommand's arguments: parsed by yargs-parser alone when plainly valid (argv.ts), else by yargs, which prints the help or the error. */
export async function parseCommand(command: CliCommand<never>, args: string[]): Promise<GlobalArgs> {
  const input = commandInput(command, args);
  const valid = parseValidArgs(input.commandArgs, input.options);
  if (valid) return valid as unknown as GlobalArgs;
  // yargs exits the process itself after --help.
  return (await yargsCommandParser(command, input).parseAsync()) as GlobalArgs;
}

/** Command groups (`image`) and the subcommands they hold, for help and errors. */
function commandGroups(): Map<string, string[]> {
  const groups = new Map<string, string[]>();
  for (const command of COMMANDS) {
    const [group, sub] = command.name.split(' ');
    if (sub) groups.set(group, [...(groups.get(group) ?? []), sub]);
  }
  return groups;
}

/** The parser for `tsrun` without a known subcommand: help, version, or a usage error. */
function topLevelParser(args: string[]): Argv {
  let cli = yargs(args).usage('$0 <command> [options]').options(GLOBAL_OPTIONS);
  for (const command of allCommands().filter((c) => !c.name.includes(' '))) cli = command.describe === false ? cli.command(command.name, false) : cli.command(command.name, command.describe);
  for (const [group, subs] of commandGroups()) cli = cli.command(group, `${subs.join(', ')} (tsrun ${group} COMMAND --help)`);
  return withCommonSettings(cli.demandCommand(1, 'tsrun needs a command').strictCommands().recommendCommands().version());
}

/**
 * The CLI entry: parses, runs the command, sets the exit code. Resolves to
 * whether the run is one to write the code cache from (scripts/cli-loader.js).
 * `native` is the addon when the launcher has loaded it already.
 */
export async function main(argv: string[], native?: NativeBinding): Promise<boolean> {
  if (native) adoptNative(native);
  // One command, one container at most: a spare would be made for nothing.
  setSpareNetworkNamespace(false);
  const args = argv.slice(2);
  try {
    const found = findCommand(args, GLOBAL_OPTIONS, COMMANDS);
    if (!found) {
      const parsed = await topLevelParser(args).parseAsync();
      const group = commandGroups().get(String(parsed._[0]));
      if (group) throw new UsageError(`"tsrun ${parsed._[0]}" needs one of: ${group.join(', ')}`);
      return isSteadyStateRun();
    }
    const commandArgs = [...args.slice(0, found.index), ...args.slice(found.index + found.words)];
    const command = found.command.load();
    const parsed = await parseCommand(command, commandArgs);
    await command.execute(Object.assign(parsed, { logger: createLogger(parsed['log-level'], parsed['log-format'], parsed.log) }) as never);
  } catch (err) {
    process.exitCode = reportError(err, args.includes('--debug'));
    if (err instanceof UsageError) process.stderr.write('See \'tsrun --help\'.\n');
  }
  return isSteadyStateRun();
}
