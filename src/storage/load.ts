import fs = require('node:fs');
import path = require('node:path');
import { ContentError, DigestMismatchError } from '../errors';
import type { Logger } from '../logger';
import { MediaType, layerMediaType } from '../oci/image-spec';
import { withReadStream } from '../util/streams';
import { decompress, detectCompression } from './compression';
import { checkContent, digestOf, sha256Digest, writeWithDigest } from './digest';
import { isDockerSave, readDockerSave } from './formats/docker-save';
import { isOciLayout, readOciLayout } from './formats/oci-layout';
import type { SourceFiles } from './formats/source-files';
import type { SourceImage } from './formats/source-image';
import type { LayerStore, StagedLayer } from './layers';
import { StagedBlob, StagedImage, StagedImageLayer, ociManifest, stageDocument } from './staged-image';

/**
 * The images of an OCI layout or a docker save archive. Docker 25+ writes
 * both in one archive: the OCI index decides, and manifest.json adds its
 * RepoTags to the same images (by config digest).
 */
export function readSourceImages(files: SourceFiles, subject: string, logger: Logger): SourceImage[] {
  const oci = isOciLayout(files);
  const docker = isDockerSave(files);
  if (!oci && !docker) throw new ContentError(subject, 'not an image archive: it has neither an OCI layout (oci-layout, index.json) nor a docker save manifest.json');
  const images = oci ? readOciLayout(files, subject, logger) : [];
  if (docker) {
    for (const image of readDockerSave(files, subject, logger)) {
      const same = images.find((i) => i.config.digest === image.config.digest);
      if (!same) images.push(image);
      else same.names.push(...image.names.filter((n) => !same.names.includes(n)));
    }
  }
  return images;
}

async function headOf(file: string): Promise<Buffer> {
  const handle = await fs.promises.open(file, 'r');
  try {
    const { buffer, bytesRead } = await handle.read(Buffer.alloc(16), 0, 16, 0);
    return buffer.subarray(0, bytesRead);
  } finally {
    await handle.close();
  }
}

/** The digest of a layer blob's uncompressed content: its diff ID. */
async function uncompressedDigest(file: string, subject: string): Promise<string> {
  return (await withReadStream(file, (input) => digestOf(decompress(input, subject)))).digest;
}

/** Shared by the images of one load: each blob is verified and each layer applied once. */
interface LoadContext {
  files: SourceFiles;
  stagingDir: string;
  layers: LayerStore;
  logger: Logger;
  /** Source file -> its copy in staging (the file itself for an archive) and digest. */
  hashed: Map<string, { file: string; digest: string; size: number }>;
  blobs: Map<string, StagedBlob>;
  applied: Map<string, StagedLayer>;
}

/**
 * A layer blob, verified: against its descriptor when the manifest gives
 * one, and in any case against the config's diff ID, either by applying it
 * (a new layer) or by hashing its uncompressed content (a layer the store
 * has). Without the second check, an image could claim another image's
 * layer by naming its diff ID.
 */
async function stageLayer(context: LoadContext, layer: SourceImage['layers'][number], diffID: string, subject: string): Promise<StagedImageLayer> {
  const layerSubject = `${subject}: layer ${layer.descriptor?.digest ?? layer.name}`;
  let hashed = context.hashed.get(layer.file);
  if (!hashed && context.files.staged) {
    hashed = { file: layer.file, ...(await withReadStream(layer.file, digestOf)) };
  } else if (!hashed) {
    // Read in place from a layout directory: copy into staging while hashing, so what is verified is what gets stored.
    const file = path.join(context.stagingDir, 'layers-in', String(context.hashed.size));
    fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
    hashed = { file, ...(await withReadStream(layer.file, (input) => writeWithDigest(input, file))) };
  }
  context.hashed.set(layer.file, hashed);
  const { file, ...actual } = hashed;
  if (layer.descriptor) checkContent(layerSubject, layer.descriptor, actual);
  const blob = { digest: actual.digest, size: actual.size, mediaType: layer.descriptor?.mediaType ?? layerMediaType(detectCompression(await headOf(file))) };
  if (!context.blobs.has(blob.digest)) context.blobs.set(blob.digest, { digest: blob.digest, file });

  let applied = context.applied.get(diffID);
  if (!applied && context.layers.has(diffID)) {
    const uncompressed = await uncompressedDigest(file, layerSubject);
    if (uncompressed !== diffID) throw new DigestMismatchError(`${layerSubject} (uncompressed)`, diffID, uncompressed);
    context.logger.debug({ diffID }, 'layer already in the store');
  } else if (!applied) {
    applied = await context.layers.stage(file, blob, context.stagingDir, `layer-${context.applied.size}`, diffID, context.logger);
    context.applied.set(diffID, applied);
  }
  return { diffID, blob, blobFile: file, applied };
}

/** Verifies one image's blobs and applies its new layers, all in `<root>/tmp`. */
async function stageImage(context: LoadContext, image: SourceImage, subject: string): Promise<StagedImage> {
  const diffIDs = image.config.parsed.rootfs.diff_ids;
  if (diffIDs.length !== image.layers.length) {
    throw new ContentError(`${subject}: config ${image.config.digest}`, `lists ${diffIDs.length} diff IDs for ${image.layers.length} layers`);
  }
  const layers: StagedImageLayer[] = [];
  for (const [i, layer] of image.layers.entries()) layers.push(await stageLayer(context, layer, diffIDs[i], subject));

  const config = stageDocument(context.stagingDir, image.config.digest, image.config.data);
  let manifest = image.manifest;
  if (!manifest) {
    const data = ociManifest({ mediaType: MediaType.ociConfig, digest: image.config.digest, size: image.config.data.length }, layers);
    manifest = { descriptor: { mediaType: MediaType.ociManifest, digest: sha256Digest(data), size: data.length }, data };
  }
  const staged = stageDocument(context.stagingDir, manifest.descriptor.digest, manifest.data);
  return {
    id: image.config.digest,
    manifest: { digest: manifest.descriptor.digest, mediaType: manifest.descriptor.mediaType, size: manifest.descriptor.size },
    blobs: [staged, config, ...layers.map((l) => context.blobs.get(l.blob.digest) as StagedBlob)],
    layers,
    names: image.names,
  };
}

/**
 * Verifies every blob of the images in `files` and applies their new
 * layers into `stagingDir`; nothing is written to the store itself.
 */
export async function stageImages(files: SourceFiles, subject: string, stagingDir: string, layers: LayerStore, logger: Logger): Promise<StagedImage[]> {
  const context: LoadContext = { files, stagingDir, layers, logger, hashed: new Map(), blobs: new Map(), applied: new Map() };
  const staged: StagedImage[] = [];
  for (const image of readSourceImages(files, subject, logger)) staged.push(await stageImage(context, image, subject));
  return staged;
}
