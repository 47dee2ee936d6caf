import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { useTempDir } from '../helpers/fixtures';

/** scripts/write-launchers.js: bin/tsrun and bin/tsrun-oci name this machine's node by absolute path. */
describe('the CLI launchers', () => {
  const tmp = useTempDir('tsrun-launchers-');
  let written: ReturnType<typeof spawnSync>;
  // Not made beforehand: a clean checkout has no bin/.
  const binDir = (): string => path.join(tmp(), 'bin');
  beforeAll(() => {
    const script = path.join(__dirname, '..', '..', 'scripts', 'write-launchers.js');
    written = spawnSync(process.execPath, [script, binDir()], { encoding: 'utf8' });
  });

  test('each starts with the absolute path of the node that wrote it, is executable, and holds the loader and the paths of its bundle and the addon', () => {
    expect(written.stderr).toBe('');
    expect(written.status).toBe(0);
    for (const [name, valueOption] of [['tsrun', '--state'], ['tsrun-oci', '--criu']]) {
      const file = path.join(binDir(), name);
      const [first, ...rest] = fs.readFileSync(file, 'utf8').split('\n');
      expect(first).toBe(`#!${process.execPath}`);
      expect(fs.statSync(file).mode & 0o111).toBe(0o111);
      const bundle = path.resolve(__dirname, '..', '..', 'dist', 'cli', `${name}.js`);
      const addon = path.resolve(__dirname, '..', '..', 'build', 'Release', 'tsrun_native.node');
      expect(rest.join('\n')).toContain(`(function loadCli(bundle, valueOptions, addon) {`);
      expect(rest.join('\n')).toContain(`})(${JSON.stringify(bundle)}, [`);
      expect(rest.join('\n')).toContain(`], ${JSON.stringify(addon)});`);
      expect(rest.join('\n')).not.toContain('require(\'./');
      expect(rest.join('\n')).toContain(JSON.stringify(valueOption));
    }
  });

  test('the launchers in bin/ are the ones the script writes (the build ran it)', () => {
    for (const name of ['tsrun', 'tsrun-oci']) {
      expect(fs.readFileSync(path.join(__dirname, '..', '..', 'bin', name), 'utf8')).toBe(fs.readFileSync(path.join(binDir(), name), 'utf8'));
    }
  });
});
