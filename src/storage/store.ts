import fs = require('node:fs');
import path = require('node:path');
import type { Readable, Writable } from 'node:stream';
import { ConflictError, ContentError, NotFoundError, syscallErrorFrom } from '../errors';
import type { Logger } from '../logger';
import { silentLogger } from '../logger';
import { parseChanges } from '../oci/image-changes';
import { ImageConfig, parseImageConfig, parseManifest } from '../oci/image-spec';
import { withFileLock } from '../util/file-lock';
import { closeStream, writeClosed } from '../util/streams';
import { BlobStore } from './blobs';
import { CheckOptions, CheckReport, checkStore } from './check';
import { decompress } from './compression';
import { ContainerRecord, ContainerStore } from './containers';
import { directoryFiles, extractArchive } from './formats/source-files';
import { GcResult, collectGarbage } from './gc';
import { ImageRecord, ImageRecords } from './image-records';
import { ImageInspect, inspectImage } from './inspect';
import { LayerRecord, StagedLayer, LayerStore } from './layers';
import { stageImages } from './load';
import { stageImage, stageNewImage } from './new-image';
import { ImageReference, parseImageReference, parseTagReference, splitTagged } from './references';
import { SavedImage, writeImageArchive } from './save';
import { StagedBlob, StagedImage, stageDocument } from './staged-image';
import { Staging } from './staging';
import { crashPoint } from '../util/crash-point';

/** One layer of a resolved image. */
export interface ImageLayer {
  diffID: string;
  /** `overlay2/<hex>/diff`. */
  dir: string;
  /** Its short name under `overlay2/l/`, for overlay mount options. */
  link: string;
  /** Bytes of the uncompressed layer. */
  size: number;
}

/** An image in the store, resolved: what `run` needs to build a container on it. */
export interface Image {
  /** The config digest, `sha256:<hex>`. */
  id: string;
  /** The manifest digest. */
  manifest: string;
  config: ImageConfig;
  /** Lowest first. */
  layers: ImageLayer[];
  repoTags: string[];
  /** `name@sha256:...` it was pulled by (the registry's manifest or index digest). */
  repoDigests: string[];
  /** When it was stored here. */
  stored: string;
  /** The image a build step made this one on (Docker's Parent). */
  parent?: string;
}

/** A row of `images`. */
export interface ImageSummary {
  id: string;
  repoTags: string[];
  /** When it was built (the config's `created`), as `docker images` shows it. */
  created: string;
  size: number;
}

export interface ImportOptions {
  /** The history entry's comment (`docker import -m`). */
  message?: string;
  /** Dockerfile instructions for the config, as `docker import -c`: `CMD ["sh"]`, `ENV A=1`... */
  changes?: string[];
}

export interface LayerImageOptions {
  /** `name[:tag]` for the new image; untagged without one. */
  reference?: string;
  changes?: string[];
  comment?: string;
  author?: string;
}

/**
 * What a source of images outside the store (a registry) gets while it
 * stages one: a directory in `<root>/tmp` for the blobs it writes, read
 * access to what the store has, and layer application. The store shows
 * nothing of it until `addImage` publishes the image the source staged.
 */
export interface ImageStaging {
  /** The staging directory, removed however the operation ends. */
  readonly dir: string;
  hasBlob(digest: string): boolean;
  /** A blob the store has (a manifest or config). */
  readBlob(digest: string): Buffer;
  /** Where a blob the store has is. */
  blobPath(digest: string): string;
  /** Whether the store has the layer `diffID` applied from the blob `blobDigest`, which is then known to be that layer. */
  hasLayerFrom(diffID: string, blobDigest: string): boolean;
  /** Applies a layer blob as it arrives (see LayerStore.stageStream); the caller verifies the blob's digest. */
  stageLayer(input: Readable, blob: LayerRecord['blob'], diffID: string): Promise<StagedLayer>;
  /** A small verified document (manifest, config) as a staged blob. */
  stageDocument(digest: string, data: Buffer): StagedBlob;
}

