import yargs from 'yargs/yargs';
import type { Argv, Options } from 'yargs';
import { separateContainerCommand } from './argv';
import type { Logger } from '../logger';
import { RUN_OPTIONS, runCommand } from './commands/run';
import { UsageError, reportError } from './fail';
import { LOG_LEVELS, LogFormat, LogLevel, createLogger } from './logging';

export interface GlobalArgs {
  root: string;
  state: string;
  'log-level': LogLevel;
  'log-format': LogFormat;
  log?: string;
  debug: boolean;
  logger: Logger;
}

const GLOBAL_OPTIONS = {
  root: { type: 'string', default: process.env.TSRUN_ROOT ?? '/var/lib/tsrun', describe: 'image and layer store ($TSRUN_ROOT)', global: true },
  state: { type: 'string', default: process.env.TSRUN_STATE ?? '/run/tsrun', describe: 'runtime state directory ($TSRUN_STATE)', global: true },
  'log-level': { type: 'string', choices: LOG_LEVELS, default: 'warn', global: true },
  'log-format': { type: 'string', choices: ['json', 'text'], default: 'text', global: true },
  log: { type: 'string', describe: 'write logs to this file instead of stderr', global: true },
  debug: { type: 'boolean', default: false, describe: 'print stacks with errors', global: true },
} satisfies Record<string, Options>;

/** Commands whose trailing arguments are a command for the container. */
const PASS_THROUGH = { run: { options: RUN_OPTIONS, positionalsBefore: 0 } };

export function buildCli(args: string[]): Argv<GlobalArgs> {
  return yargs(separateContainerCommand(args, GLOBAL_OPTIONS, PASS_THROUGH))
    .scriptName('tsrun')
    .usage('$0 <command> [options]')
    .parserConfiguration({ 'populate--': true })
    .options(GLOBAL_OPTIONS)
    .middleware((argv) => {
      argv.logger = createLogger(argv['log-level'] as LogLevel, argv['log-format'] as LogFormat, argv.log as string | undefined);
    })
    .command(runCommand as never)
    .demandCommand(1, 'tsrun needs a command; see tsrun --help')
    .strictCommands()
    .strictOptions()
    .recommendCommands()
    .help()
    .alias('help', 'help')
    .version()
    .wrap(Math.min(110, process.stdout.columns ?? 80))
    .fail((msg, err) => {
      throw err ?? new UsageError(msg);
    }) as unknown as Argv<GlobalArgs>;
}

/** The CLI entry: parses, runs the command, sets the exit code. */
export async function main(argv: string[]): Promise<void> {
  try {
    await buildCli(argv.slice(2)).parseAsync();
  } catch (err) {
    const debug = argv.includes('--debug');
    process.exitCode = reportError(err, debug);
    if (err instanceof UsageError) process.stderr.write('See \'tsrun --help\'.\n');
  }
}
