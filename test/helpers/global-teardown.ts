import * as fs from 'node:fs';
import * as path from 'node:path';
import { defaultCgroupParent, removeCgroupParent } from '../../src/linux/cgroups';
import { FIXTURE_ENV } from './env';

const CGROUP_ROOT = '/sys/fs/cgroup';

/** Blocks the calling thread: teardown is synchronous. */
function sleepMs(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** rmdir of an empty cgroup; its processes are killed first and given a second to go. */
function removeCgroup(dir: string): void {
  for (let attempt = 0; attempt < 100; attempt++) {
    try {
      fs.rmdirSync(dir);
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EBUSY') return;
    }
    for (const pid of fs.readFileSync(path.join(dir, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean)) {
      try {
        process.kill(Number(pid), 'SIGKILL');
      } catch {
        // Gone already.
      }
    }
    sleepMs(10);
  }
}

/**
 * The container cgroups a failed test left under this run's parent, in
 * every hierarchy (v1 controllers, the hybrid cgroup2 mount, or a cgroup2
 * root), deepest first, with what still runs in them: the leak checks have
 * reported them, and the suite must not leave them on the host.
 */
function removeLeftoverCgroups(parent: string): void {
  const removeTree = (dir: string): void => {
    for (const entry of fs.readdirSync(dir, { withFileTypes: true })) if (entry.isDirectory()) removeTree(path.join(dir, entry.name));
    removeCgroup(dir);
  };
  const hierarchies = [CGROUP_ROOT, ...fs.readdirSync(CGROUP_ROOT).map((name) => path.join(CGROUP_ROOT, name))];
  for (const hierarchy of hierarchies) {
    const dir = path.join(hierarchy, parent);
    if (!fs.existsSync(dir)) continue;
    for (const entry of fs.readdirSync(dir, { withFileTypes: true })) if (entry.isDirectory()) removeTree(path.join(dir, entry.name));
  }
}

export default function globalTeardown(): void {
  const dir = process.env[FIXTURE_ENV];
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
  // The tests' containers use this run's parent cgroup (global-setup.ts),
  // which, like Docker's, outlives its containers; it is removed here when
  // empty so the suite leaves no cgroup behind, even after a failed test.
  if (process.getuid?.() === 0) {
    removeLeftoverCgroups(defaultCgroupParent());
    removeCgroupParent();
  }
}