export interface PruneResult {
  /** Image ids, then the diff IDs of the layers that went with them. */
  deleted: string[];
  reclaimedBytes: number;
}

/**
 * The image store under a root (default /var/lib/tsrun):
 *
 *   lock                             flock: exclusive to change anything below, shared to read consistently
 *   tmp/                             staging (see staging.ts)
 *   blobs/sha256/<hex>               manifests, configs, layer blobs (blobs.ts)
 *   overlay2/<diffid-hex>/           image layers, and containers' layers (layers.ts)
 *   images/<config-hex>.json         image records; images/{tags,digests}.json (image-records.ts)
 *   containers/<id>/container.json   containers, whose layers keep image layers alive (containers.ts)
 *
 * Writers do the long work (extracting, verifying, applying layers) in
 * tmp/ without the lock, then take it to publish by renames. Nothing is
 * reference-counted: garbage collection derives what is in use from the
 * image and container records. Reads (`resolve`, `images`, `inspect`) take
 * no lock: every file they read is replaced whole. A caller that needs the
 * image to stay (a container being created) holds the lock around
 * `resolve` itself.
 */
export class Store {
  private readonly blobs: BlobStore;
  private readonly layers: LayerStore;
  private readonly records: ImageRecords;
  private readonly containers: ContainerStore;
  private readonly staging: Staging;
  private readonly lockFile: string;

  private constructor(
    readonly root: string,
    private readonly logger: Logger,
  ) {
    this.blobs = new BlobStore(root);
    this.layers = new LayerStore(root);
    this.records = new ImageRecords(root);
    this.containers = new ContainerStore(root);
    this.staging = new Staging(path.join(root, 'tmp'));
    this.lockFile = path.join(root, 'lock');
  }

  /** The store at `root`; nothing is created until something is written. */
  static open(root: string, logger: Logger = silentLogger): Store {
    return new Store(path.resolve(root), logger);
  }

  /** Runs `body` holding the store lock exclusively, after clearing what crashed writers left in tmp/. */
  private async mutate<T>(body: () => Promise<T> | T): Promise<T> {
    fs.mkdirSync(this.root, { recursive: true, mode: 0o700 });
    return withFileLock(this.lockFile, 'exclusive', () => {
      this.staging.removeStale(this.logger);
      return body();
    });
  }

  /** Runs `body` with a staging directory that is removed however it ends. */
  private async withStaging<T>(purpose: string, body: (dir: string) => Promise<T>): Promise<T> {
    fs.mkdirSync(this.root, { recursive: true, mode: 0o700 });
    const dir = this.staging.create(purpose);
    try {
      return await body(dir);
    } finally {
      this.staging.remove(dir);
    }
  }

  /**
   * Imports a root filesystem tar (gzip, zstd or none) as a one-layer
   * image, as `docker import`. The layer is stored gzip-compressed.
   */
  async importRootfs(input: Readable | string, reference: string, options: ImportOptions = {}): Promise<Image> {
    const name = parseTagReference(reference);
    const changes = parseChanges(options.changes ?? []);
    const source = typeof input === 'string' ? input : '-';
    const subject = `root filesystem ${source}`;
    return this.withStaging('import', async (dir) => {
      const staged = await withInput(input, 'import', (stream) =>
        stageNewImage(decompress(stream, subject), dir, this.layers, this.logger, {
          parent: null,
          blobPath: (digest) => this.blobs.path(digest),
          changes,
          history: { created_by: 'tsrun import', comment: options.message ?? `Imported from ${source}` },
          names: [name],
        }),
      );
      const [image] = await this.mutate(() => this.publish([staged], dir));
      return image;
    });
  }

