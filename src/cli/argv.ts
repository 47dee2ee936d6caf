import type { Options } from 'yargs';
import type YargsParser = require('yargs-parser');

type OptionTable = Record<string, Options>;

/**
 * yargs's settings for every tsrun parse. Docker's `--no-trunc` is an
 * option of its own, not a negation. Options are read by their dashed
 * names and none has a dot in it, so yargs need not add a camelCase alias
 * for each (a regex per option name, on every start) nor split keys at
 * dots.
 */
export const PARSER_CONFIGURATION = { 'greedy-arrays': false, 'boolean-negation': false, 'camel-case-expansion': false, 'dot-notation': false } as const;

/** The option features whose meaning scanPlainArgs reproduces. */
const PLAIN_FEATURES = new Set(['type', 'array', 'alias', 'default', 'requiresArg', 'choices', 'describe', 'hidden']);

/** What scanPlainArgs read: option values by option name, positionals, and what follows a `--`. */
interface PlainScan {
  values: Map<string, unknown>;
  positionals: string[];
  afterDashes?: string[];
  /** How many leading tokens are options (and their values, and a `--`) before the first positional. */
  prefixLength: number;
}

/** Every name a command line may give an option by: its own and its aliases. */
function namesOf(name: string, option: Options): string[] {
  return [name, ...([] as string[]).concat(option.alias ?? [])];
}

/**
 * What the scans below need of a table, worked out once per table: one
 * command line scans its table three or four times (the command word,
 * booleans' values, where the container's command starts, the values),
 * and `run`'s has ~90 options.
 */
const tableFacts = new WeakMap<OptionTable, TableFacts>();

interface TableFacts {
  /** The options by every name a command line may use: the option's own and its aliases. */
  byName: Map<string, [string, Options]>;
  /** Whether every option uses only features scanPlainArgs reproduces. */
  plain: boolean;
}

function factsOf(table: OptionTable): TableFacts {
  let facts = tableFacts.get(table);
  if (!facts) {
    const byName = new Map<string, [string, Options]>();
    for (const [name, option] of Object.entries(table)) for (const key of namesOf(name, option)) byName.set(key, [name, option]);
    const plain = Object.values(table).every((option) => Object.keys(option).every((feature) => PLAIN_FEATURES.has(feature)));
    facts = { byName, plain };
    tableFacts.set(table, facts);
  }
  return facts;
}

/** An option token's names (`--name` one, `-dit` one per letter) and its inline value (after `=`), if any. */
function flagToken(arg: string): { long: boolean; names: string[]; inline: string | undefined } {
  const long = arg.startsWith('--');
  const equals = arg.indexOf('=');
  const flags = arg.slice(long ? 2 : 1, equals < 0 ? undefined : equals);
  return { long, names: long ? [flags] : [...flags], inline: equals < 0 ? undefined : arg.slice(equals + 1) };
}

/**
 * `args` read as yargs reads them after explicitBooleanValues, when every
 * token is plain: a known `--name`, `--name=value` or `-x`, a cluster of
 * boolean short flags (`-dit`, `-dt=false`), a value that neither is empty
 * nor starts with `-`, a number option's value in decimal digits, no
 * repeat of a single-valued option, positionals, and `--`. Anything else
 * (an unknown option, --help, a missing value) gives undefined, and yargs,
 * which knows every rule, reads the line. Options end at the first
 * positional when `haltAtPositional`. yargs-parser does this in ~5 ms on a
 * cold start for the ~90 options of `run`; this is a loop over the tokens.
 */
