import yargs from 'yargs/yargs';
import type { Argv, Options } from 'yargs';
import { commandIndex, separateContainerCommand } from './argv';
import type { CliCommand, GlobalArgs } from './command';
import { runCommand } from './commands/run';
import { UsageError, reportError } from './fail';
import { LOG_LEVELS, createLogger } from './logging';

const GLOBAL_OPTIONS = {
  root: { type: 'string', default: process.env.TSRUN_ROOT ?? '/var/lib/tsrun', describe: 'image and layer store ($TSRUN_ROOT)' },
  state: { type: 'string', default: process.env.TSRUN_STATE ?? '/run/tsrun', describe: 'runtime state directory ($TSRUN_STATE)' },
  'log-level': { type: 'string', choices: LOG_LEVELS, default: 'warn' },
  'log-format': { type: 'string', choices: ['json', 'text'], default: 'text' },
  log: { type: 'string', describe: 'write logs to this file instead of stderr' },
  debug: { type: 'boolean', default: false, describe: 'print stacks with errors' },
} satisfies Record<string, Options>;

const COMMANDS: CliCommand<never>[] = [runCommand];

function withCommonSettings<T>(cli: Argv<T>): Argv<T> {
  return cli
    .scriptName('tsrun')
    .strictOptions()
    .help()
    .fail((msg, err) => {
      throw err ?? new UsageError(msg);
    });
}

/**
 * The parser for one subcommand: its own options plus the global ones, with
 * the subcommand's name removed. Registering subcommands with yargs would
 * make it render and cache the whole help text on every run (~20 ms).
 */
export function commandParser(command: CliCommand<never>, args: string[]): Argv<GlobalArgs> {
  const options = { ...GLOBAL_OPTIONS, ...command.options };
  const passThrough = command.containerCommandAfter === undefined ? {} : { [command.name]: { options: command.options, positionalsBefore: command.containerCommandAfter } };
  const separated = separateContainerCommand(args, GLOBAL_OPTIONS, passThrough);
  separated.splice(commandIndex(separated, GLOBAL_OPTIONS), 1);
  return withCommonSettings(yargs(separated).usage(command.usage).parserConfiguration({ 'populate--': true }).options(options).version(false)) as unknown as Argv<GlobalArgs>;
}

/** The parser for `tsrun` without a known subcommand: help, version, or a usage error. */
function topLevelParser(args: string[]): Argv {
  const cli = COMMANDS.reduce((y, c) => y.command(c.name, c.describe), yargs(args).usage('$0 <command> [options]').options(GLOBAL_OPTIONS));
  return withCommonSettings(cli.demandCommand(1, 'tsrun needs a command').strictCommands().recommendCommands().version());
}

/** The CLI entry: parses, runs the command, sets the exit code. */
export async function main(argv: string[]): Promise<void> {
  const args = argv.slice(2);
  try {
    const command = COMMANDS.find((c) => c.name === args[commandIndex(args, GLOBAL_OPTIONS)]);
    if (!command) {
      await topLevelParser(args).parseAsync();
      return;
    }
    // yargs exits the process itself after --help.
    const parsed = (await commandParser(command, args).parseAsync()) as GlobalArgs;
    parsed.logger = createLogger(parsed['log-level'], parsed['log-format'], parsed.log);
    await command.execute(parsed as never);
  } catch (err) {
    process.exitCode = reportError(err, args.includes('--debug'));
    if (err instanceof UsageError) process.stderr.write('See \'tsrun --help\'.\n');
  }
}