  /**
   * A new image: `parent` plus one layer made of `layerTar` (an
   * uncompressed tar with overlay-style whiteouts as `.wh.` entries, such
   * as diffLayer makes). What `commit` uses.
   */
  async createLayerImage(parent: Image | null, layerTar: Readable, options: LayerImageOptions = {}): Promise<Image> {
    const names = options.reference === undefined ? [] : [parseTagReference(options.reference)];
    const changes = parseChanges(options.changes ?? []);
    const parentManifest = parent ? parseManifest(this.readBlob(parent.manifest, `image ${parent.id}`), `manifest ${parent.manifest}`) : null;
    return this.withStaging('commit', async (dir) => {
      const staged = await stageNewImage(layerTar, dir, this.layers, this.logger, {
        parent: parent && parentManifest ? { config: parent.config, layers: parentManifest.layers } : null,
        blobPath: (digest) => this.blobs.path(digest),
        changes,
        history: { ...(options.author !== undefined ? { author: options.author } : {}), ...(options.comment !== undefined ? { comment: options.comment } : {}) },
        author: options.author,
        names,
      });
      crashPoint('commit:staged');
      const [image] = await this.mutate(() => this.publish([staged], dir));
      return image;
    });
  }

  /**
   * A new image: `base`'s layers (none for null), plus one layer made of
   * `layerTar` when given (as createLayerImage), with the config that
   * `config` makes from the diff IDs and the time. What `build` uses for
   * each step; `references` tag the result.
   */
  async createImage(
    base: Image | null,
    layerTar: Readable | null,
    config: (diffIDs: string[], created: string) => ImageConfig,
    references: string[] = [],
  ): Promise<Image> {
    const names = references.map((r) => parseTagReference(r));
    const baseManifest = base ? parseManifest(this.readBlob(base.manifest, `image ${base.id}`), `manifest ${base.manifest}`) : null;
    return this.withStaging('build', async (dir) => {
      const staged = await stageImage(layerTar, dir, this.layers, this.logger, {
        parentLayers: baseManifest?.layers ?? [],
        parentDiffIDs: base?.config.rootfs.diff_ids ?? [],
        blobPath: (digest) => this.blobs.path(digest),
        config,
        names,
      });
      const [image] = await this.mutate(() => this.publish([{ ...staged, ...(base ? { parent: base.id } : {}) }], dir));
      return image;
    });
  }

  /**
   * Loads images from a docker save archive, an OCI layout archive (either
   * compressed or not) or an OCI layout directory. Every blob is verified
   * and every layer applied before anything is published, so a bad archive
   * changes nothing in the store.
   */
  async load(source: string | Readable): Promise<Image[]> {
    return this.withStaging('load', async (dir) => {
      const subject = typeof source === 'string' ? source : 'image archive';
      let files;
      if (typeof source === 'string' && statOrThrow(source, 'load').isDirectory()) {
        files = directoryFiles(source);
      } else {
        fs.mkdirSync(path.join(dir, 'archive'));
        files = await withInput(source, 'load', (input) => extractArchive(input, path.join(dir, 'archive'), subject));
      }
      const staged = await stageImages(files, subject, dir, this.layers, this.logger);
      return this.mutate(() => this.publish(staged, dir));
    });
  }

  /**
   * Adds the image that `stage` prepares in a staging directory (a pull):
   * published under the store lock once `stage` returns, not at all when
   * it throws.
   */
  async addImage(purpose: string, stage: (staging: ImageStaging) => Promise<StagedImage>): Promise<Image> {
    return this.withStaging(purpose, async (dir) => {
      let layers = 0;
      const staging: ImageStaging = {
        dir,
        hasBlob: (digest) => this.blobs.has(digest),
        readBlob: (digest) => this.readBlob(digest, `blob ${digest}`),
        blobPath: (digest) => this.blobs.path(digest),
        hasLayerFrom: (diffID, blobDigest) => this.layers.has(diffID) && this.layerBlob(diffID) === blobDigest,
        stageLayer: async (input, blob, diffID) => {
          const layer = await this.layers.stageStream(input, blob, dir, `layer-${layers++}`, diffID, this.logger);
          crashPoint('pull:layer');
          return layer;
        },
        stageDocument: (digest, data) => stageDocument(dir, digest, data),
      };
      const staged = await stage(staging);
      crashPoint('pull:staged');
      const [image] = await this.mutate(() => this.publish([staged], dir));
      return image;
    });
  }