function scanPlainArgs(args: string[], table: OptionTable, haltAtPositional: boolean): PlainScan | undefined {
  const { byName, plain } = factsOf(table);
  if (!plain) return undefined;
  const values = new Map<string, unknown>();
  const positionals: string[] = [];
  const assign = (name: string, option: Options, value: unknown): boolean => {
    const previous = values.get(name) as unknown[] | undefined;
    if (option.array) values.set(name, previous ? [...previous, value] : [value]);
    // yargs makes a repeated single-valued option an array.
    else if (values.has(name)) return false;
    else values.set(name, value);
    return true;
  };
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === '--') return { values, positionals, afterDashes: args.slice(i + 1), prefixLength: i + 1 };
    if (!arg.startsWith('-') || arg === '-') {
      if (haltAtPositional) return { values, positionals, prefixLength: i };
      positionals.push(arg);
      continue;
    }
    const { long, names, inline } = flagToken(arg);
    const options = names.map((name) => byName.get(name));
    if (options.some((found) => found === undefined)) return undefined;
    const found = options as [string, Options][];
    if (found.every(([, option]) => option.type === 'boolean')) {
      // An inline value is the last flag's.
      const value = inline ?? 'true';
      if (value !== 'true' && value !== 'false') return undefined;
      if (!found.every(([name, option], k) => assign(name, option, k < found.length - 1 || value === 'true'))) return undefined;
      continue;
    }
    if (found.length > 1 || (!long && inline !== undefined)) return undefined;
    const [name, option] = found[0];
    const value = inline ?? args[++i];
    if (value === undefined || value === '' || value.startsWith('-')) return undefined;
    if (option.type === 'number' && !/^\d+(\.\d+)?$/.test(value)) return undefined;
    if (!assign(name, option, option.type === 'number' ? Number(value) : value)) return undefined;
  }
  return { values, positionals, prefixLength: args.length };
}

/**
 * `args` with each boolean flag that is followed by the word `true` or
 * `false` given its value inline (`--rm` becomes `--rm=true`). Docker's
 * flags never take a separate value, so `tsrun run --rootfs R --rm true`
 * runs `true`; yargs would take the word as the flag's value. Flags are
 * looked at up to `--`, and up to the first positional when
 * `haltAtPositional` (what follows is the container's command).
 */
export function explicitBooleanValues(args: string[], table: OptionTable, haltAtPositional: boolean): string[] {
  const { byName } = factsOf(table);
  const out = [...args];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === '--') break;
    if (!arg.startsWith('-') || arg === '-') {
      if (haltAtPositional) break;
      continue;
    }
    const { names, inline } = flagToken(arg);
    if (inline !== undefined) continue;
    const options = names.map((name) => byName.get(name)?.[1]);
    // An option with a value takes the next word, and so does an unknown one
    // in yargs (which reports it later) unless that word looks like an option.
    if (options.some((option) => option === undefined)) {
      if (!args[i + 1]?.startsWith('-')) i++;
    } else if (options[options.length - 1]?.type !== 'boolean') i++;
    else if (args[i + 1] === 'true' || args[i + 1] === 'false') out[i] = `${arg}=true`;
  }
  return out;
}

/** How many leading tokens are options (and their values) before the first positional. */
function optionPrefixLength(args: string[], table: OptionTable): number {
  const plain = scanPlainArgs(args, table, true);
  if (plain) return plain.prefixLength;
  // yargs-parser itself: yargs/helpers exports the same function, but loads the whole of yargs with it.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const parse = require('yargs-parser') as typeof YargsParser;
  const options = yargsParserOptions(table);
  return args.length - parse(explicitBooleanValues(args, table, true), { ...options, configuration: { ...options.configuration, 'populate--': false, 'halt-at-non-option': true } })._.length;
}

/**
 * The subcommand `args` name: after the global options, the longest run of
 * words that is a command's name or alias (`image inspect`, `images`).
 */
export function findCommand<C extends { name: string; aliases?: string[] }>(
  args: string[],
  globals: OptionTable,
  commands: C[],
): { command: C; index: number; words: number } | undefined {
  const index = optionPrefixLength(args, globals);
  let found: { command: C; index: number; words: number } | undefined;
  for (const command of commands) {
    for (const name of [command.name, ...(command.aliases ?? [])]) {
      const words = name.split(' ');
      if (words.every((word, i) => args[index + i] === word) && words.length > (found?.words ?? 0)) found = { command, index, words: words.length };
    }
  }
  return found;
}

