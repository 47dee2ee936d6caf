import type { Options } from 'yargs';
import { Parser } from 'yargs/helpers';

type OptionTable = Record<string, Options>;

/**
 * yargs-parser's settings for every tsrun parse. Docker's `--no-trunc` is
 * an option of its own, not a negation. Options are read by their dashed
 * names and none has a dot in it, so yargs-parser need not add a camelCase
 * alias for each (a regex per option name, on every start) nor split keys
 * at dots.
 */
export const PARSER_CONFIGURATION = { 'greedy-arrays': false, 'boolean-negation': false, 'camel-case-expansion': false, 'dot-notation': false } as const;

function parserSpec(table: OptionTable): Parser.Options {
  const spec = { string: [] as string[], boolean: [] as string[], number: [] as string[], array: [] as string[], alias: {} as Record<string, string[]> };
  for (const [name, option] of Object.entries(table)) {
    if (option.type === 'boolean') spec.boolean.push(name);
    else if (option.type === 'number') spec.number.push(name);
    else spec.string.push(name);
    if (option.array) spec.array.push(name);
    if (option.alias) spec.alias[name] = ([] as string[]).concat(option.alias);
  }
  return { ...spec, configuration: { ...PARSER_CONFIGURATION, 'halt-at-non-option': true } };
}

/** How many leading tokens are options (and their values) before the first positional. */
function optionPrefixLength(args: string[], table: OptionTable): number {
  return args.length - Parser(args, parserSpec(table))._.length;
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
