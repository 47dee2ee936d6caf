import { createHash } from 'node:crypto';
import fs = require('node:fs');
import path = require('node:path');
import { PassThrough, Writable } from 'node:stream';
import { ContentError, NotFoundError, syscallErrorFrom } from '../errors';
import type { Logger } from '../logger';
import { silentLogger } from '../logger';
import { Descriptor, ImageConfig, Platform, parseImageConfig } from '../oci/image-spec';
import { formatPlatform, hostPlatform, parsePlatform, platformMatches } from '../oci/platform';
import { checkContent, digestHex, sha256Digest } from '../storage/digest';
import { parseImageReference } from '../storage/references';
import type { StagedBlob, StagedImage, StagedImageLayer } from '../storage/staged-image';
import type { Image, ImageStaging, Store } from '../storage/store';
import { mapLimited } from '../util/limited';
import { withReadStream } from '../util/streams';
import { BlobDownloadOptions, blobChunks } from './blob-download';
import { RegistryClient, RegistryOptions, clientFor } from './client';
import { ResolvedImage, resolveImage } from './manifests';
import { LayerProgress, ProgressListener, shortDigest } from './progress';
import { RemoteReference, familiarRemote, formatRemote, parseRemoteReference } from './reference';
import { DEFAULT_RETRY } from './retry';

/**
 * `docker pull`: the manifest for the platform, then the config, then the
 * layers the store lacks, several at once. Each layer is hashed, written
 * to staging and applied in one pass as it arrives; its digest and size
 * are checked at the end, before anything is published, so a bad blob
 * leaves nothing in the store.
 */

export interface PullOptions extends RegistryOptions {
  /** `os/arch[/variant]` or a Platform; default the host's. */
  platform?: string | Platform;
  /** Layers downloaded at once (Docker's max-concurrent-downloads); default 3. */
  maxConcurrentDownloads?: number;
  onProgress?: ProgressListener;
}

export interface PullResult {
  /** Fully qualified, as `docker pull` ends with: `docker.io/library/busybox:latest`. */
  reference: string;
  /** What the reference resolved to in the registry: an index's digest for a multi-platform image. */
  digest: string;
  image: Image;
  /** The platform of the image pulled. */
  platform: Platform;
  /** Layer blobs downloaded: 0 when the store had every one. */
  downloadedLayers: number;
  downloadedBytes: number;
  /** The reference already named this very image here. */
  upToDate: boolean;
}

const DEFAULT_CONCURRENT_DOWNLOADS = 3;
/** Image configs are read into memory. */
const CONFIG_LIMIT = 16 * 1024 * 1024;
/** Bytes queued for a layer's extraction before the download waits for it. */
const APPLY_BUFFER = 1024 * 1024;

/** Pulls `reference` into `store` and tags it; see the module comment. */
export async function pullImage(store: Store, reference: string, options: PullOptions = {}): Promise<PullResult> {
  const remote = parseRemoteReference(reference);
  const wanted = typeof options.platform === 'string' ? parsePlatform(options.platform) : (options.platform ?? hostPlatform());
  const logger = options.logger ?? silentLogger;
  const concurrency = Math.max(1, options.maxConcurrentDownloads ?? DEFAULT_CONCURRENT_DOWNLOADS);
  const before = imageIdOf(store, familiarRemote(remote));
  const client = clientFor(remote.domain, options, concurrency + 1);
  try {
    const resolved = await resolveImage(client, remote, wanted, options.signal);
    const pull = new LayerPull(client, remote, resolved, wanted, options, logger, concurrency);
    const image = await store.addImage('pull', (staging) => pull.stage(staging));
    logger.info({ reference: formatRemote(remote), digest: resolved.digest, image: image.id, layers: pull.downloadedLayers }, 'pulled');
    return {
      reference: formatRemote(remote),
      digest: resolved.digest,
      image,
      platform: platformOf(image.config),
      downloadedLayers: pull.downloadedLayers,
      downloadedBytes: pull.downloadedBytes,
      upToDate: before === image.id,
    };
  } finally {
    client.close();
  }
}

/**
 * The image `reference` names in the store, pulled first when the store
 * has none (as `docker run` does). An image id that is not there is not
 * pulled: it names nothing in a registry.
 */
export async function pullIfMissing(store: Store, reference: string, options: PullOptions & { onMissing?: (reference: string) => void } = {}): Promise<Image> {
  const local = localImage(store, reference);
  if (local) return local;
  options.onMissing?.(reference);
  return (await pullImage(store, reference, options)).image;
}

/** The store's image for `reference`, or undefined when a pull may fetch it; an image id is never pulled, so a missing one is an error. */
export function localImage(store: Store, reference: string): Image | undefined {
  try {
    return store.resolve(reference);
  } catch (err) {
    if (!(err instanceof NotFoundError) || parseImageReference(reference).kind === 'id') throw err;
    return undefined;
  }
}