/**
 * Inserts `--` where a container command begins, so that its own flags
 * (`sh -c 'ls -e'`) are never read as tsrun's: docker stops parsing at the
 * first positional of `run`, and yargs cannot do that inside a subcommand.
 * `args` are the subcommand's arguments; tsrun's options end at the first
 * positional, and the `--` goes after `positionalsBefore` positionals (the
 * image of `run IMAGE CMD`).
 */
export function separateContainerCommand(args: string[], options: OptionTable, positionalsBefore: number): string[] {
  // Options only come before the first positional; whatever follows the
  // positionals (the image) is the command, flags included.
  const first = optionPrefixLength(args, options);
  if (args[first - 1] === '--') return args;
  const index = first + positionalsBefore;
  if (index >= args.length || args[index] === '--') return args;
  return [...args.slice(0, index), '--', ...args.slice(index)];
}

/** What yargs-parser gets from yargs for these options (yargs-factory's option()), for the features tsrun's tables use. */
function yargsParserOptions(table: OptionTable): YargsParser.Options {
  const spec = { string: [] as string[], boolean: ['help'], number: [] as string[], array: [] as string[], alias: {} as Record<string, string[]>, default: {} as Record<string, unknown>, narg: {} as Record<string, number> };
  for (const [name, option] of Object.entries(table)) {
    if (option.type === 'boolean') spec.boolean.push(name);
    else if (option.type === 'number') spec.number.push(name);
    else if (option.type === 'string') spec.string.push(name);
    if (option.array) spec.array.push(name);
    if (option.alias) spec.alias[name] = ([] as string[]).concat(option.alias);
    if ('default' in option) spec.default[name] = option.default;
    // yargs's requiresArg: one value, which may not look like an option.
    if (option.requiresArg) spec.narg[name] = NaN;
  }
  return { ...spec, configuration: { ...PARSER_CONFIGURATION, 'populate--': true, 'parse-positional-numbers': false } };
}

/**
 * yargs's parse-positional-numbers: a positional that reads as a decimal
 * or hex number whose integer part is safe becomes that number; a leading
 * zero (`007`) keeps it a string.
 */
function positionalValue(value: string): string | number {
  const decimal = /^-?(\d+\.?\d*|\.\d+)(e[-+]?\d+)?$/.test(value) && !/^0[^.]/.test(value);
  const hex = /^0x[0-9a-f]+$/i.test(value);
  return (decimal || hex) && Number.isSafeInteger(Math.floor(parseFloat(value))) ? Number(value) : value;
}

/**
 * A command's arguments parsed as yargs would parse them, when they are
 * plainly valid (scanPlainArgs), and their values are within the options'
 * choices; undefined when yargs must see them, to print its help or its
 * error. yargs's own parse of `run`'s ~90 options (loading it, building
 * its instance, registering each option, validating) is ~20 M
 * instructions that a CLI start runs cold; test/unit/argv.test.ts checks
 * that both give the same result.
 */
export function parseValidArgs(args: string[], table: OptionTable): Record<string, unknown> | undefined {
  const plain = scanPlainArgs(args, table, false);
  if (!plain) return undefined;
  const argv: Record<string, unknown> = { _: plain.positionals };
  for (const [name, option] of Object.entries(table)) {
    const given = plain.values.has(name);
    if (!given && !('default' in option)) continue;
    const value = given ? plain.values.get(name) : option.default;
    if (given && option.choices && ([] as unknown[]).concat(value).some((item) => !(option.choices as readonly unknown[]).includes(item))) return undefined;
    for (const key of namesOf(name, option)) argv[key] = value;
  }
  // Numbers in the arguments after `--`, or else in the positionals.
  if (plain.afterDashes) argv['--'] = plain.afterDashes.map(positionalValue);
  else argv._ = plain.positionals.map(positionalValue);
  return argv;
}
