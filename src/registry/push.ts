import fs = require('node:fs');
import { AuthError, ValidationError } from '../errors';
import { silentLogger } from '../logger';
import { Descriptor, parseManifest } from '../oci/image-spec';
import { splitRepository } from '../storage/references';
import type { SavedImage } from '../storage/save';
import type { Store } from '../storage/store';
import { mapLimited } from '../util/limited';
import { RegistryOptions, clientFor, pushScope, registryFailure } from './client';
import { LayerProgress, ProgressListener, shortDigest } from './progress';
import { familiarRemote, formatRemote, parseRemoteReference } from './reference';
import { DEFAULT_RETRY } from './retry';
import { BlobSource, uploadBlob } from './upload';

/**
 * `docker push`: the layers and the config of a local image, then its
 * manifest, byte for byte as the store has it, so the digest the
 * registry gives it is the one tsrun computed.
 */

export interface PushOptions extends RegistryOptions {
  /** Blobs uploaded at once (Docker's max-concurrent-uploads); default 5. */
  maxConcurrentUploads?: number;
  /** Blobs larger than this go up in chunks of this size; default 64 MiB. */
  chunkSize?: number;
  onProgress?: ProgressListener;
}

export interface PushResult {
  /** `127.0.0.1:5000/app:1`, fully qualified. */
  reference: string;
  tag: string;
  /** The manifest's digest, as the registry stores it. */
  digest: string;
  /** The manifest's size in bytes. */
  size: number;
  /** Blob digests by what happened to them. */
  pushed: string[];
  mounted: string[];
  existing: string[];
}

const DEFAULT_CONCURRENT_UPLOADS = 5;
const DEFAULT_CHUNK_SIZE = 64 * 1024 * 1024;

/** Pushes the local image `reference` names (`host/repo:tag`) to that repository. */
export async function pushImage(store: Store, reference: string, options: PushOptions = {}): Promise<PushResult> {
  const remote = parseRemoteReference(reference);
  if (remote.tag === undefined) throw new ValidationError('reference', `cannot push a digest reference (${reference}): push a tag`);
  const logger = options.logger ?? silentLogger;
  const concurrency = Math.max(1, options.maxConcurrentUploads ?? DEFAULT_CONCURRENT_UPLOADS);
  const image = await store.openImage(familiarRemote(remote));
  const client = clientFor(remote.domain, options, concurrency + 1);
  const aborter = new AbortController();
  const signal = options.signal ? AbortSignal.any([options.signal, aborter.signal]) : aborter.signal;
  try {
    const manifest = parseManifest(image.manifestData, `manifest ${image.manifest.digest}`);
    const sources = blobSources(image, manifest.config, manifest.layers);
    const result: PushResult = { reference: formatRemote(remote), tag: remote.tag, digest: image.manifest.digest, size: image.manifestData.length, pushed: [], mounted: [], existing: [] };
    const [config, ...layers] = sources;
    // Progress is per layer, as Docker shows it; the config goes up unannounced.
    const report = (source: BlobSource, progress: Omit<LayerProgress, 'id'>): void => {
      if (source !== config) options.onProgress?.({ id: shortDigest(source.descriptor.digest), ...progress });
    };
    layers.forEach((layer) => report(layer, { status: 'Preparing' }));
    const push = async (source: BlobSource): Promise<void> => {
      const { digest, size } = source.descriptor;
      const mountFrom = store
        .repositoriesWithBlob(digest)
        .map((name) => splitRepository(name))
        .filter((r) => r.domain === remote.domain && r.path !== remote.repository)
        .map((r) => r.path);
      const outcome = await uploadBlob(client, remote.repository, source, {
        mountFrom,
        chunkSize: options.chunkSize ?? DEFAULT_CHUNK_SIZE,
        retry: options.retry ?? DEFAULT_RETRY,
        logger,
        signal,
        onProgress: (bytes) => report(source, { status: 'Pushing', current: bytes, total: size }),
      });
      if (outcome.kind === 'exists') {
        result.existing.push(digest);
        report(source, { status: 'Layer already exists' });
      } else if (outcome.kind === 'mounted') {
        result.mounted.push(digest);
        report(source, { status: 'Mounted', detail: outcome.from });
      } else {
        result.pushed.push(digest);
        report(source, { status: 'Pushed' });
      }
    };
    const unique = layers.filter((layer, i) => layers.findIndex((other) => other.descriptor.digest === layer.descriptor.digest) === i);
    // The layers first and the config last, as Docker does: a registry sees no config of an image whose layers are missing.
    await mapLimited(unique, concurrency, push, () => aborter.abort(new Error('push aborted: another blob failed')));
    await push(config);

    const response = await client.request({
      method: 'PUT',
      target: `/v2/${remote.repository}/manifests/${remote.tag}`,
      scopes: [pushScope(remote.repository)],
      headers: { 'Content-Type': image.manifest.mediaType, 'Content-Length': String(image.manifestData.length) },
      body: image.manifestData,
      signal,
    });
    if (response.status !== 201) throw await registryFailure(response, `${formatRemote(remote)}: the registry refused the manifest`, formatRemote(remote));
    response.body.resume();
    const stored = response.headers['docker-content-digest'];
    if (typeof stored === 'string' && stored !== image.manifest.digest) logger.warn({ reference: result.reference, sent: image.manifest.digest, stored }, 'the registry stored the manifest under another digest');
    logger.info({ reference: result.reference, digest: result.digest, pushed: result.pushed.length, mounted: result.mounted.length, existing: result.existing.length }, 'pushed');
    return result;
  } catch (err) {
    if (!(err instanceof AuthError)) throw err;
    const repository = `${remote.domain}/${remote.repository}`;
    throw new AuthError(`push access denied for ${repository}, repository does not exist or may require 'tsrun login'`, { url: err.url, status: err.status ?? 401, reference: formatRemote(remote), registryCode: err.registryCode }, { cause: err });
  } finally {
    client.close();
    image.close();
  }
}

/** The config first, then the layers, each read from the image's open blob. */
function blobSources(image: SavedImage, config: Descriptor, layers: Descriptor[]): BlobSource[] {
  const source = (descriptor: Descriptor, fd: number): BlobSource => ({
    descriptor,
    read: (start, end) => fs.createReadStream('', { fd, start, end: end - 1, autoClose: false }),
  });
  return [source(config, image.config.fd), ...layers.map((layer, i) => source(layer, image.layers[i].fd))];
}
