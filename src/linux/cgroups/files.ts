import fs = require('node:fs');
import path = require('node:path');
import { SyscallError, ValidationError, syscallErrorFrom } from '../../errors';
import type { PlanStep } from '../../runtime/plan';

const STEP = 'cgroups';

/**
 * What the drivers do to the system besides reading and writing cgroup
 * files. Tests of a fake tree (plain files in a temp dir) replace these to
 * play the kernel: rmdir of a cgroup with processes is EBUSY, a kill
 * empties cgroup.procs.
 */
export interface CgroupOps {
  /** rmdir(2) of a cgroup directory (cgroupfs removes its files with it). */
  rmdir(dir: string): void;
  /** kill(2); ESRCH is ignored by the caller. */
  kill(pid: number, signal: number): void;
  sleep(ms: number): Promise<void>;
  now(): number;
}

export const systemOps: CgroupOps = {
  rmdir: (dir) => fs.rmdirSync(dir),
  kill: (pid, signal) => process.kill(pid, signal),
  sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
  now: () => Date.now(),
};

export function withOps(ops: Partial<CgroupOps> | undefined): CgroupOps {
  return { ...systemOps, ...ops };
}

/** The text of a cgroup file; throws a SyscallError naming it. */
export function readCgroupFile(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw syscallErrorFrom(STEP, err);
  }
}

/** The text of a cgroup file, or null when the file (or the controller) is absent. */
export function readOptional(file: string): string | null {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENODEV' || code === 'EOPNOTSUPP') return null;
    throw syscallErrorFrom(STEP, err);
  }
}

/** A number file (pids.current, memory.usage_in_bytes...), or `fallback` when absent. */
export function readNumber(file: string, fallback = 0): number {
  const text = readOptional(file);
  if (text === null) return fallback;
  const n = Number(text.trim());
  return Number.isFinite(n) ? n : fallback;
}

/**
 * Writes one value with one write(2) on an existing file (O_TRUNC, which
 * cgroupfs ignores, keeps a fake tree of plain files right; no O_CREAT: a
 * cgroup file that is not there means the kernel lacks the feature, and
 * creating a plain file in its place would hide that). Several values are
 * one write(2) each through one open, as devices.allow takes one rule per
 * write. The error names the file and the value:
 * `cgroups: write .../cpuset.cpus: EINVAL (invalid argument; cpuset.cpus "7")`.
 */
export function writeCgroupFile(file: string, value: string | readonly string[], detail?: string): void {
  const values = typeof value === 'string' ? [value] : value;
  const describe = (v: string): string => detail ?? `${path.basename(file)} ${JSON.stringify(v)}`;
  let fd: number;
  try {
    fd = fs.openSync(file, fs.constants.O_WRONLY | fs.constants.O_TRUNC);
  } catch (err) {
    throw syscallErrorFrom(STEP, err, describe(values[0]));
  }
  try {
    for (const v of values) {
      try {
        fs.writeSync(fd, v);
      } catch (err) {
        const e = err as NodeJS.ErrnoException;
        throw new SyscallError(STEP, 'write', e.errno ?? 0, file, describe(v), { cause: err });
      }
    }
  } finally {
    fs.closeSync(fd);
  }
}

export function fileExists(file: string): boolean {
  return fs.existsSync(file);
}

/** "key value" lines (cpu.stat, memory.stat, memory.events, memory.oom_control) into a map. */
export function parseFlatKeyed(text: string | null): Map<string, number> {
  const map = new Map<string, number>();
  if (text === null) return map;
  for (const line of text.split('\n')) {
    const [key, value] = line.trim().split(/\s+/);
    if (key && value !== undefined && /^-?\d+$/.test(value)) map.set(key, Number(value));
  }
  return map;
}

/** The pids listed in a cgroup.procs file (empty when it is gone). */
export function readProcs(dir: string): number[] {
  const text = readOptional(cgroupFile(dir, 'cgroup.procs'));
  if (text === null) return [];
  return text
    .split('\n')
    .filter((l) => /^\d+$/.test(l.trim()))
    .map(Number);
}

/** The cgroups below `dir` (sub-cgroups a container made), deepest first. */
export function descendants(dir: string): string[] {
  let entries: fs.Dirent[];
  try {
    entries = fs.readdirSync(dir, { withFileTypes: true });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw syscallErrorFrom(STEP, err);
  }
  const result: string[] = [];
  for (const entry of entries) {
    if (!entry.isDirectory()) continue;
    const child = path.join(dir, entry.name);
    result.push(...descendants(child), child);
  }
  return result;
}

/** mkdir(2) of a cgroup that is normally not there yet; false when it was. A missing parent is a SyscallError ENOENT. */
export function mkdirNewCgroup(dir: string): boolean {
  try {
    fs.mkdirSync(dir);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw syscallErrorFrom(STEP, err, 'creating the cgroup');
  }
}

/** mkdir(2) of one cgroup; false when it was already there. */
export function mkdirCgroup(dir: string): boolean {
  // The parent is there on every start but the first: a stat is cheaper than the EEXIST exception.
  return !fs.existsSync(dir) && mkdirNewCgroup(dir);
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,254}$/;

/** A container id or parent path is used as a directory name: no "..", no slashes (parent: segments). */
export function checkCgroupNames(id: string, parent: string): void {
  if (!NAME.test(id)) throw new ValidationError('id', `${JSON.stringify(id)} cannot name a cgroup (allowed: [A-Za-z0-9][A-Za-z0-9_.:@-]*)`);
  const segments = parent.split('/');
  if (segments.some((s) => !NAME.test(s))) {
    throw new ValidationError('cgroupParent', `${JSON.stringify(parent)} is not a relative path of cgroup names such as "tsrun" or "tsrun/ci"`);
  }
}

/**
 * A `system prune` in another tsrun may rmdir the empty parent between our
 * mkdir of it and of the container's cgroup (ENOENT): make the path again, once.
 */
export function makeWithRetry(make: () => void): void {
  try {
    make();
  } catch (err) {
    if (!(err instanceof SyscallError && err.code === 'ENOENT')) throw err;
    make();
  }
}

/**
 * A file in a cgroup directory. The drivers build each directory once
 * with path.join, and `name` is a plain file name, so this concatenates:
 * path.join would normalize the whole path again, character by character.
 * A `tsrun run` on a cgroup v1 host names some thirty of these, run
 * interpreted in a CLI start; with the rest of a start's path work that was
 * enough to make V8 optimize path's normalizeString on a background thread
 * (~3 ms more before the process could exit).
 */
export function cgroupFile(dir: string, name: string): string {
  return `${dir}/${name}`;
}

/**
 * The child writes "0" to cgroup.procs (or v1's tasks): the kernel reads 0
 * as "the writing process" (or thread), which stays right in a new PID
 * namespace, where the child's own pid is 1 and its host pid is unknown to it.
 */
export function joinStep(dir: string, procsFile: 'cgroup.procs' | 'tasks'): PlanStep {
  const file = cgroupFile(dir, procsFile);
  // native/plan_exec.cc opens with these flags | O_CLOEXEC | O_NOCTTY and
  // writes the string in one write(2); no O_CREAT: the file must be the kernel's.
  return { op: 'WriteFile', args: [fs.constants.O_WRONLY], strs: [file, '0'], phase: 'cgroups', target: file, detail: 'joining the container\'s cgroup' };
}