  /** The blob a stored layer was applied from; undefined when the layer went meanwhile. */
  private layerBlob(diffID: string): string | undefined {
    try {
      return this.layers.get(diffID).record.blob.digest;
    } catch (err) {
      if (err instanceof NotFoundError) return undefined;
      throw err;
    }
  }

  /**
   * The image `reference` names, with its blobs open (for a push): they
   * stay readable even if an rmi removes the image meanwhile. The caller
   * closes it.
   */
  async openImage(reference: string): Promise<SavedImage> {
    const parsed = parseImageReference(reference);
    fs.mkdirSync(this.root, { recursive: true, mode: 0o700 });
    const [image] = await withFileLock(this.lockFile, 'shared', () => this.openForSave([{ text: reference, reference: parsed }]));
    return image;
  }

  /**
   * The repositories (familiar names, from tags and repo digests) of the
   * images whose manifest lists the blob `digest`: where a push may mount
   * it from.
   */
  repositoriesWithBlob(digest: string): string[] {
    const tags = this.records.tagsById();
    const digests = this.records.tagsById(this.records.digests());
    const names = new Set<string>();
    for (const record of this.records.list()) {
      let manifest;
      try {
        manifest = parseManifest(this.blobs.read(record.manifest), `manifest ${record.manifest}`);
      } catch (err) {
        this.logger.debug({ image: record.id, err: (err as Error).message }, 'cannot read an image manifest');
        continue;
      }
      if (manifest.config.digest !== digest && !manifest.layers.some((l) => l.digest === digest)) continue;
      (tags.get(record.id) ?? []).forEach((t) => names.add(splitTagged(t)[0]));
      (digests.get(record.id) ?? []).forEach((d) => names.add(d.slice(0, d.indexOf('@'))));
    }
    return [...names];
  }

  /**
   * Publishes staged images (the caller holds the lock): their blobs, then
   * their layers, then their records, then the tags, so that a crash
   * leaves at worst unreferenced blobs and layers for the garbage
   * collection. An image the store already has only gets the tags.
   */
  private async publish(images: StagedImage[], stagingDir: string): Promise<Image[]> {
    const fresh = images.filter((image) => this.records.get(image.id) === undefined);
    // A layer present when the image was staged may have been collected
    // since (an rmi ran meanwhile): apply it now from its verified blob.
    const lateLayers: StagedLayer[] = [];
    for (const image of fresh) {
      for (const layer of image.layers) {
        if (layer.applied || this.layers.has(layer.diffID) || lateLayers.some((l) => l.record.diffID === layer.diffID)) continue;
        if (!fs.existsSync(layer.blobFile)) throw new ConflictError(`layer ${layer.diffID} of image ${image.id} was removed while the image was being created; try again`);
        lateLayers.push(await this.layers.stage(layer.blobFile, layer.blob, stagingDir, `late-${lateLayers.length}`, layer.diffID, this.logger));
      }
      // A new image's parent layers are referred to, not staged: their blobs must still be here.
      for (const layer of image.layers) {
        if (!image.blobs.some((b) => b.digest === layer.blob.digest) && !this.blobs.has(layer.blob.digest)) {
          throw new ConflictError(`blob ${layer.blob.digest} (layer ${layer.diffID}) is no longer in the store: the image it came from was removed`);
        }
      }
    }
    for (const image of fresh) for (const blob of image.blobs) this.blobs.publish(blob.file, blob.digest);
    crashPoint('publish:blobs');
    for (const image of fresh) for (const layer of image.layers) if (layer.applied) this.layers.publish(layer.applied);
    for (const layer of lateLayers) this.layers.publish(layer);
    crashPoint('publish:layers');
    const stored = new Date().toISOString();
    for (const image of fresh) this.records.write({ id: image.id, manifest: image.manifest.digest, created: stored, ...(image.parent !== undefined ? { parent: image.parent } : {}) });
    crashPoint('publish:records');

    const tags = this.records.tags();
    let retagged = false;
    for (const image of images) {
      for (const name of image.names) {
        if (tags[name] === image.id) continue;
        if (tags[name] !== undefined) this.logger.info({ tag: name, from: tags[name], to: image.id }, 'tag moved to the new image; the old one keeps its other tags or becomes dangling');
        tags[name] = image.id;
        retagged = true;
      }
    }
    if (retagged) this.records.writeTags(tags);
    // A repo digest moves like a tag: an index digest names one image per platform, the last one pulled here.
    const digests = this.records.digests();
    let redigested = false;
    for (const image of images) {
      for (const reference of image.repoDigests ?? []) {
        if (digests[reference] === image.id) continue;
        digests[reference] = image.id;
        redigested = true;
      }
    }
    if (redigested) this.records.writeDigests(digests);
    return images.map((image) => this.imageOf(this.records.get(image.id) as ImageRecord, tags, digests));
  }

