import { ValidationError } from '../errors';
import type { Mount } from '../oci/runtime-spec';
import type { PlanStep } from '../runtime/plan';
import { StepFlag } from '../runtime/plan-opcodes';

/** Mount flags from <sys/mount.h>; the same on every Linux architecture. */
export const MS = {
  RDONLY: 0x1,
  NOSUID: 0x2,
  NODEV: 0x4,
  NOEXEC: 0x8,
  SYNCHRONOUS: 0x10,
  REMOUNT: 0x20,
  MANDLOCK: 0x40,
  DIRSYNC: 0x80,
  NOSYMFOLLOW: 0x100,
  NOATIME: 0x400,
  NODIRATIME: 0x800,
  BIND: 0x1000,
  MOVE: 0x2000,
  REC: 0x4000,
  SILENT: 0x8000,
  UNBINDABLE: 0x20000,
  PRIVATE: 0x40000,
  SLAVE: 0x80000,
  SHARED: 0x100000,
  RELATIME: 0x200000,
  STRICTATIME: 0x1000000,
  LAZYTIME: 0x2000000,
} as const;

export const MNT_DETACH = 0x2;

/** Options that set (or clear) a flag, as mount(8) and the OCI spec name them. */
const FLAG_OPTIONS: Record<string, { set?: number; clear?: number }> = {
  ro: { set: MS.RDONLY },
  rw: { clear: MS.RDONLY },
  nosuid: { set: MS.NOSUID },
  suid: { clear: MS.NOSUID },
  nodev: { set: MS.NODEV },
  dev: { clear: MS.NODEV },
  noexec: { set: MS.NOEXEC },
  exec: { clear: MS.NOEXEC },
  sync: { set: MS.SYNCHRONOUS },
  async: { clear: MS.SYNCHRONOUS },
  dirsync: { set: MS.DIRSYNC },
  remount: { set: MS.REMOUNT },
  mand: { set: MS.MANDLOCK },
  nomand: { clear: MS.MANDLOCK },
  atime: { clear: MS.NOATIME },
  noatime: { set: MS.NOATIME },
  diratime: { clear: MS.NODIRATIME },
  nodiratime: { set: MS.NODIRATIME },
  bind: { set: MS.BIND },
  rbind: { set: MS.BIND | MS.REC },
  relatime: { set: MS.RELATIME },
  norelatime: { clear: MS.RELATIME },
  strictatime: { set: MS.STRICTATIME },
  nostrictatime: { clear: MS.STRICTATIME },
  lazytime: { set: MS.LAZYTIME },
  nolazytime: { clear: MS.LAZYTIME },
  nosymfollow: { set: MS.NOSYMFOLLOW },
};

const PROPAGATION_OPTIONS: Record<string, number> = {
  private: MS.PRIVATE,
  rprivate: MS.PRIVATE | MS.REC,
  shared: MS.SHARED,
  rshared: MS.SHARED | MS.REC,
  slave: MS.SLAVE,
  rslave: MS.SLAVE | MS.REC,
  unbindable: MS.UNBINDABLE,
  runbindable: MS.UNBINDABLE | MS.REC,
};

/** Every flag and propagation option mountSteps knows (`tsrun-oci features`). */
export const MOUNT_OPTION_NAMES: readonly string[] = [...Object.keys(FLAG_OPTIONS), ...Object.keys(PROPAGATION_OPTIONS)];

export interface ParsedMountOptions {
  flags: number;
  /** Applied with separate mount calls after the mount itself. */
  propagation: number[];
  /** Filesystem-specific options (mode=755, size=64m, ...). */
  data: string;
}

export function parseMountOptions(options: readonly string[] = []): ParsedMountOptions {
  let flags = 0;
  const propagation: number[] = [];
  const data: string[] = [];
  for (const option of options) {
    const flag = FLAG_OPTIONS[option];
    if (flag) {
      if (flag.set) flags |= flag.set;
      if (flag.clear) flags &= ~flag.clear;
    } else if (option in PROPAGATION_OPTIONS) {
      propagation.push(PROPAGATION_OPTIONS[option]);
    } else {
      data.push(option);
    }
  }
  return { flags, propagation, data: data.join(',') };
}

/**
 * Steps that mount `mount` on `target` (already resolved inside the root).
 * A bind mount ignores most flags on the first call, so read-only and the
 * like are applied with a remount, as mount(8) does. With `root`, the
 * child resolves `target` inside it again when it mounts (StepFlag.InRoot).
 */
export function mountSteps(mount: Mount, target: string, phase: string, root?: string): PlanStep[] {
  const { flags, propagation, data } = parseMountOptions(mount.options);
  const isBind = (flags & MS.BIND) !== 0;
  const type = isBind ? null : (mount.type ?? null);
  if (!isBind && !type) throw new ValidationError(`mounts[${mount.destination}].type`, 'a mount that is not a bind needs a type');
  const detail = `${isBind ? 'bind' : type} from ${mount.source ?? 'none'}`;
  const inRoot = root === undefined ? {} : { flags: StepFlag.InRoot };
  const rootLength = root === undefined ? [] : [0, root.length];
  const steps: PlanStep[] = [
    {
      op: 'Mount',
      ...inRoot,
      args: [isBind ? flags & (MS.BIND | MS.REC) : flags, ...rootLength],
      strs: [mount.source ?? type, target, type, isBind || data === '' ? null : data],
      phase,
      target,
      detail,
    },
  ];
  const remountFlags = flags & ~(MS.BIND | MS.REC | MS.REMOUNT);
  if (isBind && remountFlags !== 0) {
    steps.push({
      op: 'Mount',
      ...inRoot,
      args: [MS.REMOUNT | MS.BIND | remountFlags, ...rootLength],
      strs: [null, target, null, null],
      phase,
      target,
      detail: 'remount of the bind with its flags',
    });
  }
  for (const p of propagation) {
    steps.push({ op: 'Mount', ...inRoot, args: [p, ...rootLength], strs: [null, target, null, null], phase, target, detail: 'propagation' });
  }
  return steps;
}
