import * as fs from 'node:fs';
import { removeCgroupParent } from '../../src/linux/cgroups';
import { FIXTURE_ENV } from './env';

export default function globalTeardown(): void {
  const dir = process.env[FIXTURE_ENV];
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
  // The tests' containers use this run's parent cgroup (global-setup.ts),
  // which, like Docker's, outlives its containers; it is removed here when
  // empty so the suite leaves no cgroup behind. One holding a container stays.
  if (process.getuid?.() === 0) removeCgroupParent();
}