  /**
   * Writes the images as an OCI layout tar that also has Docker's
   * manifest.json, so that docker load, podman load and skopeo
   * (oci-archive:) all read it. A path is written through a temp file and
   * renamed when complete.
   */
  async save(references: string[], output: Writable | string): Promise<void> {
    const parsed = references.map((r) => ({ text: r, reference: parseImageReference(r) }));
    // The blobs are opened under the lock: an rmi that runs while the
    // archive is written cannot take them away from an open descriptor.
    fs.mkdirSync(this.root, { recursive: true, mode: 0o700 });
    const images = await withFileLock(this.lockFile, 'shared', () => this.openForSave(parsed));
    try {
      if (typeof output !== 'string') {
        await writeImageArchive(images, output);
        return;
      }
      const target = path.resolve(output);
      const tmp = `${target}.${process.pid}.tmp`;
      const file = fs.createWriteStream(tmp, { mode: 0o644, flush: true });
      try {
        await writeImageArchive(images, file);
        await writeClosed(file);
        fs.renameSync(tmp, target);
      } catch (err) {
        await writeClosed(file.destroy());
        fs.rmSync(tmp, { force: true });
        throw err;
      }
    } finally {
      images.forEach((image) => image.close());
    }
  }

  private openForSave(references: { text: string; reference: ImageReference }[]): SavedImage[] {
    const byId = new Map<string, { record: ImageRecord; tags: string[] }>();
    const tags = this.records.tags();
    const digests = this.records.digests();
    for (const { text, reference } of references) {
      const record = this.findRecord(reference, text, tags, digests);
      const entry = byId.get(record.id) ?? { record, tags: [] };
      // Saved by name, an image carries that name; saved by id or digest, none (as docker save).
      if (reference.kind === 'tag' && tags[`${reference.name}:${reference.tag}`] === record.id) entry.tags.push(`${reference.name}:${reference.tag}`);
      byId.set(record.id, entry);
    }
    const opened: SavedImage[] = [];
    try {
      for (const { record, tags: imageTags } of byId.values()) {
        const manifestData = this.readBlob(record.manifest, `image ${record.id}`);
        const manifest = parseManifest(manifestData, `manifest ${record.manifest}`);
        opened.push(SavedImage.open(this.blobs, record, manifest, manifestData, [...new Set(imageTags)]));
      }
    } catch (err) {
      opened.forEach((image) => image.close());
      throw err;
    }
    return opened;
  }

  /**
   * Every image, newest first; intermediate images (untagged build steps
   * that a later step was made on) only with `all`, as `docker images -a`.
   */
  images(options: { all?: boolean } = {}): ImageSummary[] {
    const byId = this.records.tagsById();
    const digestsById = this.records.tagsById(this.records.digests());
    const records = this.records.list();
    const parents = new Set(records.map((r) => r.parent));
    return records
      .filter((record) => options.all || byId.has(record.id) || digestsById.has(record.id) || !parents.has(record.id))
      .map((record) => {
        const image = this.imageOf(record, byId, digestsById);
        return { id: image.id, repoTags: image.repoTags, created: image.config.created ?? image.stored, size: sizeOf(image) };
      })
      .sort((a, b) => b.created.localeCompare(a.created));
  }

