import { spawnSync } from 'node:child_process';
import * as path from 'node:path';

/** The CLI under test (the bundle `npm run build:ts` makes). */
export const TSRUN = path.resolve(__dirname, '..', '..', 'bin', 'tsrun');

export interface CliResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Runs tsrun with `globals` (its --root and --state) before `args` and `input` on its stdin; what it printed and its exit status. */
export function runCli(globals: readonly string[], args: readonly string[], input?: string): CliResult {
  const result = spawnSync(TSRUN, [...globals, ...args], { encoding: 'utf8', timeout: 60_000, input });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}
