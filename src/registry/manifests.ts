import { ContentError, DigestMismatchError } from '../errors';
import {
  Descriptor,
  ImageManifest,
  MediaType,
  isIndexDocument,
  isIndexMediaType,
  isManifestMediaType,
  parseIndex,
  parseJson,
  parseManifest,
} from '../oci/image-spec';
import type { Platform } from '../oci/image-spec';
import { pickPlatformManifest } from '../oci/platform';
import { sha256Digest } from '../storage/digest';
import { MANIFEST_ACCEPT, MANIFEST_LIMIT, RegistryClient, pullScope, registryFailure } from './client';
import { readBody } from './http';
import { RemoteReference, formatRemote } from './reference';

/**
 * Manifests from a registry: the OCI image manifest and index, Docker's
 * schema 2 manifest and manifest list. A reference to an index or list
 * resolves to the entry for the wanted platform. Docker's schema 1 is
 * recognised and refused with a message that says what to do.
 */

const SCHEMA1_TYPES = ['application/vnd.docker.distribution.manifest.v1+prettyjws', 'application/vnd.docker.distribution.manifest.v1+json'];
/** Indexes inside indexes are followed this deep. */
const MAX_INDEX_DEPTH = 4;

export interface FetchedManifest {
  descriptor: Descriptor;
  data: Buffer;
}

export interface ResolvedImage {
  /**
   * The digest of what the reference names: the index's for a
   * multi-platform image. Docker prints it as `Digest:`, skopeo inspect
   * reports it, and `name@digest` pulls the same image again.
   */
  digest: string;
  manifest: FetchedManifest & { parsed: ImageManifest };
  /** The index entry's platform, when the reference named an index. */
  platform?: Platform;
}

/** Fetches a manifest or index by tag or digest; one named by digest must hash to it. */
export async function fetchManifest(client: RegistryClient, reference: RemoteReference, tagOrDigest: string, signal?: AbortSignal): Promise<FetchedManifest> {
  const subject = `${reference.domain}/${reference.repository}${tagOrDigest.includes(':') ? `@${tagOrDigest}` : `:${tagOrDigest}`}`;
  const response = await client.request({
    method: 'GET',
    target: `/v2/${reference.repository}/manifests/${tagOrDigest}`,
    scopes: [pullScope(reference.repository)],
    headers: { Accept: MANIFEST_ACCEPT },
    signal,
  });
  if (response.status === 404) throw await registryFailure(response, `manifest for ${subject} not found`, subject);
  if (response.status === 401 || response.status === 403) {
    throw await registryFailure(response, `pull access denied for ${reference.domain}/${reference.repository}, repository does not exist or may require 'tsrun login'`, subject);
  }
  if (response.status !== 200) throw await registryFailure(response, `fetching the manifest for ${subject}`, subject);
  const data = await readBody(response, MANIFEST_LIMIT, `manifest for ${subject}`);
  const digest = sha256Digest(data);
  if (tagOrDigest.startsWith('sha256:') && digest !== tagOrDigest) throw new DigestMismatchError(`manifest for ${subject}`, tagOrDigest, digest);
  const contentType = response.headers['content-type']?.split(';')[0].trim();
  return { descriptor: { mediaType: mediaTypeOf(data, contentType, subject), digest, size: data.length }, data };
}

/**
 * The media type of a manifest: its Content-Type when that names a
 * manifest type, else the document's own mediaType or shape (registries
 * serving a layout from disk may say application/json).
 */
function mediaTypeOf(data: Buffer, contentType: string | undefined, subject: string): string {
  const known = (type: string | undefined): boolean => type !== undefined && (isIndexMediaType(type) || isManifestMediaType(type) || SCHEMA1_TYPES.includes(type));
  if (known(contentType)) return contentType as string;
  const document = parseJson(data, `manifest for ${subject}`) as { mediaType?: unknown; schemaVersion?: unknown; config?: unknown };
  if (typeof document.mediaType === 'string' && known(document.mediaType)) return document.mediaType;
  if (document.schemaVersion === 1) return SCHEMA1_TYPES[0];
  if (isIndexDocument(document)) return MediaType.ociIndex;
  if (document.config !== undefined) return MediaType.ociManifest;
  throw new ContentError(`manifest for ${subject}`, `unsupported media type ${contentType ?? 'none'}: not an image manifest or index`);
}

/**
 * What `reference` names, down to the image manifest for `platform`: an
 * index is resolved by platform, and the chosen manifest checked against
 * the index's descriptor.
 */
export async function resolveImage(client: RegistryClient, reference: RemoteReference, platform: Platform, signal?: AbortSignal): Promise<ResolvedImage> {
  const top = await fetchManifest(client, reference, reference.digest ?? (reference.tag as string), signal);
  let current = top;
  let chosen: Platform | undefined;
  for (let depth = 0; ; depth++) {
    const subject = `manifest ${current.descriptor.digest} of ${formatRemote(reference)}`;
    const type = current.descriptor.mediaType;
    if (SCHEMA1_TYPES.includes(type)) {
      throw new ContentError(
        formatRemote(reference),
        `the registry serves it as a Docker image manifest schema 1 (${type}), which tsrun does not support: schema 1 was deprecated in 2017 and is being removed from registries; push the image again with a current Docker, podman or skopeo, which write schema 2 or OCI`,
      );
    }
    if (!isIndexMediaType(type)) return { digest: top.descriptor.digest, manifest: { ...current, parsed: parseManifest(current.data, subject) }, ...(chosen ? { platform: chosen } : {}) };
    if (depth === MAX_INDEX_DEPTH) throw new ContentError(subject, `image indexes nested more than ${MAX_INDEX_DEPTH} deep`);
    const entry = pickPlatformManifest(parseIndex(current.data, subject).manifests, platform, `${formatRemote(reference)} (index ${current.descriptor.digest})`);
    chosen = entry.platform ?? chosen;
    const fetched = await fetchManifest(client, reference, entry.digest, signal);
    if (fetched.data.length !== entry.size) throw new ContentError(`manifest ${entry.digest} of ${formatRemote(reference)}`, `size mismatch: the index says ${entry.size} bytes, the registry sent ${fetched.data.length}`);
    current = { descriptor: { ...fetched.descriptor, mediaType: isIndexMediaType(entry.mediaType) || isManifestMediaType(entry.mediaType) ? entry.mediaType : fetched.descriptor.mediaType }, data: fetched.data };
  }
}