  /** The image `reference` names: `name[:tag]`, `name@sha256:...`, an id or a unique id prefix. */
  resolve(reference: string): Image {
    const tags = this.records.tags();
    const digests = this.records.digests();
    return this.imageOf(this.findRecord(parseImageReference(reference), reference, tags, digests), tags, digests);
  }

  /** The image as `docker image inspect` shows it. */
  inspect(reference: string): ImageInspect {
    const image = this.resolve(reference);
    return inspectImage({ ...image, layerDirs: image.layers.map((l) => l.dir), size: sizeOf(image) });
  }

  /** Tags the image `source` names as `target` (moving the tag if another image has it). */
  async tag(source: string, target: string): Promise<void> {
    const name = parseTagReference(target);
    const reference = parseImageReference(source);
    await this.mutate(() => {
      const tags = this.records.tags();
      tags[name] = this.findRecord(reference, source, tags, this.records.digests()).id;
      this.records.writeTags(tags);
    });
  }

  /**
   * Removes an image or one of its tags, as `docker rmi`: a tag of an image
   * with several tags is only untagged; an image is refused while a
   * container uses it, or (by id) while it has several tags, unless
   * `force`. A forced removal keeps the layers a container still uses.
   * Returns Docker's lines: `Untagged: name:tag`, `Deleted: sha256:...`.
   */
  async removeImage(reference: string, options: { force?: boolean } = {}): Promise<string[]> {
    const parsed = parseImageReference(reference);
    return this.mutate(() => {
      const tags = this.records.tags();
      const digests = this.records.digests();
      const record = this.findRecord(parsed, reference, tags, digests);
      const imageTags = this.records.tagsById(tags).get(record.id) ?? [];
      const named = parsed.kind === 'tag' && tags[`${parsed.name}:${parsed.tag}`] === record.id ? `${parsed.name}:${parsed.tag}` : undefined;
      if (named !== undefined && imageTags.length > 1) {
        delete tags[named];
        this.records.writeTags(tags);
        return [`Untagged: ${named}`];
      }
      const users = this.containersUsing(record.id);
      if (!options.force) {
        const short = shortId(record.id);
        if (users.length > 0) {
          const why = `container ${shortId(users[0].id)} (${users[0].name}) is using ${named === undefined ? 'it' : 'its referenced image'}`;
          throw new ConflictError(named === undefined ? `unable to delete ${short} (must be forced) - ${why}` : `unable to remove repository reference "${named}" (must force) - ${why} ${short}`);
        }
        if (named === undefined && imageTags.length > 1) throw new ConflictError(`unable to delete ${short} (must be forced) - image is referenced in multiple repositories`);
      }
      for (const tag of imageTags) delete tags[tag];
      this.records.writeTags(tags);
      const imageDigests = Object.keys(digests).filter((d) => digests[d] === record.id);
      if (imageDigests.length > 0) {
        imageDigests.forEach((d) => delete digests[d]);
        this.records.writeDigests(digests);
      }
      this.records.remove(record.id);
      const parents = this.removeUnusedParents(record, tags, digests);
      const gc = this.collectGarbage();
      return [...imageTags.map((t) => `Untagged: ${t}`), `Deleted: ${record.id}`, ...parents.map((p) => `Deleted: ${p}`), ...gc.layers.map((l) => `Deleted: ${l}`)];
    });
  }

