import type { Options } from 'yargs';
import { Parser } from 'yargs/helpers';

type OptionTable = Record<string, Options>;

function parserSpec(table: OptionTable): Parser.Options {
  const spec = { string: [] as string[], boolean: [] as string[], number: [] as string[], array: [] as string[], alias: {} as Record<string, string[]> };
  for (const [name, option] of Object.entries(table)) {
    if (option.type === 'boolean') spec.boolean.push(name);
    else if (option.type === 'number') spec.number.push(name);
    else spec.string.push(name);
    if (option.array) spec.array.push(name);
    if (option.alias) spec.alias[name] = ([] as string[]).concat(option.alias);
  }
  return { ...spec, configuration: { 'halt-at-non-option': true, 'greedy-arrays': false } };
}

/** How many leading tokens are options (and their values) before the first positional. */
function optionPrefixLength(args: string[], table: OptionTable): number {
  return args.length - Parser(args, parserSpec(table))._.length;
}

/** Where the subcommand's name stands in `args` (after the global options), or -1. */
export function commandIndex(args: string[], globals: OptionTable): number {
  const index = optionPrefixLength(args, globals);
  return index < args.length ? index : -1;
}

/**
 * Inserts `--` where a container command begins, so that its own flags
 * (`sh -c 'ls -e'`) are never read as tsrun's: docker stops parsing at the
 * first positional of `run`, and yargs cannot do that inside a subcommand.
 * `commands` maps a command name to its options and to how many of its
 * positionals come before the container command.
 */
export function separateContainerCommand(args: string[], globals: OptionTable, commands: Record<string, { options: OptionTable; positionalsBefore: number }>): string[] {
  let index = optionPrefixLength(args, globals);
  const command = commands[args[index]];
  if (!command) return args;
  index += 1;
  const table = { ...globals, ...command.options };
  for (let positional = 0; ; positional++) {
    index += optionPrefixLength(args.slice(index), table);
    if (index >= args.length || args[index - 1] === '--') return args;
    if (positional === command.positionalsBefore) break;
    index += 1;
  }
  return [...args.slice(0, index), '--', ...args.slice(index)];
}
