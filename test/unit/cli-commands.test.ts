import * as fs from 'node:fs';
import * as path from 'node:path';
import { COMMANDS, isCliCommand } from '../../src/cli/main';

/** cli/main.ts's index of commands, which loads a command's module only when it runs, against the modules themselves. */
describe('the CLI command index', () => {
  const dir = path.join(__dirname, '..', '..', 'src', 'cli', 'commands');
  const defined = fs
    .readdirSync(dir)
    .filter((file) => file.endsWith('.ts'))
    .flatMap((file) => Object.values(jest.requireActual<Record<string, unknown>>(path.join(dir, file))).filter(isCliCommand).map((command) => command.name));

  test('every command a module defines is indexed, once', () => {
    expect(COMMANDS.map((command) => command.name).sort()).toEqual([...defined].sort());
  });

  test('every indexed command loads from its module, under its own name', () => {
    for (const indexed of COMMANDS) expect(indexed.load().name).toBe(indexed.name);
  });

  test('no name or alias selects two commands', () => {
    const names = COMMANDS.flatMap((command) => [command.name, ...command.aliases]);
    expect(new Set(names).size).toBe(names.length);
  });

  test("Docker's aliases: container ls, image rm, import", () => {
    const byAlias = (alias: string): string | undefined => COMMANDS.find((command) => command.aliases.includes(alias))?.name;
    expect([byAlias('container ls'), byAlias('image rm'), byAlias('import')]).toEqual(['ps', 'rmi', 'image import']);
  });
});
