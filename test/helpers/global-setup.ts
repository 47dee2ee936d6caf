import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { CGROUP_PARENT_ENV } from '../../src/linux/cgroups';
import { FIXTURE_ENV, isRoot } from './env';

/** Builds the busybox root filesystem once for the whole run (root only). */
export default function globalSetup(): void {
  if (!isRoot()) return;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsrun-test-'));
  // Containers with a user namespace run as unprivileged host ids: they
  // must be able to reach the shared root filesystem.
  fs.chmodSync(dir, 0o755);
  execFileSync('bash', [path.join(__dirname, '..', '..', 'scripts', 'make-busybox-rootfs.sh'), path.join(dir, 'busybox')], { stdio: ['ignore', 'ignore', 'inherit'] });
  process.env[FIXTURE_ENV] = dir;
  // One parent cgroup per test run, so that the leak checks of two runs on
  // one host (CI next to a developer's run) do not see each other's containers.
  process.env[CGROUP_PARENT_ENV] = `tsrun-test-${process.pid}`;
  // The CLI's default network is Docker's, a bridge on the host; tests get
  // none unless they ask, and the network tests build theirs in a network
  // namespace of their own.
  process.env.TSRUN_NETWORK = 'none';
}