  /**
   * Removes dangling images (untagged, and used by no container), or with
   * `all` every image no container uses (`docker image prune -a`), and
   * what only they used.
   */
  async prune(options: { all?: boolean } = {}): Promise<PruneResult> {
    return this.mutate(() => {
      const tags = this.records.tags();
      const tagged = this.records.tagsById(tags);
      const digests = this.records.digests();
      // An image pulled by digest has no tag, but it is named: not dangling (as in Docker).
      const digested = this.records.tagsById(digests);
      const used = new Set(this.containers.list().map((c) => c.imageId));
      const records = this.records.list();
      // The build steps below an image that stays are kept with it, as Docker keeps an image's parents.
      const kept = new Set(records.filter((r) => used.has(r.id) || (!options.all && (tagged.has(r.id) || digested.has(r.id)))).map((r) => r.id));
      for (let grew = true; grew; ) {
        grew = false;
        for (const record of records) {
          if (kept.has(record.id) && record.parent !== undefined && !kept.has(record.parent)) {
            kept.add(record.parent);
            grew = true;
          }
        }
      }
      const unused = records.filter((r) => !kept.has(r.id));
      const gone = new Set(unused.map((r) => r.id));
      if (options.all) {
        this.records.writeTags(Object.fromEntries(Object.entries(tags).filter(([, id]) => !gone.has(id))));
        this.records.writeDigests(Object.fromEntries(Object.entries(digests).filter(([, id]) => !gone.has(id))));
      }
      unused.forEach((r) => this.records.remove(r.id));
      const gc = this.collectGarbage();
      return { deleted: [...unused.map((r) => r.id), ...gc.layers], reclaimedBytes: gc.bytes };
    });
  }

  /**
   * Removes the intermediate images below a removed one, as docker rmi
   * does: each untagged parent that no container uses and that is no
   * other image's parent. Returns their ids.
   */
  private removeUnusedParents(removed: ImageRecord, tags: Record<string, string>, digests: Record<string, string>): string[] {
    const named = new Set([...Object.values(tags), ...Object.values(digests)]);
    const used = new Set(this.containers.list().map((c) => c.imageId));
    const deleted: string[] = [];
    for (let parent = removed.parent; parent !== undefined; ) {
      const record = this.records.get(parent);
      if (!record || named.has(record.id) || used.has(record.id) || this.records.list().some((r) => r.parent === record.id)) break;
      this.records.remove(record.id);
      deleted.push(record.id);
      parent = record.parent;
    }
    return deleted;
  }

  private collectGarbage(): GcResult {
    const trash = this.staging.create('gc');
    try {
      return collectGarbage({ records: this.records, blobs: this.blobs, layers: this.layers, containers: this.containers, logger: this.logger }, trash);
    } finally {
      this.staging.remove(trash);
    }
  }

  /**
   * `tsrun system check`: the store's consistency (see check.ts). A check
   * shares the lock with readers; a repair holds it alone.
   */
  async check(options: CheckOptions = {}): Promise<CheckReport> {
    const stores = { records: this.records, blobs: this.blobs, layers: this.layers, containers: this.containers, staging: this.staging, logger: this.logger };
    if (options.repair) return this.mutate(() => checkStore(stores, options));
    fs.mkdirSync(this.root, { recursive: true, mode: 0o700 });
    return withFileLock(this.lockFile, 'shared', () => checkStore(stores, options));
  }

  /**
   * The images' part of `tsrun system df`: layers shared by several images
   * count once; an image is active while a container uses it, and what
   * only inactive images use is reclaimable.
   */
  imageUsage(): { total: number; active: number; size: number; reclaimable: number } {
    const images = this.records.list().map((record) => this.imageOf(record, new Map(), new Map()));
    const used = new Set(this.containers.list().map((c) => c.imageId));
    const layerSizes = new Map<string, number>();
    const activeLayers = new Set<string>();
    for (const image of images) {
      for (const layer of image.layers) {
        layerSizes.set(layer.diffID, layer.size);
        if (used.has(image.id)) activeLayers.add(layer.diffID);
      }
    }
    const size = [...layerSizes.values()].reduce((a, b) => a + b, 0);
    const reclaimable = [...layerSizes].filter(([d]) => !activeLayers.has(d)).reduce((a, [, n]) => a + n, 0);
    return { total: images.length, active: images.filter((i) => used.has(i.id)).length, size, reclaimable };
  }

