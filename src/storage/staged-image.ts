import fs = require('node:fs');
import path = require('node:path');
import { Descriptor, ImageManifest, MediaType } from '../oci/image-spec';
import type { LayerRecord, StagedLayer } from './layers';
import { digestHex } from './digest';

/** A verified blob in `<root>/tmp`, fsynced, ready to be renamed into blobs/. */
export interface StagedBlob {
  digest: string;
  file: string;
}

/** One layer of a staged image. */
export interface StagedImageLayer {
  diffID: string;
  blob: LayerRecord['blob'];
  /** The verified blob, kept so the layer can still be applied if it vanishes before publishing. */
  blobFile: string;
  /** The applied layer, unless the store already had this diff ID when the image was staged. */
  applied?: StagedLayer;
}

/**
 * An image whose every piece is verified and waiting in `<root>/tmp`:
 * what load, import and commit prepare outside the store lock, and
 * publish under it.
 */
export interface StagedImage {
  /** The config digest. */
  id: string;
  manifest: { digest: string; mediaType: string; size: number };
  /** Manifest, config and layer blobs. */
  blobs: StagedBlob[];
  /** Lowest first, as the config's diff_ids. */
  layers: StagedImageLayer[];
  /** `name:tag`s (familiar form). */
  names: string[];
  /** `name@sha256:...`s it was pulled by (familiar form), which may be an index's digest rather than `manifest`'s. */
  repoDigests?: string[];
  /** The image a build step made this one on. */
  parent?: string;
}

/** Writes a small document (manifest, config) as a staged blob, fsynced. */
export function stageDocument(stagingDir: string, digest: string, data: Buffer): StagedBlob {
  const dir = path.join(stagingDir, 'documents');
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const file = path.join(dir, digestHex(digest));
  if (!fs.existsSync(file)) {
    const fd = fs.openSync(file, 'wx', 0o644);
    try {
      fs.writeFileSync(fd, data);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
  }
  return { digest, file };
}

/** An OCI manifest for a config and layers (for images tsrun makes, and for docker save archives, which have none). */
export function ociManifest(config: Descriptor, layers: Pick<StagedImageLayer, 'blob'>[]): Buffer {
  const manifest: ImageManifest = {
    schemaVersion: 2,
    mediaType: MediaType.ociManifest,
    config,
    layers: layers.map((l) => ({ mediaType: l.blob.mediaType, digest: l.blob.digest, size: l.blob.size })),
  };
  return Buffer.from(JSON.stringify(manifest));
}
