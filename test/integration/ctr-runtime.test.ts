import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { describeAsRoot } from '../helpers/fixtures';
import { checkLeaksAfterEach } from '../helpers/leaks';

const SCRIPT = path.resolve(__dirname, '..', '..', 'scripts', 'ctr-tsrun-oci.sh');

describeAsRoot('containerd with --runc-binary tsrun-oci', () => {
  checkLeaksAfterEach();

  test('scripts/ctr-tsrun-oci.sh: ctr run in the foreground and detached, exec, kill, delete', () => {
    const result = spawnSync('bash', [SCRIPT], { encoding: 'utf8', timeout: 300_000 });
    if (result.status !== 0 && /apt-get|Unable to locate package/.test(result.stderr)) {
      // eslint-disable-next-line no-console
      console.warn(`skipped: containerd is not installed and could not be: ${result.stderr.trim()}`);
      return;
    }
    expect(result.stderr).not.toMatch(/tsrun-oci:/);
    expect(result.stdout).toMatch(/^hello from pid 1\n/);
    expect(result.stdout).toMatch(/exec sees pid 1 as: sh -c while true/);
    expect(result.stdout).toMatch(/ctr-tsrun-oci: ok\n$/);
    expect(result.status).toBe(0);
  }, 300_000);
});
