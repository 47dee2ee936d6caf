import fs = require('node:fs');
import { TsrunError, syscallErrorFrom } from '../../errors';

/**
 * How the host mounts its cgroups:
 * - `unified`: one cgroup2 hierarchy holds every controller (cgroup v2).
 * - `legacy`: one cgroup v1 hierarchy per controller (or group of them).
 * - `hybrid`: v1 hierarchies for the controllers, plus a cgroup2 mount
 *   without controllers (systemd's "hybrid" layout). Limits go through v1;
 *   the cgroup2 mount still gives cgroup.kill and cgroup.events.
 */
export type CgroupMode = 'unified' | 'legacy' | 'hybrid';

/** The cgroup v1 controllers tsrun puts a container in. */
export const V1_CONTROLLERS = ['cpu', 'cpuacct', 'cpuset', 'memory', 'pids', 'blkio', 'freezer', 'devices'] as const;
export type V1Controller = (typeof V1_CONTROLLERS)[number];

export interface CgroupHost {
  mode: CgroupMode;
  /** v1: where each controller's hierarchy is mounted (co-mounted controllers share a path). */
  v1Mounts: Partial<Record<V1Controller, string>>;
  /** Where the cgroup2 hierarchy is mounted, if it is. */
  unifiedMount: string | null;
  /** This process's cgroup per hierarchy, from /proc/self/cgroup ("" is the cgroup2 one). */
  own: Record<string, string>;
}

/** One cgroup or cgroup2 line of /proc/self/mountinfo. */
export interface CgroupMount {
  fstype: 'cgroup' | 'cgroup2';
  /** The mount point, unescaped. */
  mountPoint: string;
  /** The cgroup the mount shows as its root (not "/" inside a cgroup namespace or for a bind mount). */
  root: string;
  /** v1 only: the controllers the hierarchy has (`name=...` entries excluded). */
  controllers: string[];
}

/** mountinfo escapes space, tab, newline and backslash as \ooo. */
function unescapeMountField(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8)));
}

const V1_OPTIONS_NOT_CONTROLLERS = new Set(['rw', 'ro', 'noprefix', 'clone_children', 'xattr', 'cpuset_v2_mode', 'favordynmods', 'nofavordynmods']);

/**
 * The cgroup mounts in a mountinfo text (see proc(5)): fields are
 * `id parent major:minor root mountpoint options [optional...] - fstype source superoptions`.
 */
export function parseCgroupMounts(mountinfo: string): CgroupMount[] {
  const mounts: CgroupMount[] = [];
  for (const line of mountinfo.split('\n')) {
    if (!line) continue;
    const fields = line.split(' ');
    const dash = fields.indexOf('-', 6);
    if (dash < 0 || fields.length < dash + 4) continue;
    const fstype = fields[dash + 1];
    if (fstype !== 'cgroup' && fstype !== 'cgroup2') continue;
    const superOptions = fields[dash + 3].split(',');
    const controllers =
      fstype === 'cgroup' ? superOptions.filter((o) => !V1_OPTIONS_NOT_CONTROLLERS.has(o) && !o.includes('=')) : [];
    mounts.push({ fstype, mountPoint: unescapeMountField(fields[4]), root: unescapeMountField(fields[3]), controllers });
  }
  return mounts;
}

/** /proc/self/cgroup: `hierarchy-id:controller-list:path` per line; the key is the controller list ("" for cgroup2). */
export function parseProcCgroup(text: string): Record<string, string> {
  const own: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const m = /^(\d+):([^:]*):(.*)$/.exec(line);
    if (m) own[m[2]] = m[3];
  }
  return own;
}

/**
 * Works out the host's cgroup layout from the texts of /proc/self/mountinfo
 * and /proc/self/cgroup. A v1 controller counts only when the kernel has
 * bound it to a hierarchy (it appears in /proc/self/cgroup) and that
 * hierarchy is mounted; named hierarchies such as name=systemd carry no
 * controllers and are ignored.
 */
export function cgroupHostFrom(mountinfo: string, procCgroup: string): CgroupHost {
  const mounts = parseCgroupMounts(mountinfo);
  const own = parseProcCgroup(procCgroup);
  const bound = new Set(Object.keys(own).flatMap((list) => list.split(',').filter((c) => c && !c.includes('='))));
  const v1Mounts: Partial<Record<V1Controller, string>> = {};
  for (const controller of V1_CONTROLLERS) {
    if (!bound.has(controller)) continue;
    const candidates = mounts.filter((m) => m.fstype === 'cgroup' && m.controllers.includes(controller));
    // A bind mount of a sub-cgroup shows a root other than "/"; prefer the whole hierarchy.
    const best = candidates.find((m) => m.root === '/') ?? candidates[0];
    if (best) v1Mounts[controller] = best.mountPoint;
  }
  const unified = mounts.find((m) => m.fstype === 'cgroup2' && m.root === '/') ?? mounts.find((m) => m.fstype === 'cgroup2');
  const unifiedMount = unified?.mountPoint ?? null;
  const hasV1 = Object.keys(v1Mounts).length > 0;
  if (!hasV1 && !unifiedMount) {
    throw new TsrunError('cgroups: no cgroup hierarchy is mounted (no cgroup or cgroup2 entry in /proc/self/mountinfo)', 'ENOTSUP');
  }
  const mode: CgroupMode = hasV1 ? (unifiedMount ? 'hybrid' : 'legacy') : 'unified';
  return { mode, v1Mounts, unifiedMount, own };
}

export interface DetectOptions {
  /** Default /proc/self/mountinfo. */
  mountinfoPath?: string;
  /** Default /proc/self/cgroup. */
  procCgroupPath?: string;
}

/**
 * Reads this host's cgroup layout.
 *
 * @example
 * detectCgroupHost().mode // 'hybrid' on a systemd host booted with cgroup v1
 */
export function detectCgroupHost(options: DetectOptions = {}): CgroupHost {
  const mountinfoPath = options.mountinfoPath ?? '/proc/self/mountinfo';
  const procCgroupPath = options.procCgroupPath ?? '/proc/self/cgroup';
  let mountinfo: string;
  let procCgroup: string;
  try {
    mountinfo = fs.readFileSync(mountinfoPath, 'utf8');
    procCgroup = fs.readFileSync(procCgroupPath, 'utf8');
  } catch (err) {
    throw syscallErrorFrom('cgroups', err, 'detecting the cgroup layout');
  }
  return cgroupHostFrom(mountinfo, procCgroup);
}