function imageIdOf(store: Store, reference: string): string | undefined {
  try {
    return store.resolve(reference).id;
  } catch (err) {
    if (err instanceof NotFoundError) return undefined;
    throw err;
  }
}

/** The part of a pull that runs in the store's staging directory. */
class LayerPull {
  downloadedLayers = 0;
  downloadedBytes = 0;
  private readonly aborter = new AbortController();
  private readonly signal: AbortSignal;

  constructor(
    private readonly client: RegistryClient,
    private readonly remote: RemoteReference,
    private readonly resolved: ResolvedImage,
    private readonly wanted: Platform,
    private readonly options: PullOptions,
    private readonly logger: Logger,
    private readonly concurrency: number,
  ) {
    this.signal = options.signal ? AbortSignal.any([options.signal, this.aborter.signal]) : this.aborter.signal;
  }

  private progress(event: LayerProgress): void {
    this.options.onProgress?.(event);
  }

  async stage(staging: ImageStaging): Promise<StagedImage> {
    const { manifest } = this.resolved;
    const configDescriptor = manifest.parsed.config;
    const configData = staging.hasBlob(configDescriptor.digest) ? staging.readBlob(configDescriptor.digest) : await this.fetchConfig(configDescriptor);
    const config = parseImageConfig(configData, `config ${configDescriptor.digest} of ${formatRemote(this.remote)}`);
    const diffIDs = config.rootfs.diff_ids;
    const layers = manifest.parsed.layers;
    if (diffIDs.length !== layers.length) {
      throw new ContentError(`config ${configDescriptor.digest} of ${formatRemote(this.remote)}`, `lists ${diffIDs.length} diff IDs for the manifest's ${layers.length} layers`);
    }
    this.checkPlatform(config);

    layers.forEach((layer, i) => {
      if (!staging.hasBlob(layer.digest) || !staging.hasLayerFrom(diffIDs[i], layer.digest)) this.progress({ id: shortDigest(layer.digest), status: 'Pulling fs layer' });
    });
    // One download per blob, however often the image lists it.
    const once = new Map<string, Promise<{ layer: StagedImageLayer; blob?: StagedBlob }>>();
    const staged = await mapLimited(
      layers,
      this.concurrency,
      (layer, i) => {
        const key = `${layer.digest} ${diffIDs[i]}`;
        if (!once.has(key)) once.set(key, this.stageLayer(staging, layer, diffIDs[i]));
        return once.get(key) as Promise<{ layer: StagedImageLayer; blob?: StagedBlob }>;
      },
      () => this.aborter.abort(new Error('another layer failed')),
    );

    const blobs = [staging.stageDocument(manifest.descriptor.digest, manifest.data), staging.stageDocument(configDescriptor.digest, configData)];
    for (const { blob } of staged) if (blob && !blobs.some((b) => b.digest === blob.digest)) blobs.push(blob);
    return {
      id: configDescriptor.digest,
      manifest: { digest: manifest.descriptor.digest, mediaType: manifest.parsed.mediaType ?? manifest.descriptor.mediaType, size: manifest.descriptor.size },
      blobs,
      layers: staged.map((s) => s.layer),
      names: this.remote.tag !== undefined ? [familiarRemote(this.remote)] : [],
      repoDigests: [`${this.remote.name}@${this.resolved.digest}`],
    };
  }

  /** Docker pulls an image for another platform than asked when the registry says so, with a warning; so does tsrun. */
  private checkPlatform(config: ImageConfig): void {
    const actual = platformOf(config);
    if (!platformMatches(actual, this.wanted)) {
      this.logger.warn({ reference: formatRemote(this.remote), image: formatPlatform(actual), wanted: formatPlatform(this.wanted) }, "the image's platform does not match the platform asked for");
    }
  }

  private async fetchConfig(descriptor: Descriptor): Promise<Buffer> {
    const subject = `config ${descriptor.digest} of ${formatRemote(this.remote)}`;
    if (descriptor.size > CONFIG_LIMIT) throw new ContentError(subject, `${descriptor.size} bytes is more than the ${CONFIG_LIMIT} allowed for an image config`);
    const chunks: Buffer[] = [];
    for await (const chunk of blobChunks(this.client, this.remote.repository, descriptor, subject, this.downloadOptions())) chunks.push(chunk);
    const data = Buffer.concat(chunks);
    checkContent(subject, descriptor, { digest: sha256Digest(data), size: data.length });
    return data;
  }

  private downloadOptions(onRetry?: BlobDownloadOptions['onRetry']): BlobDownloadOptions {
    return { retry: this.options.retry ?? DEFAULT_RETRY, logger: this.logger, signal: this.signal, onRetry };
  }

