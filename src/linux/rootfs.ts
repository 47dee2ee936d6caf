import fs = require('node:fs');
import path = require('node:path');
import type { Mount, Spec } from '../oci/runtime-spec';
import type { PlanStep } from '../runtime/plan';
import { StepFlag } from '../runtime/plan-opcodes';
import { DEFAULT_DEVICES, deviceSteps } from './devices';
import { MNT_DETACH, MS, mountSteps } from './mounts';
import { resolveInRoot } from './path-in-root';

const ROOTFS_PROPAGATION: Record<string, number> = {
  private: MS.PRIVATE,
  rprivate: MS.PRIVATE | MS.REC,
  slave: MS.SLAVE,
  rslave: MS.SLAVE | MS.REC,
  shared: MS.SHARED,
  rshared: MS.SHARED | MS.REC,
  unbindable: MS.UNBINDABLE,
  runbindable: MS.UNBINDABLE | MS.REC,
};

export interface RootfsOptions {
  /** pivot_root into the root; false means MS_MOVE + chroot. */
  pivot: boolean;
  inUserNamespace: boolean;
}

let processCanPivotRoot: boolean | undefined;

/**
 * pivot_root(2) cannot leave a root that is itself the initial ramfs
 * ("rootfs"); there the only way in is MS_MOVE + chroot, as runc's
 * --no-pivot does. Without `mountinfo`, the answer is this process's, read
 * once: a multi-threaded process cannot leave its mount namespace, so its
 * root mount stays the one it started on (a host's mount table can be
 * thousands of lines long, and every container start asked).
 */
export function canPivotRoot(mountinfo?: string): boolean {
  if (mountinfo === undefined) {
    processCanPivotRoot ??= rootAllowsPivot('/proc/self/mountinfo');
    return processCanPivotRoot;
  }
  return rootAllowsPivot(mountinfo);
}

function rootAllowsPivot(mountinfo: string): boolean {
  for (const line of fs.readFileSync(mountinfo, 'utf8').split('\n')) {
    const fields = line.split(' ');
    const sep = fields.indexOf('-');
    if (fields[4] === '/' && sep > 0) {
      const fstype = fields[sep + 1];
      if (fstype === 'rootfs' || fstype === 'ramfs') return false;
    }
  }
  return true;
}

/**
 * The mount point under which `dir` lies (itself, if it is one), from
 * mountinfo: what pivot_root needs not to be shared when the container's
 * mounts are.
 */
export function mountPointOf(dir: string, mountinfo = '/proc/self/mountinfo'): string {
  let best = '/';
  for (const line of fs.readFileSync(mountinfo, 'utf8').split('\n')) {
    // Field 5 is the mount point, with spaces and the like octal-escaped.
    const point = line.split(' ')[4]?.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8)));
    if (point && (dir === point || dir.startsWith(point.endsWith('/') ? point : `${point}/`)) && point.length > best.length) best = point;
  }
  return best;
}

function isFreshFilesystem(mount: Mount): boolean {
  return !(mount.options ?? []).some((o) => o === 'bind' || o === 'rbind');
}

/** Mkdir steps for every component of `target` below `root`; existing ones are skipped. */
function mkdirSteps(root: string, target: string): PlanStep[] {
  const steps: PlanStep[] = [];
  const rel = path.relative(root, target);
  let current = root;
  for (const part of rel.split(path.sep).filter(Boolean)) {
    current = path.join(current, part);
    steps.push({ op: 'Mkdir', flags: StepFlag.IgnoreExist | StepFlag.InRoot, args: [0o755, 0, root.length], strs: [current], phase: 'rootfs', target: current, detail: 'mount point' });
  }
  return steps;
}

function bindSourceIsFile(mount: Mount): boolean {
  if (isFreshFilesystem(mount) || !mount.source) return false;
  try {
    return !fs.statSync(mount.source).isDirectory();
  } catch {
    return false;
  }
}

/**
 * The child's mount namespace: / made private, the root bound onto itself,
 * the spec's mounts (with the default devices once /dev is a tmpfs), then
 * pivot_root (or chroot) and the old root detached.
 */
