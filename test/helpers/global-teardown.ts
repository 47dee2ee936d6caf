import * as fs from 'node:fs';
import { removeCgroupParent, removeLeftoverCgroups } from '../../src/linux/cgroups';
import { FIXTURE_ENV } from './env';

export default async function globalTeardown(): Promise<void> {
  const dir = process.env[FIXTURE_ENV];
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
  // The tests' containers use this run's parent cgroup (global-setup.ts),
  // which, like Docker's, outlives its containers. Once every test is done,
  // a container cgroup still under it was left by a failed test (its leak
  // check has reported it): it goes, with what still runs in it, as in
  // `tsrun system prune`, and then the parent, so the suite leaves no cgroup
  // behind.
  if (process.getuid?.() === 0) {
    await removeLeftoverCgroups(() => false);
    removeCgroupParent();
  }
}
