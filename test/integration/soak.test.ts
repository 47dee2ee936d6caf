import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describeAsRoot, useTempDir } from '../helpers/fixtures';

const SOAK = path.resolve(__dirname, '..', '..', 'scripts', 'bench', 'soak.js');

/**
 * The soak benchmark (scripts/bench/soak.js) at a tenth of a percent of
 * its size: library and CLI, sequential and concurrent, every kind of exit
 * (0, non-zero, SIGKILL, OOM); nothing may grow and every container must
 * end as its kind says.
 */
describeAsRoot('soak, short', () => {
  const tmp = useTempDir('tsrun-soak-test-');

  test('40 + 12 library containers and 8 + 4 CLI containers leave nothing behind', () => {
    const report = path.join(tmp(), 'report.json');
    const result = spawnSync(process.execPath, [SOAK, '--sequential', '40', '--concurrent', '12', '--cli-sequential', '8', '--cli-concurrent', '4', '--json', report], { encoding: 'utf8', timeout: 240_000 });
    expect(result.stdout).toMatch(/^PASS: no leak, every container ended as expected$/m);
    expect(result.status).toBe(0);
    const parsed = JSON.parse(fs.readFileSync(report, 'utf8')) as { phases: { name: string; grown: string[] }[]; failures: string[]; cleanup: { mounts: string[]; processes: unknown[] } };
    expect(parsed.phases.map((p) => [p.name, p.grown])).toEqual([
      ['library, 40 sequential', []],
      ['library, 12 concurrent', []],
      ['CLI, 8 sequential', []],
      ['CLI, 4 concurrent', []],
    ]);
    expect(parsed.failures).toEqual([]);
    expect(parsed.cleanup).toMatchObject({ mounts: [], processes: [] });
  });
});
