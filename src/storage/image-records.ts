import fs = require('node:fs');
import path = require('node:path');
import { ContentError } from '../errors';
import { writeFileAtomic } from '../util/atomic-file';
import { digestHex } from './digest';

/** What `images/<config-hex>.json` holds. The image id is its config's digest, as in Docker. */
export interface ImageRecord {
  id: string;
  /** Digest of the manifest blob that lists the config and the layer blobs. */
  manifest: string;
  /** When the image was stored here (the config's `created` says when it was built). */
  created: string;
  /** The image a build step made this one on (Docker's Parent): an untagged parent is an intermediate image, listed only with `images -a`. */
  parent?: string;
}

/** `images/tags.json`: `name:tag` -> image id; `images/digests.json`: `name@digest` -> image id. */
export type TagTable = Record<string, string>;

/**
 * The image records and the tag table under `<root>/images`. Each file is
 * replaced whole (write, fsync, rename); callers hold the store lock to
 * write, readers see either the old or the new table.
 */
export class ImageRecords {
  readonly dir: string;

  constructor(storeRoot: string) {
    this.dir = path.join(storeRoot, 'images');
  }

  private recordFile(id: string): string {
    return path.join(this.dir, `${digestHex(id)}.json`);
  }

  private get tagsFile(): string {
    return path.join(this.dir, 'tags.json');
  }

  private get digestsFile(): string {
    return path.join(this.dir, 'digests.json');
  }

  get(id: string): ImageRecord | undefined {
    try {
      return JSON.parse(fs.readFileSync(this.recordFile(id), 'utf8')) as ImageRecord;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
  }

  /** Every record, read from the directory (each is one small file). */
  list(): ImageRecord[] {
    let entries: string[];
    try {
      entries = fs.readdirSync(this.dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
    return entries
      .filter((e) => /^[a-f0-9]{64}\.json$/.test(e))
      .map((e) => this.get(`sha256:${e.slice(0, 64)}`))
      .filter((r): r is ImageRecord => r !== undefined);
  }

  write(record: ImageRecord): void {
    fs.mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    writeFileAtomic(this.recordFile(record.id), `${JSON.stringify(record, null, 2)}\n`, { durable: true });
  }

  remove(id: string): void {
    fs.rmSync(this.recordFile(id), { force: true });
  }

  tags(): TagTable {
    return this.readTable(this.tagsFile);
  }

  writeTags(tags: TagTable): void {
    this.writeTable(this.tagsFile, tags);
  }

  /** `images/digests.json`: `name@sha256:...` -> image id, for images pulled from a registry (Docker's RepoDigests). */
  digests(): TagTable {
    return this.readTable(this.digestsFile);
  }

  writeDigests(digests: TagTable): void {
    this.writeTable(this.digestsFile, digests);
  }

  private readTable(file: string): TagTable {
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return {};
      throw err;
    }
    try {
      return JSON.parse(text) as TagTable;
    } catch (err) {
      throw new ContentError(file, `not valid JSON (${(err as Error).message})`);
    }
  }

  private writeTable(file: string, table: TagTable): void {
    fs.mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    const sorted = Object.fromEntries(Object.entries(table).sort(([a], [b]) => a.localeCompare(b)));
    writeFileAtomic(file, `${JSON.stringify(sorted, null, 2)}\n`, { durable: true });
  }

  /** The tags (or repo digests) of each image id. */
  tagsById(tags: TagTable = this.tags()): Map<string, string[]> {
    const byId = new Map<string, string[]>();
    for (const [tag, id] of Object.entries(tags)) byId.set(id, [...(byId.get(id) ?? []), tag]);
    return byId;
  }
}
