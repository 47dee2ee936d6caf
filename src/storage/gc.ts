import type { Logger } from '../logger';
import { parseImageConfig, parseManifest } from '../oci/image-spec';
import type { BlobStore } from './blobs';
import type { ContainerStore } from './containers';
import type { ImageRecords } from './image-records';
import type { LayerStore } from './layers';

export interface GcResult {
  /** Diff IDs of the layers removed. */
  layers: string[];
  blobs: string[];
  /** Layer bytes (uncompressed) plus blob bytes freed. */
  bytes: number;
}

export interface GcStores {
  records: ImageRecords;
  blobs: BlobStore;
  layers: LayerStore;
  containers: ContainerStore;
  logger: Logger;
}

/**
 * What the images and containers refer to. References are derived from
 * the records each time, never counted, so a crash cannot leave a count
 * wrong: an image keeps its manifest, config and layer blobs and its
 * layers; a container keeps the layers it was created on (even once its
 * image is removed).
 */
function liveReferences(stores: GcStores): { layers: Set<string>; blobs: Set<string> } {
  const layers = new Set<string>();
  const blobs = new Set<string>();
  for (const record of stores.records.list()) {
    blobs.add(record.id);
    blobs.add(record.manifest);
    try {
      const manifest = parseManifest(stores.blobs.read(record.manifest), `manifest ${record.manifest}`);
      blobs.add(manifest.config.digest);
      manifest.layers.forEach((l) => blobs.add(l.digest));
      parseImageConfig(stores.blobs.read(record.id), `config ${record.id}`).rootfs.diff_ids.forEach((d) => layers.add(d));
    } catch (err) {
      // A damaged image keeps what could be read; collecting must not fail because of it.
      stores.logger.warn({ image: record.id, err: (err as Error).message }, 'cannot read an image while collecting garbage');
    }
  }
  for (const container of stores.containers.list()) (container.layers ?? []).forEach((d) => layers.add(d));
  return { layers, blobs };
}

/**
 * Removes the layers and blobs nothing refers to, and short links left
 * dangling by a crash. The caller holds the store lock exclusively, so no
 * image or container is half-written while references are read.
 */
export function collectGarbage(stores: GcStores, trashDir: string): GcResult {
  const live = liveReferences(stores);
  const result: GcResult = { layers: [], blobs: [], bytes: 0 };
  for (const diffID of stores.layers.list()) {
    if (live.layers.has(diffID)) continue;
    result.bytes += stores.layers.remove(diffID, trashDir);
    result.layers.push(diffID);
  }
  for (const digest of stores.blobs.list()) {
    if (live.blobs.has(digest)) continue;
    result.bytes += stores.blobs.remove(digest);
    result.blobs.push(digest);
  }
  const links = stores.layers.removeDanglingLinks();
  if (result.layers.length + result.blobs.length + links.length > 0) stores.logger.info({ layers: result.layers.length, blobs: result.blobs.length, links: links.length }, 'garbage collected');
  return result;
}
