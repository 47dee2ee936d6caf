import * as fs from 'node:fs';
import { removeCgroupParent } from '../../src/linux/cgroups';
import { FIXTURE_ENV } from './env';

export default function globalTeardown(): void {
  const dir = process.env[FIXTURE_ENV];
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
  // The CLI tests' containers use the default parent cgroup (tsrun/), which,
  // like Docker's, outlives its containers; an empty one is removed here so
  // the suite leaves no cgroup behind. One holding a container stays.
  if (process.getuid?.() === 0) removeCgroupParent();
}
