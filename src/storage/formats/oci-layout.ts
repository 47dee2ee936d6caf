import { ContentError } from '../../errors';
import type { Logger } from '../../logger';
import {
  Annotation,
  Descriptor,
  ImageIndex,
  MediaType,
  isIndexDocument,
  isIndexMediaType,
  isManifestMediaType,
  parseImageConfig,
  parseIndex,
  parseJson,
  parseManifest,
} from '../../oci/image-spec';
import { formatPlatform, hostPlatform, pickPlatformManifest, platformMatches } from '../../oci/platform';
import { fullyQualified } from '../references';
import type { SourceFiles } from './source-files';
import { SourceImage, blobPath, findBlob, readDocument, readNamedFile, tagFromArchive } from './source-image';

/**
 * The OCI image layout (image-spec, image-layout.md): `oci-layout`,
 * `index.json` and `blobs/<alg>/<hex>`, as a directory or a tar of one.
 * Docker 25+'s `docker save` writes one too, with a manifest.json beside it.
 */

export const OCI_LAYOUT_FILE = 'oci-layout';
export const OCI_LAYOUT_VERSION = '1.0.0';

/** Nested indexes are followed this deep (content addressing rules out loops; this bounds the work). */
const MAX_INDEX_DEPTH = 4;

export function isOciLayout(files: SourceFiles): boolean {
  return files.find(OCI_LAYOUT_FILE) !== undefined && files.find('index.json') !== undefined;
}

/**
 * The names an index.json entry gives its image. containerd (and Docker
 * 25+) put the full name in io.containerd.image.name and only the tag in
 * ref.name; skopeo, podman and tsrun put a full `name:tag` in ref.name. A
 * bare tag (`latest`, as `skopeo copy ... oci:DIR:latest` writes) names no
 * repository, so it cannot tag an image here.
 */
function namesOf(descriptor: Descriptor, subject: string, logger: Logger): string[] {
  const annotations = descriptor.annotations ?? {};
  const full = annotations[Annotation.containerdImageName] ?? annotations[Annotation.refName];
  if (full === undefined || !/[:/]/.test(full)) return [];
  const tag = tagFromArchive(full, subject, logger);
  return tag === undefined ? [] : [tag];
}

/** Follows index entries down to the manifest for this host. */
function resolveManifest(files: SourceFiles, descriptor: Descriptor, subject: string, depth: number): { descriptor: Descriptor; data: Buffer } {
  const what = `${subject}: manifest ${descriptor.digest}`;
  const data = readDocument(files, descriptor, what);
  const isIndex = isIndexMediaType(descriptor.mediaType) || (!isManifestMediaType(descriptor.mediaType) && isIndexDocument(parseJson(data, what)));
  if (!isIndex) return { descriptor, data };
  if (depth >= MAX_INDEX_DEPTH) throw new ContentError(what, `image indexes nested more than ${MAX_INDEX_DEPTH} deep`);
  return resolveManifest(files, pickPlatformManifest(parseIndex(data, what).manifests, hostPlatform(), what), subject, depth + 1);
}

/**
 * The images an OCI layout's index.json lists, one per distinct config.
 * Entries for another platform are skipped; it is an error only when
 * nothing is left.
 */
export function readOciLayout(files: SourceFiles, subject: string, logger: Logger): SourceImage[] {
  const layout = parseJson(readNamedFile(files, OCI_LAYOUT_FILE, subject), `${subject}: ${OCI_LAYOUT_FILE}`) as { imageLayoutVersion?: unknown };
  if (typeof layout?.imageLayoutVersion !== 'string') throw new ContentError(`${subject}: ${OCI_LAYOUT_FILE}`, 'imageLayoutVersion is missing');
  const index = parseIndex(readNamedFile(files, 'index.json', subject), `${subject}: index.json`);
  const host = hostPlatform();
  const byConfig = new Map<string, SourceImage>();
  const skipped: string[] = [];
  for (const entry of index.manifests) {
    if (entry.platform && !platformMatches(entry.platform, host)) {
      skipped.push(formatPlatform(entry.platform));
      continue;
    }
    const manifest = resolveManifest(files, entry, subject, 0);
    const manifestSubject = `${subject}: manifest ${manifest.descriptor.digest}`;
    const parsed = parseManifest(manifest.data, manifestSubject);
    const names = namesOf(entry, subject, logger);
    const known = byConfig.get(parsed.config.digest);
    if (known) {
      known.names.push(...names.filter((n) => !known.names.includes(n)));
      continue;
    }
    const configSubject = `${subject}: config ${parsed.config.digest}`;
    const configData = readDocument(files, parsed.config, configSubject);
    byConfig.set(parsed.config.digest, {
      names,
      manifest: { descriptor: { mediaType: parsed.mediaType ?? manifest.descriptor.mediaType, digest: manifest.descriptor.digest, size: manifest.descriptor.size }, data: manifest.data },
      config: { digest: parsed.config.digest, data: configData, parsed: parseImageConfig(configData, configSubject) },
      layers: parsed.layers.map((layer) => ({ file: findBlob(files, layer, `${subject}: layer ${layer.digest}`), descriptor: layer, name: blobPath(layer.digest) })),
    });
  }
  if (byConfig.size === 0) {
    throw new ContentError(subject, skipped.length > 0 ? `no image for ${formatPlatform(host)} (the layout has ${skipped.join(', ')})` : 'index.json lists no images');
  }
  return [...byConfig.values()];
}

/** The index.json entry for one tag of a saved image (or for an untagged image when `tag` is undefined). */
export function indexEntry(manifest: Descriptor, tag: string | undefined): Descriptor {
  const entry: Descriptor = { mediaType: manifest.mediaType, digest: manifest.digest, size: manifest.size };
  // The full name in ref.name (as skopeo and podman read it) and in
  // containerd's annotation (as Docker 25+ reads it).
  if (tag !== undefined) entry.annotations = { [Annotation.containerdImageName]: fullyQualified(tag), [Annotation.refName]: tag };
  return entry;
}

export function ociIndex(entries: Descriptor[]): ImageIndex {
  return { schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: entries };
}
