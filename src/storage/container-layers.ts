import fs = require('node:fs');
import path = require('node:path');
import type { OverlayLayout } from '../linux/overlay';
import { randomBase32 } from '../util/random';
import { InitLayerOptions, writeInitLayer } from './init-layer';

/** Docker's short link length: 26 base32 characters. */
const SHORT_LINK_LENGTH = 26;

export function overlayRoot(storeRoot: string): string {
  return path.join(storeRoot, 'overlay2');
}

/**
 * Creates `overlay2/l/<short> -> ../<dirName>/diff` under a fresh random
 * short name and returns the name, so that the mount option string of many
 * layers stays under a page. The link may dangle for a moment when it is
 * made before the directory it names is renamed into place.
 */
export function linkShortName(overlay: string, dirName: string): string {
  fs.mkdirSync(path.join(overlay, 'l'), { recursive: true, mode: 0o700 });
  for (;;) {
    const short = randomBase32(SHORT_LINK_LENGTH);
    try {
      fs.symlinkSync(`../${dirName}/diff`, path.join(overlay, 'l', short));
      return short;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
  }
}

/** Links `overlay2/<dir>/diff` under a short name and records it in `overlay2/<dir>/link`. */
export function createShortLink(overlay: string, dir: string): string {
  const short = linkShortName(overlay, dir);
  fs.writeFileSync(path.join(overlay, dir, 'link'), short, { mode: 0o644 });
  return short;
}

/** Removes `overlay2/<dir>` and its short link; a missing one is not an error. */
export function removeLayerDir(overlay: string, dir: string): void {
  try {
    fs.rmSync(path.join(overlay, 'l', fs.readFileSync(path.join(overlay, dir, 'link'), 'utf8').trim()), { force: true });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  fs.rmSync(path.join(overlay, dir), { recursive: true, force: true });
}

export function initLayerName(containerId: string): string {
  return `${containerId}-init`;
}

/**
 * A container's two layers over its image, as Docker's overlay2 makes them:
 * `<id>-init` (hostname, hosts, resolv.conf, mount points) and `<id>` (the
 * writable layer: diff, work, merged, and `lower`, the short links of
 * every layer below it, top first). `imageLinks` are the image's short
 * links, lowest layer first.
 */
export function createContainerLayers(storeRoot: string, containerId: string, imageLinks: string[], init: InitLayerOptions): OverlayLayout {
  const overlay = overlayRoot(storeRoot);
  const initName = initLayerName(containerId);
  try {
    fs.mkdirSync(path.join(overlay, initName, 'diff'), { recursive: true, mode: 0o755 });
    writeInitLayer(path.join(overlay, initName, 'diff'), init);
    const initLink = createShortLink(overlay, initName);
    for (const sub of ['diff', 'work', 'merged']) fs.mkdirSync(path.join(overlay, containerId, sub), { recursive: true, mode: 0o755 });
    createShortLink(overlay, containerId);
    const lower = [initLink, ...[...imageLinks].reverse()].map((short) => `l/${short}`);
    fs.writeFileSync(path.join(overlay, containerId, 'lower'), lower.join(':'), { mode: 0o644 });
    return { base: overlay, lower, upper: `${containerId}/diff`, work: `${containerId}/work`, merged: path.join(overlay, containerId, 'merged') };
  } catch (err) {
    removeContainerLayers(storeRoot, containerId);
    throw err;
  }
}

/** The layout of an existing container's layers (from its `lower` file). */
export function containerLayout(storeRoot: string, containerId: string): OverlayLayout {
  const overlay = overlayRoot(storeRoot);
  const lower = fs.readFileSync(path.join(overlay, containerId, 'lower'), 'utf8').trim().split(':');
  return { base: overlay, lower, upper: `${containerId}/diff`, work: `${containerId}/work`, merged: path.join(overlay, containerId, 'merged') };
}

export function removeContainerLayers(storeRoot: string, containerId: string): void {
  const overlay = overlayRoot(storeRoot);
  removeLayerDir(overlay, containerId);
  removeLayerDir(overlay, initLayerName(containerId));
}