  private containersUsing(id: string): ContainerRecord[] {
    return this.containers.list().filter((c) => c.imageId === id);
  }

  private readBlob(digest: string, owner: string): Buffer {
    try {
      return this.blobs.read(digest);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new ContentError(owner, `blob ${digest} is missing from the store`);
      throw err;
    }
  }

  private findRecord(reference: ImageReference, text: string, tags: Record<string, string>, digests: Record<string, string>): ImageRecord {
    const notFound = (): NotFoundError => new NotFoundError('image', text, `No such image: ${text}`);
    const byPrefix = (hex: string): ImageRecord | undefined => {
      const matches = this.records.list().filter((r) => r.id.startsWith(`sha256:${hex}`));
      if (matches.length > 1) throw new ConflictError(`image id prefix ${hex} is ambiguous: it matches ${matches.length} images`);
      return matches[0];
    };
    let record: ImageRecord | undefined;
    if (reference.kind === 'id') {
      record = reference.hex.length === 64 ? this.records.get(`sha256:${reference.hex}`) : byPrefix(reference.hex);
    } else if (reference.kind === 'tag') {
      const id = tags[`${reference.name}:${reference.tag}`];
      record = id !== undefined ? this.records.get(id) : reference.idPrefix !== undefined ? byPrefix(reference.idPrefix) : undefined;
    } else {
      const pulledAs = digests[`${reference.name}@${reference.digest}`];
      const repositories = (id: string): string[] => Object.keys(tags).filter((t) => tags[t] === id).map((t) => splitTagged(t)[0]);
      record = pulledAs !== undefined ? this.records.get(pulledAs) : this.records.list().find((r) => r.manifest === reference.digest && repositories(r.id).includes(reference.name));
    }
    if (!record) throw notFound();
    return record;
  }

  private imageOf(record: ImageRecord, tags: Record<string, string> | Map<string, string[]>, digests: Record<string, string> | Map<string, string[]>): Image {
    const config = parseImageConfig(this.readBlob(record.id, `image ${record.id}`), `config ${record.id}`);
    const namesOf = (table: Record<string, string> | Map<string, string[]>): string[] =>
      table instanceof Map ? (table.get(record.id) ?? []) : Object.keys(table).filter((t) => table[t] === record.id);
    const repoTags = namesOf(tags);
    const layers = config.rootfs.diff_ids.map((diffID) => {
      const layer = this.layers.get(diffID);
      return { diffID, dir: layer.dir, link: layer.link, size: layer.record.size };
    });
    return {
      id: record.id,
      manifest: record.manifest,
      config,
      layers,
      repoTags: [...repoTags].sort(),
      repoDigests: [...namesOf(digests)].sort(),
      stored: record.created,
      ...(record.parent !== undefined ? { parent: record.parent } : {}),
    };
  }
}

function sizeOf(image: Image): number {
  return image.layers.reduce((sum, layer) => sum + layer.size, 0);
}

function shortId(id: string): string {
  return id.replace(/^sha256:/, '').slice(0, 12);
}

function statOrThrow(file: string, step: string): fs.Stats {
  try {
    return fs.statSync(file);
  } catch (err) {
    throw syscallErrorFrom(step, err);
  }
}

/**
 * Runs `body` on a read stream of `input` when it is a path (opened first,
 * so a missing file fails with a clear error, and closed before this
 * returns, even when `body` gave up on it half-read), or on `input` itself.
 */
async function withInput<T>(input: Readable | string, step: string, body: (stream: Readable) => Promise<T>): Promise<T> {
  if (typeof input !== 'string') return body(input);
  let handle: fs.promises.FileHandle;
  try {
    handle = await fs.promises.open(input, 'r');
  } catch (err) {
    throw syscallErrorFrom(step, err);
  }
  const stream = handle.createReadStream();
  try {
    return await body(stream);
  } finally {
    await closeStream(stream);
  }
}