export function rootfsSteps(spec: Spec, options: RootfsOptions): PlanStep[] {
  const root = spec.root.path;
  const propagation = ROOTFS_PROPAGATION[spec.linux.rootfsPropagation ?? 'rprivate'];
  // With shared mounts, / stays in its peer groups, so that a bind of a
  // shared host directory joins the host's peer group (both ways); the
  // mount holding the root is made private so that nothing mounted in the
  // container shows on the host's side of it, and pivot_root accepts it.
  const shared = (propagation & MS.SHARED) !== 0;
  const steps: PlanStep[] = [
    // Device nodes and mount points get exactly the modes asked for.
    { op: 'Umask', args: [0], phase: 'rootfs' },
    { op: 'Mount', args: [MS.REC | propagation], strs: [null, '/', null, null], phase: 'rootfs', target: '/', detail: `make / ${spec.linux.rootfsPropagation ?? 'rprivate'}` },
  ];
  if (shared) {
    const holder = mountPointOf(root);
    steps.push({ op: 'Mount', args: [MS.PRIVATE], strs: [null, holder, null, null], phase: 'rootfs', target: holder, detail: 'make the mount holding the root private' });
  }
  steps.push({ op: 'Mount', args: [MS.BIND | MS.REC], strs: [root, root, null, null], phase: 'rootfs', target: root, detail: 'bind of the root filesystem onto itself' });

  // In the listed order, as the OCI spec says; a path under a filesystem
  // mounted just before (the /dev tmpfs) is taken literally, not through
  // whatever the image has at that path.
  const fresh: { destination: string; target: string }[] = [];
  let devDir: string | undefined;
  for (const mount of spec.mounts) {
    const destination = path.posix.normalize(`/${mount.destination}`);
    const parent = fresh.filter((f) => destination.startsWith(`${f.destination}/`)).sort((a, b) => b.destination.length - a.destination.length)[0];
    const target = parent ? path.join(parent.target, destination.slice(parent.destination.length)) : resolveInRoot(root, destination);
    if (bindSourceIsFile(mount)) {
      steps.push(...mkdirSteps(root, path.dirname(target)));
      steps.push({ op: 'Touch', flags: StepFlag.InRoot, args: [0o644, 0, root.length], strs: [target], phase: 'rootfs', target, detail: 'bind mount point' });
    } else {
      steps.push(...mkdirSteps(root, target));
    }
    steps.push(...mountSteps(mount, target, 'rootfs', root));
    if (isFreshFilesystem(mount)) fresh.push({ destination, target });
    if (destination === '/dev' && mount.type === 'tmpfs') devDir = target;
  }
  if (devDir) steps.push(...deviceSteps([...DEFAULT_DEVICES, ...(spec.linux.devices ?? [])], devDir, options.inUserNamespace));

  if (options.pivot && shared) {
    steps.push({ op: 'PivotRootSlave', strs: [root], phase: 'rootfs', target: root, detail: 'pivot_root, old root made rslave and detached' });
  } else if (options.pivot) {
    steps.push(
      { op: 'Chdir', strs: [root], phase: 'rootfs', target: root },
      { op: 'PivotRoot', strs: ['.', '.'], phase: 'rootfs', target: root },
      // The old root now sits on top of the new one; detach it.
      { op: 'Umount2', args: [MNT_DETACH], strs: ['.'], phase: 'rootfs', target: 'old root', detail: 'detach the old root' },
      { op: 'Chdir', strs: ['/'], phase: 'rootfs', target: '/' },
    );
  } else {
    steps.push(
      { op: 'Chdir', strs: [root], phase: 'rootfs', target: root },
      { op: 'Mount', args: [MS.MOVE], strs: [root, '/', null, null], phase: 'rootfs', target: '/', detail: 'move the root (no pivot_root)' },
      { op: 'Chroot', strs: ['.'], phase: 'rootfs', target: root },
      { op: 'Chdir', strs: ['/'], phase: 'rootfs', target: '/' },
    );
  }
  if (spec.root.readonly) {
    steps.push({ op: 'Mount', args: [MS.REMOUNT | MS.BIND | MS.RDONLY], strs: [null, '/', null, null], phase: 'rootfs', target: '/', detail: 'read-only root' });
  }
  return steps;
}
