import type { Options } from 'yargs';
import type { Logger } from '../logger';
import type { LogFormat, LogLevel } from './logging';

export interface GlobalArgs {
  root: string;
  state: string;
  'log-level': LogLevel;
  'log-format': LogFormat;
  log?: string;
  debug: boolean;
  /** Docker's client config directory (registry credentials), from --config. */
  config?: string;
  logger: Logger;
  /** Everything after `--`: for `run`, the container's command (see cli/argv.ts). */
  '--'?: (string | number)[];
  _: (string | number)[];
}

/**
 * One subcommand. yargs only parses and validates against `options`; the
 * dispatcher then calls `execute`, which sets process.exitCode.
 */
export interface CliCommand<A extends GlobalArgs = GlobalArgs> {
  /** One or more words: `run`, `image inspect`; Docker's other names for it are in cli/main.ts's index. */
  name: string;
  /** false hides the command from help (internal commands). */
  describe: string | false;
  usage: string;
  options: Record<string, Options>;
  /** How many positionals precede a container command, for commands that take one. */
  containerCommandAfter?: number;
  execute(argv: A): Promise<void>;
}
