import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { useTempDir } from '../helpers/fixtures';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const { launcherText } = require('../../scripts/write-launchers.js') as {
  launcherText: (node: string, about: string, bundle: string, valueOptions: string[], addon: string) => string;
};

const ADDON = path.join(__dirname, '..', '..', 'build', 'Release', 'tsrun_native.node');

/**
 * The CLIs' loader (scripts/cli-loader.js), in a launcher as
 * scripts/write-launchers.js writes it, on a stand-in bundle whose main
 * does what its last argument says: it writes the code cache of the
 * command word only after a successful steady-state run, and again when V8
 * rejects the one it finds. With the addon it reads the bundle and maps the
 * cache through it and hands it to main; without (not built), fs reads both.
 */
describe.each([
  ['with the addon', ADDON],
  ['without the addon', '/tsrun-no-such-dir/tsrun_native.node'],
])('the CLI code cache (scripts/cli-loader.js), %s', (_, addon) => {
  const tmp = useTempDir('tsrun-cli-loader-');
  let root: string;
  let cacheFile: string;
  beforeEach(() => {
    root = fs.mkdtempSync(path.join(tmp(), 'pkg-'));
    fs.mkdirSync(path.join(root, 'bin'));
    fs.mkdirSync(path.join(root, 'dist', 'cli'), { recursive: true });
    const bundle = path.join(root, 'dist', 'cli', 'demo.js');
    fs.writeFileSync(path.join(root, 'bin', 'demo'), launcherText(process.execPath, 'A stand-in.', bundle, ['--state'], addon), { mode: 0o755 });
    // As scripts/build-cli.js writes a bundle: one function expression of CommonJS's module parameters.
    fs.writeFileSync(
      bundle,
      [
        '(function (exports, require, module, __filename, __dirname) {',
        'exports.main = async (argv, native) => {',
        '  const run = argv[argv.length - 1];',
        "  if (run === 'failed') process.exitCode = 125;",
        "  if (__dirname !== require('node:path').dirname(__filename)) process.exitCode = 1;",
        `  if ((typeof native?.spawn === 'function') !== ${addon === ADDON}) process.exitCode = 2;`,
        '  for (let i = 0; i < 3; i++) (() => i * 2)();',
        "  return run !== 'one-time';",
        '};',
        '})',
        '',
      ].join('\n'),
    );
    cacheFile = path.join(root, 'dist', 'cli', 'demo.js.go.cache');
  });

  const runDemo = (run: 'steady' | 'one-time' | 'failed', globalOptions: string[] = []): void => {
    const result = spawnSync(path.join(root, 'bin', 'demo'), [...globalOptions, 'go', run], { encoding: 'utf8' });
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

  test('the command word is the first word after the global options and their values', () => {
    runDemo('steady', ['--state', 'elsewhere', '--debug']);
    expect(fs.statSync(cacheFile).size).toBeGreaterThan(0);
    expect(fs.readdirSync(path.dirname(cacheFile)).filter((f) => f.endsWith('.cache'))).toEqual(['demo.js.go.cache']);
  });
});