  /**
   * One layer: nothing to do when the store has it from this very blob;
   * applied from the store's copy of the blob when it has only that;
   * otherwise downloaded and applied at once.
   */
  private async stageLayer(staging: ImageStaging, descriptor: Descriptor, diffID: string): Promise<{ layer: StagedImageLayer; blob?: StagedBlob }> {
    const id = shortDigest(descriptor.digest);
    const blob = { digest: descriptor.digest, mediaType: descriptor.mediaType, size: descriptor.size };
    if (staging.hasBlob(descriptor.digest)) {
      const blobFile = staging.blobPath(descriptor.digest);
      if (staging.hasLayerFrom(diffID, descriptor.digest)) {
        this.progress({ id, status: 'Already exists' });
        return { layer: { diffID, blob, blobFile } };
      }
      const applied = await withReadStream(blobFile, (input) => staging.stageLayer(input, blob, diffID));
      this.progress({ id, status: 'Pull complete' });
      return { layer: { diffID, blob, blobFile, applied } };
    }
    return this.downloadLayer(staging, descriptor, diffID);
  }

  private async downloadLayer(staging: ImageStaging, descriptor: Descriptor, diffID: string): Promise<{ layer: StagedImageLayer; blob: StagedBlob }> {
    const id = shortDigest(descriptor.digest);
    const subject = `layer ${descriptor.digest} of ${formatRemote(this.remote)}`;
    const blob = { digest: descriptor.digest, mediaType: descriptor.mediaType, size: descriptor.size };
    const file = path.join(staging.dir, 'blobs', digestHex(descriptor.digest));
    fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });

    const output = fs.createWriteStream(file, { flags: 'wx', mode: 0o644, flush: true });
    let outputError: Error | undefined;
    output.on('error', (err) => (outputError = err));
    const toApply = new PassThrough({ highWaterMark: APPLY_BUFFER });
    let applyError: unknown;
    const applying = staging.stageLayer(toApply, blob, diffID).catch((err: unknown) => {
      applyError = err;
      // The download goes on without it: a digest mismatch, if there is one, is the better explanation.
      toApply.destroy();
      return undefined;
    });

    const hash = createHash('sha256');
    let size = 0;
    const onRetry = (attempt: number, delayMs: number, reason: string): void =>
      this.progress({ id, status: 'Retrying', detail: `${reason}; retrying in ${Math.ceil(delayMs / 1000)} s (${attempt})`, current: size, total: descriptor.size });
    let downloadError: unknown;
    try {
      for await (const chunk of blobChunks(this.client, this.remote.repository, descriptor, subject, this.downloadOptions(onRetry))) {
        hash.update(chunk);
        size += chunk.length;
        if (!output.write(chunk)) await drainedOrClosed(output);
        if (outputError) throw syscallErrorFrom('pull: write blob', outputError);
        if (!toApply.destroyed && !toApply.write(chunk)) await drainedOrClosed(toApply);
        this.progress({ id, status: 'Downloading', current: size, total: descriptor.size });
      }
      toApply.end();
      output.end();
    } catch (err) {
      downloadError = err;
      toApply.destroy(err as Error);
      output.destroy();
    }
    let mismatch: unknown;
    if (downloadError === undefined) {
      try {
        checkContent(subject, descriptor, { digest: `sha256:${hash.digest('hex')}`, size });
        this.progress({ id, status: 'Download complete' });
      } catch (err) {
        mismatch = err;
      }
    }
    // Nothing may write into staging once this returns: after a failure it is removed.
    const applied = await applying;
    await closed(output);
    if (downloadError !== undefined) throw downloadError;
    if (outputError) throw syscallErrorFrom('pull: write blob', outputError);
    if (mismatch !== undefined) {
      // What the bytes did to the extraction is a consequence; the digest says what is wrong.
      if (applyError !== undefined) (mismatch as Error).cause = applyError;
      throw mismatch;
    }
    if (applied === undefined) throw applyError;
    this.downloadedLayers++;
    this.downloadedBytes += size;
    this.progress({ id, status: 'Pull complete' });
    return { layer: { diffID, blob, blobFile: file, applied }, blob: { digest: descriptor.digest, file } };
  }
}

function platformOf(config: ImageConfig): Platform {
  return { os: config.os, architecture: config.architecture, ...(config.variant ? { variant: config.variant } : {}) };
}

/** Resolves once `stream` can take more, or is gone. */
function drainedOrClosed(stream: Writable): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      stream.off('drain', done);
      stream.off('close', done);
      resolve();
    };
    stream.on('drain', done);
    stream.on('close', done);
  });
}

/** Resolves once a file stream has closed its descriptor (after its fsync, with `flush`). */
function closed(stream: fs.WriteStream): Promise<void> {
  return stream.closed ? Promise.resolve() : new Promise((resolve) => stream.once('close', () => resolve()));
}
