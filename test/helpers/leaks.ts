import * as fs from 'node:fs';
import * as path from 'node:path';
import { defaultCgroupParent } from '../../src/linux/cgroups';
import { spareNetworkNamespaceSettled } from '../../src/linux/spare-netns';
import { hostTsrunCgroups } from './cgroups';

/** What a container runtime can leave behind in the process and the kernel. */
export interface KernelSnapshot {
  mounts: string[];
  /** Open fds but those of network namespaces, which `netns` counts. */
  fds: number;
  /** Network namespaces held by an fd: the library's spare (src/linux/spare-netns.ts), made while a container starts, for the next. */
  netns: number;
  threads: number;
  zombies: number[];
  children: number[];
  cgroups: string[];
}

function children(): { pid: number; state: string }[] {
  const result: { pid: number; state: string }[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
      // The comm field may hold spaces; the fields after its ')' are fixed.
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[1]) === process.pid) result.push({ pid: Number(entry), state: fields[0] });
    } catch {
      // The process went away while we looked.
    }
  }
  return result;
}

/** What each open fd of this process refers to ('' for the directory fd the listing itself used). */
export function openFdTargets(): string[] {
  return fs.readdirSync('/proc/self/fd').map((fd) => {
    try {
      return fs.readlinkSync(`/proc/self/fd/${fd}`);
    } catch {
      return '';
    }
  });
}

export function snapshot(): KernelSnapshot {
  const mounts = fs
    .readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const f = line.split(' ');
      return `${f[4]} ${f[f.indexOf('-') + 1]}`;
    })
    .sort();
  const kids = children();
  const fdTargets = openFdTargets();
  const netns = fdTargets.filter((target) => target.startsWith('net:[')).length;
  return {
    mounts,
    fds: fdTargets.length - netns,
    netns,
    threads: fs.readdirSync('/proc/self/task').length,
    zombies: kids.filter((c) => c.state === 'Z').map((c) => c.pid),
    children: kids.map((c) => c.pid),
    // A parent cgroup may outlive its containers, as Docker's does; a container's may not.
    cgroups: hostTsrunCgroups().filter((cg) => path.basename(path.dirname(cg)) === defaultCgroupParent()),
  };
}

/** Fails the test if mounts, fds, zombies, child processes or tsrun cgroups grew since `before`, or more than the one spare network namespace is held. */
export function expectNoLeaks(before: KernelSnapshot, after: KernelSnapshot = snapshot()): void {
  expect(after.mounts).toEqual(before.mounts);
  expect(after.cgroups.filter((cg) => !before.cgroups.includes(cg))).toEqual([]);
  expect(after.zombies).toEqual([]);
  expect(after.children.filter((pid) => !before.children.includes(pid))).toEqual([]);
  expect(after.fds).toBeLessThanOrEqual(before.fds);
  expect(after.netns).toBeLessThanOrEqual(1);
}

/** Checks for leaks after every test of the file. */
export function checkLeaksAfterEach(): void {
  let before: KernelSnapshot;
  beforeEach(async () => {
    before = await settledSnapshot();
  });
  afterEach(async () => {
    expectNoLeaks(before, await settledSnapshot());
  });
}

/**
 * A snapshot once no spare network namespace is being made: the worker
 * thread's short-lived child and the fd it opens are there only until it
 * calls back (src/linux/spare-netns.ts).
 */
export async function settledSnapshot(): Promise<KernelSnapshot> {
  await spareNetworkNamespaceSettled();
  return snapshot();
}
