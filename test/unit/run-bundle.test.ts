import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { useTempDir } from '../helpers/fixtures';

/**
 * bin/run-bundle.js, the CLIs' loader, on a stand-in bundle whose main
 * does what its second argument says: it writes the code cache of the
 * command word only after a successful steady-state run, and again when V8
 * rejects the one it finds.
 */
describe('the CLI code cache (bin/run-bundle.js)', () => {
  const tmp = useTempDir('tsrun-run-bundle-');
  let root: string;
  let cacheFile: string;
  beforeEach(() => {
    root = fs.mkdtempSync(path.join(tmp(), 'pkg-'));
    fs.mkdirSync(path.join(root, 'bin'));
    fs.mkdirSync(path.join(root, 'dist', 'cli'), { recursive: true });
    fs.copyFileSync(path.join(__dirname, '..', '..', 'bin', 'run-bundle.js'), path.join(root, 'bin', 'run-bundle.js'));
    fs.writeFileSync(path.join(root, 'bin', 'demo'), "require('./run-bundle.js')('demo', []);\n");
    fs.writeFileSync(
      path.join(root, 'dist', 'cli', 'demo.js'),
      "exports.main = async (argv) => { if (argv[3] === 'failed') process.exitCode = 125; for (let i = 0; i < 3; i++) (() => i * 2)(); return argv[3] !== 'one-time'; };\n",
    );
    cacheFile = path.join(root, 'dist', 'cli', 'demo.js.go.cache');
  });

  const runDemo = (run: 'steady' | 'one-time' | 'failed'): void => {
    const result = spawnSync(process.execPath, [path.join(root, 'bin', 'demo'), 'go', run], { encoding: 'utf8' });
    expect(result.stderr).toBe('');
    expect(result.status).toBe(run === 'failed' ? 125 : 0);
  };

  test('a successful steady-state run writes the cache; a run after one-time work or a failed one does not', () => {
    runDemo('one-time');
    expect(fs.existsSync(cacheFile)).toBe(false);
    runDemo('failed');
    expect(fs.existsSync(cacheFile)).toBe(false);
    runDemo('steady');
    expect(fs.statSync(cacheFile).size).toBeGreaterThan(0);
  });

  test('an accepted cache is left alone; a rejected one is replaced', () => {
    const modified = (): bigint => fs.statSync(cacheFile, { bigint: true }).mtimeNs;
    runDemo('steady');
    const written = modified();
    runDemo('steady');
    expect(modified()).toBe(written);
    fs.writeFileSync(cacheFile, 'not a code cache');
    runDemo('steady');
    expect(fs.readFileSync(cacheFile).toString()).not.toBe('not a code cache');
    const rewritten = modified();
    runDemo('steady');
    expect(modified()).toBe(rewritten);
  });
});
