import * as fs from 'node:fs';
import * as path from 'node:path';
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

/**
 * pivot_root(2) cannot leave a root that is itself the initial ramfs
 * ("rootfs"); there the only way in is MS_MOVE + chroot, as runc's
 * --no-pivot does.
 */
export function canPivotRoot(mountinfo = '/proc/self/mountinfo'): boolean {
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
  const steps: PlanStep[] = [
    // Device nodes and mount points get exactly the modes asked for.
    { op: 'Umask', args: [0], phase: 'rootfs' },
    { op: 'Mount', args: [MS.REC | propagation], strs: [null, '/', null, null], phase: 'rootfs', target: '/', detail: `make / ${spec.linux.rootfsPropagation ?? 'rprivate'}` },
    { op: 'Mount', args: [MS.BIND | MS.REC], strs: [root, root, null, null], phase: 'rootfs', target: root, detail: 'bind of the root filesystem onto itself' },
  ];

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

  if (options.pivot) {
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
