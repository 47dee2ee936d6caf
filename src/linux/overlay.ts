import { SyscallError, ValidationError, syscallErrorFrom } from '../errors';
import { loadNative } from '../native/index';
import { MNT_DETACH } from './mounts';

/** mount(2) copies at most one page of options; overlayfs has no other way to take its layers. */
const MOUNT_DATA_MAX = 4095;

export interface OverlayLayout {
  /** The directory the other paths are relative to (the store's overlay2/). */
  base: string;
  /** Lower layers, top first, relative to `base` (short links: `l/ABC...`). */
  lower: string[];
  /** Writable layer and overlayfs's work dir, relative to `base`. */
  upper: string;
  work: string;
  /** Absolute mount point. */
  merged: string;
}

/** The option string for `layout`; throws when it does not fit in a page. */
export function overlayOptions(layout: OverlayLayout): string {
  if (layout.lower.length === 0) throw new ValidationError('overlay', 'needs at least one lower layer');
  for (const p of [...layout.lower, layout.upper, layout.work]) {
    if (/[,:\\]/.test(p)) throw new ValidationError('overlay', `layer path ${JSON.stringify(p)} has a character overlayfs options cannot carry (, : \\)`);
  }
  const data = `lowerdir=${layout.lower.join(':')},upperdir=${layout.upper},workdir=${layout.work}`;
  if (data.length > MOUNT_DATA_MAX) {
    throw new ValidationError('overlay', `${layout.lower.length} layers make a ${data.length}-byte option string; the kernel takes at most ${MOUNT_DATA_MAX}`);
  }
  return data;
}

/**
 * Mounts the union of `layout` at `layout.merged` in this mount namespace.
 * The paths are resolved from `layout.base`, so 128 short-linked layers fit
 * in the option string where absolute paths would not.
 */
export function mountOverlay(layout: OverlayLayout): void {
  const data = overlayOptions(layout);
  try {
    loadNative().mountAt(layout.base, 'overlay', layout.merged, 'overlay', 0, data);
  } catch (err) {
    const wrapped = syscallErrorFrom('overlay', err, 'check that the kernel has overlayfs and that the store is not itself on overlayfs');
    throw wrapped instanceof SyscallError ? wrapped : err;
  }
}

/**
 * Detaches the overlay from this mount namespace. A container started on it
 * keeps its own copy of the mount, which goes away with the container.
 */
export function detachOverlay(merged: string): void {
  try {
    loadNative().umount2(merged, MNT_DETACH);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EINVAL' || (err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw syscallErrorFrom('overlay', err);
  }
}
