import type { Options } from 'yargs';
// yargs-parser itself: yargs/helpers exports the same function, but loads the whole of yargs with it.
import Parser = require('yargs-parser');

type OptionTable = Record<string, Options>;

/**
 * yargs-parser's settings for every tsrun parse. Docker's `--no-trunc` is
 * an option of its own, not a negation. Options are read by their dashed
 * names and none has a dot in it, so yargs-parser need not add a camelCase
 * alias for each (a regex per option name, on every start) nor split keys
 * at dots.
 */
export const PARSER_CONFIGURATION = { 'greedy-arrays': false, 'boolean-negation': false, 'camel-case-expansion': false, 'dot-notation': false } as const;

/** How many leading tokens are options (and their values) before the first positional. */
function optionPrefixLength(args: string[], table: OptionTable): number {
  const options = yargsParserOptions(table);
  return args.length - Parser(args, { ...options, configuration: { ...options.configuration, 'populate--': false, 'halt-at-non-option': true } })._.length;
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
function yargsParserOptions(table: OptionTable): Parser.Options {
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

/** The option features whose meaning the fast parse below reproduces. */
const FAST_PARSE_FEATURES = new Set(['type', 'array', 'alias', 'default', 'requiresArg', 'choices', 'describe', 'hidden']);

/**
 * A command's arguments parsed as yargs would parse them, with yargs-parser
 * alone, when they are plainly valid; undefined when yargs must see them:
 * --help, an unknown option, a value outside its choices, a missing value,
 * or an option table with a feature this does not reproduce. yargs then
 * prints its help or its error. yargs's own parse of `run`'s ~90 options
 * (building its instance, registering each option, validating) is ~20 M
 * instructions that a CLI start runs cold; test/unit/argv.test.ts checks
 * that both give the same result.
 */
export function parseValidArgs(args: string[], table: OptionTable): Record<string, unknown> | undefined {
  for (const option of Object.values(table)) for (const feature of Object.keys(option)) if (!FAST_PARSE_FEATURES.has(feature)) return undefined;
  const parsed = Parser.detailed(args, yargsParserOptions(table));
  if (parsed.error) return undefined;
  const argv = parsed.argv as Record<string, unknown> & { _: (string | number)[]; '--'?: (string | number)[] };
  if (argv.help) return undefined;
  const known = new Set(['_', '--', 'help']);
  for (const [name, option] of Object.entries(table)) {
    known.add(name);
    for (const alias of ([] as string[]).concat(option.alias ?? [])) known.add(alias);
    if (option.choices && argv[name] !== undefined && ([] as unknown[]).concat(argv[name]).some((value) => !(option.choices as readonly unknown[]).includes(value))) return undefined;
  }
  for (const key of Object.keys(argv)) if (!known.has(key)) return undefined;
  // yargs's parse-positional-numbers: numbers in the arguments after `--`, or else in the positionals.
  const positionals = argv['--'] ?? argv._;
  positionals.forEach((value, i) => {
    if (Parser.looksLikeNumber(value) && Number.isSafeInteger(Math.floor(parseFloat(`${value}`)))) positionals[i] = Number(value);
  });
  if (argv['--'] === undefined) delete argv['--'];
  return argv;
}
