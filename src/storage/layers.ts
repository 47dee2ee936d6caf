import fs = require('node:fs');
import path = require('node:path');
import type { Readable } from 'node:stream';
import { ContentError, DigestMismatchError, NotFoundError } from '../errors';
import type { Logger } from '../logger';
import { SHA256_DIGEST } from '../oci/image-spec';
import { fsyncDir, writeFileAtomic } from '../util/atomic-file';
import { withReadStream } from '../util/streams';
import { applyLayer } from './apply';
import { linkShortName, overlayRoot } from './container-layers';
import { digestHex } from './digest';


/** What `overlay2/<diffid-hex>/layer.json` holds. */
export interface LayerRecord {
  diffID: string;
  /** The blob the layer was applied from, as the manifest describes it. */
  blob: { digest: string; mediaType: string; size: number };
  /** Bytes of the uncompressed layer tar. */
  size: number;
}

/** An image layer in the store. */
export interface StoredLayer {
  diffID: string;
  /** `overlay2/<hex>/diff`: the layer's files, with overlay whiteouts. */
  dir: string;
  /** The short name: `overlay2/l/<link>` points at `dir`. */
  link: string;
  record: LayerRecord;
}

/** A layer applied in `<root>/tmp`, waiting to be published. */
export interface StagedLayer {
  /** `<staging>/<n>`, holding `diff/`, `link` and `layer.json`, renamed to `overlay2/<hex>` by publish. */
  dir: string;
  record: LayerRecord;
}

/**
 * Image layers: `overlay2/<diffid-hex>/{diff,link,layer.json}` plus the
 * `overlay2/l/<link>` symlink. A layer is named by its diff ID, so every
 * image with that diff ID shares one copy. A layer directory appears only
 * by a rename of a complete one, and goes by a rename out of overlay2/
 * before it is deleted, so a `layer.json` in overlay2/ always means a
 * complete layer. overlay2/ also holds the containers' layers, which have
 * no `layer.json`.
 */
export class LayerStore {
  readonly overlay: string;

  constructor(storeRoot: string) {
    this.overlay = overlayRoot(storeRoot);
  }

  private layerDir(diffID: string): string {
    if (!SHA256_DIGEST.test(diffID)) throw new ContentError('layer', `${JSON.stringify(diffID)} is not a sha256 diff ID`);
    return path.join(this.overlay, digestHex(diffID));
  }

  has(diffID: string): boolean {
    return fs.existsSync(path.join(this.layerDir(diffID), 'layer.json'));
  }

  get(diffID: string): StoredLayer {
    const dir = this.layerDir(diffID);
    let record: LayerRecord;
    let link: string;
    try {
      record = JSON.parse(fs.readFileSync(path.join(dir, 'layer.json'), 'utf8')) as LayerRecord;
      link = fs.readFileSync(path.join(dir, 'link'), 'utf8').trim();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new NotFoundError('layer', diffID, `layer ${diffID} is missing from the store`);
      throw err;
    }
    return { diffID, dir: path.join(dir, 'diff'), link, record };
  }

  /**
   * Applies a verified layer blob into `<stagingDir>/<name>` and checks the
   * diff ID it produced against `expectedDiffID` (the image config's).
   * Leaves nothing in the store; on failure the caller removes the staging
   * directory.
   */
  async stage(blobFile: string, blob: LayerRecord['blob'], stagingDir: string, name: string, expectedDiffID: string, logger: Logger): Promise<StagedLayer> {
    return withReadStream(blobFile, (input) => this.stageStream(input, blob, stagingDir, name, expectedDiffID, logger));
  }

  /**
   * `stage` from a stream of the blob, as it arrives from a registry: the
   * caller verifies the blob's digest once the stream has ended, and
   * publishes nothing before that.
   */
  async stageStream(input: Readable, blob: LayerRecord['blob'], stagingDir: string, name: string, expectedDiffID: string, logger: Logger): Promise<StagedLayer> {
    const dir = path.join(stagingDir, name);
    fs.mkdirSync(path.join(dir, 'diff'), { recursive: true, mode: 0o755 });
    const subject = `layer ${blob.digest}`;
    const applied = await applyLayer(input, path.join(dir, 'diff'), { subject, logger });
    if (applied.diffID !== expectedDiffID) throw new DigestMismatchError(`${subject} (uncompressed)`, expectedDiffID, applied.diffID);
    const record: LayerRecord = { diffID: applied.diffID, blob, size: applied.size };
    // Durable before publish renames the directory in: a layer.json in overlay2/ means a complete layer.
    writeFileAtomic(path.join(dir, 'layer.json'), `${JSON.stringify(record, null, 2)}\n`, { durable: true, mode: 0o644 });
    return { dir, record };
  }

  /**
   * Moves a staged layer into overlay2/ (the caller holds the store lock).
   * When another process published the same diff ID meanwhile, that copy
   * is kept and the staged one goes with the staging directory. The
   * layer's files are not fsynced one by one (nor are they by Docker):
   * layer.json and the link are, and the rename is.
   */
  publish(staged: StagedLayer): StoredLayer {
    const { diffID } = staged.record;
    if (this.has(diffID)) return this.get(diffID);
    // The link comes first: a crash before the rename leaves a dangling
    // link, which the garbage collection removes, never a layer without one.
    const link = linkShortName(this.overlay, digestHex(diffID));
    writeFileAtomic(path.join(staged.dir, 'link'), link, { durable: true });
    fs.renameSync(staged.dir, this.layerDir(diffID));
    fsyncDir(this.overlay);
    return this.get(diffID);
  }

  /** The diff IDs of every image layer in the store. */
  list(): string[] {
    let entries: string[];
    try {
      entries = fs.readdirSync(this.overlay);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
    return entries.filter((e) => /^[a-f0-9]{64}$/.test(e) && fs.existsSync(path.join(this.overlay, e, 'layer.json'))).map((hex) => `sha256:${hex}`);
  }

  /**
   * Removes a layer: first out of overlay2/ by a rename into `trashDir`
   * (so no half-deleted layer is ever seen as complete), then from disk.
   * Returns the layer's size.
   */
  remove(diffID: string, trashDir: string): number {
    const layer = this.get(diffID);
    fs.rmSync(path.join(this.overlay, 'l', layer.link), { force: true });
    const trash = path.join(trashDir, digestHex(diffID));
    fs.renameSync(this.layerDir(diffID), trash);
    fs.rmSync(trash, { recursive: true, force: true });
    return layer.record.size;
  }

  /** Removes `l/` links whose layer is gone (left by a crash during publish or removal). */
  removeDanglingLinks(): string[] {
    const dir = path.join(this.overlay, 'l');
    let links: string[];
    try {
      links = fs.readdirSync(dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
    const removed: string[] = [];
    for (const short of links) {
      if (fs.existsSync(path.join(dir, short))) continue;
      fs.rmSync(path.join(dir, short), { force: true });
      removed.push(short);
    }
    return removed;
  }
}
