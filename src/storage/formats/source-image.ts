import fs = require('node:fs');
import { ContentError } from '../../errors';
import type { Logger } from '../../logger';
import type { Descriptor, ImageConfig } from '../../oci/image-spec';
import { checkContent, sha256Digest } from '../digest';
import { parseTagReference } from '../references';
import type { SourceFiles } from './source-files';

/** One image found in an archive or layout, its small documents read and verified, its layers not yet. */
export interface SourceImage {
  /** `name:tag`s (familiar form) to tag it with. */
  names: string[];
  /** The manifest as found; absent in a Docker save archive of before Docker 25, which has none. */
  manifest?: { descriptor: Descriptor; data: Buffer };
  config: { digest: string; data: Buffer; parsed: ImageConfig };
  /** Lowest first. `descriptor` (digest, size, media type) comes from the manifest, when there is one. */
  layers: { file: string; descriptor?: Descriptor; name: string }[];
}

/** Manifests, indexes and configs are read into memory: refuse absurd sizes rather than exhaust it. */
const MAX_DOCUMENT_SIZE = 16 * 1024 * 1024;

/** `blobs/sha256/<hex>` in an OCI layout. */
export function blobPath(digest: string): string {
  return `blobs/${digest.replace(':', '/')}`;
}

/** The file of a blob the layout must have; its size is checked against the descriptor. */
export function findBlob(files: SourceFiles, descriptor: Pick<Descriptor, 'digest' | 'size'>, subject: string): string {
  const file = files.find(blobPath(descriptor.digest));
  if (file === undefined) throw new ContentError(subject, `blob ${descriptor.digest} is missing`);
  return file;
}

/** Reads a small document named by a descriptor and verifies its size and digest. */
export function readDocument(files: SourceFiles, descriptor: Pick<Descriptor, 'digest' | 'size'>, subject: string): Buffer {
  const file = findBlob(files, descriptor, subject);
  const size = fs.statSync(file).size;
  if (size > MAX_DOCUMENT_SIZE) throw new ContentError(subject, `${size} bytes is too large for a JSON document`);
  const data = fs.readFileSync(file);
  checkContent(subject, descriptor, { digest: sha256Digest(data), size: data.length });
  return data;
}

/** Reads a file that is not content-addressed (index.json, manifest.json). */
export function readNamedFile(files: SourceFiles, name: string, subject: string): Buffer {
  const file = files.find(name);
  if (file === undefined) throw new ContentError(subject, `${name} is missing`);
  if (fs.statSync(file).size > MAX_DOCUMENT_SIZE) throw new ContentError(subject, `${name} is too large`);
  return fs.readFileSync(file);
}

/**
 * `text` as a tag in familiar form, or undefined (with a warning) when it
 * is not a valid `name[:tag]`: a bad name should not make a good image
 * unloadable.
 */
export function tagFromArchive(text: string, subject: string, logger: Logger): string | undefined {
  try {
    return parseTagReference(text);
  } catch (err) {
    logger.warn({ subject, name: text, err: (err as Error).message }, 'ignoring an image name that is not a valid reference');
    return undefined;
  }
}
