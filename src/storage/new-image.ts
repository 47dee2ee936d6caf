import fs = require('node:fs');
import path = require('node:path');
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Logger } from '../logger';
import { ImageConfigChanges, applyChanges } from '../oci/image-changes';
import { Descriptor, HistoryEntry, ImageConfig, MediaType } from '../oci/image-spec';
import { hostPlatform } from '../oci/platform';
import { writeClosed } from '../util/streams';
import { compress } from './compression';
import { DigestStream, sha256Digest } from './digest';
import type { LayerStore } from './layers';
import { StagedImage, StagedImageLayer, ociManifest, stageDocument } from './staged-image';

/**
 * Images tsrun makes itself: `import` (a root filesystem tar as a one-layer
 * image) and `commit` (a parent image plus one layer). The layer is stored
 * gzip-compressed, the manifest and config are OCI's.
 */

/**
 * Compresses an uncompressed layer tar into a gzip blob in `stagingDir`,
 * hashing both sides on the way: the blob's digest and the layer's diff ID
 * come out of one pass.
 */
async function compressLayer(tar: Readable, stagingDir: string): Promise<{ file: string; diffID: string; blob: StagedImageLayer['blob'] }> {
  const file = path.join(stagingDir, 'layer.tar.gz');
  const uncompressed = new DigestStream();
  const compressed = new DigestStream();
  const output = fs.createWriteStream(file, { flags: 'wx', mode: 0o644, flush: true });
  try {
    await pipeline(tar, uncompressed, compress('gzip'), compressed, output);
  } finally {
    await writeClosed(output);
  }
  return { file, diffID: uncompressed.digest(), blob: { digest: compressed.digest(), size: compressed.size, mediaType: MediaType.ociLayerGzip } };
}

export interface NewImageOptions {
  /** The image the new layer goes on (its config, and its manifest's layer descriptors); null for an imported root filesystem. */
  parent: { config: ImageConfig; layers: Descriptor[] } | null;
  /** Where the parent's layer blobs are: the store's blob paths. */
  blobPath: (digest: string) => string;
  changes: ImageConfigChanges;
  history: Omit<HistoryEntry, 'created'>;
  author?: string;
  names: string[];
}

/**
 * Stages a new image made of the parent's layers and config plus one
 * layer from `tar` (an uncompressed tar). The layer is applied unless the
 * store has its diff ID; applying it also checks that it is a valid layer.
 */
export async function stageNewImage(tar: Readable, stagingDir: string, layers: LayerStore, logger: Logger, options: NewImageOptions): Promise<StagedImage> {
  const parent = options.parent?.config;
  const platform = hostPlatform();
  return stageImage(tar, stagingDir, layers, logger, {
    parentLayers: options.parent?.layers ?? [],
    parentDiffIDs: parent?.rootfs.diff_ids ?? [],
    blobPath: options.blobPath,
    names: options.names,
    config: (diffIDs, created) => {
      const config: ImageConfig = {
        ...(parent ?? { architecture: platform.architecture, os: platform.os, ...(platform.variant ? { variant: platform.variant } : {}) }),
        created,
        config: applyChanges(parent?.config, options.changes),
        rootfs: { type: 'layers', diff_ids: diffIDs },
        history: [...(parent?.history ?? []), { created, ...options.history }],
      };
      if (options.author !== undefined) config.author = options.author;
      else delete config.author;
      return config;
    },
  });
}

export interface ImageParts {
  /** The manifest's descriptors of the layers below the new one, and their diff IDs. */
  parentLayers: Descriptor[];
  parentDiffIDs: string[];
  blobPath: (digest: string) => string;
  /** The new image's config, given every diff ID (the parent's, then the new layer's if there is one) and the time. */
  config: (diffIDs: string[], created: string) => ImageConfig;
  names: string[];
}

/**
 * Stages an image made of `parentLayers`, plus one layer from `tar` (an
 * uncompressed tar) when there is one, with the config `parts.config`
 * makes. The layer is applied unless the store has its diff ID; applying
 * it also checks that it is a valid layer.
 */
export async function stageImage(tar: Readable | null, stagingDir: string, layers: LayerStore, logger: Logger, parts: ImageParts): Promise<StagedImage> {
  const added = tar === null ? null : await compressLayer(tar, stagingDir);
  const applied = added === null || layers.has(added.diffID) ? undefined : await layers.stage(added.file, added.blob, stagingDir, 'layer', added.diffID, logger);
  const created = new Date().toISOString();
  const config = parts.config([...parts.parentDiffIDs, ...(added ? [added.diffID] : [])], created);
  const configData = Buffer.from(JSON.stringify(config));
  const configBlob = stageDocument(stagingDir, sha256Digest(configData), configData);

  const imageLayers: StagedImageLayer[] = parts.parentLayers.map((descriptor, i) => ({
    diffID: config.rootfs.diff_ids[i],
    blob: { digest: descriptor.digest, mediaType: descriptor.mediaType, size: descriptor.size },
    blobFile: parts.blobPath(descriptor.digest),
  }));
  if (added) imageLayers.push({ diffID: added.diffID, blob: added.blob, blobFile: added.file, applied });
  const manifestData = ociManifest({ mediaType: MediaType.ociConfig, digest: configBlob.digest, size: configData.length }, imageLayers);
  const manifest = stageDocument(stagingDir, sha256Digest(manifestData), manifestData);
  return {
    id: configBlob.digest,
    manifest: { digest: manifest.digest, mediaType: MediaType.ociManifest, size: manifestData.length },
    // The parent's blobs are in the store already; publishing checks they still are.
    blobs: [manifest, configBlob, ...(added ? [{ digest: added.blob.digest, file: added.file }] : [])],
    layers: imageLayers,
    names: parts.names,
  };
}
