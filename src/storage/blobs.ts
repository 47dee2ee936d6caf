import fs = require('node:fs');
import path = require('node:path');
import { ContentError } from '../errors';
import { SHA256_DIGEST } from '../oci/image-spec';
import { fsyncDir } from '../util/atomic-file';
import { digestHex } from './digest';

/**
 * `<root>/blobs/sha256/<hex>`: manifests, configs and layer blobs, named by
 * the sha256 of their content. A blob is verified before it is published,
 * and published by a rename, so a file here always holds what its name
 * says.
 */
export class BlobStore {
  readonly dir: string;

  constructor(storeRoot: string) {
    this.dir = path.join(storeRoot, 'blobs', 'sha256');
  }

  path(digest: string): string {
    if (!SHA256_DIGEST.test(digest)) throw new ContentError('blob', `${JSON.stringify(digest)} is not a sha256 digest`);
    return path.join(this.dir, digestHex(digest));
  }

  has(digest: string): boolean {
    return fs.existsSync(this.path(digest));
  }

  read(digest: string): Buffer {
    return fs.readFileSync(this.path(digest));
  }

  size(digest: string): number {
    return fs.statSync(this.path(digest)).size;
  }

  /**
   * Moves a verified, fsynced file in `<root>/tmp` into place. A blob that
   * is already there is kept: same name, same content.
   */
  publish(staged: string, digest: string): void {
    const target = this.path(digest);
    if (fs.existsSync(target)) return;
    fs.mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    fs.renameSync(staged, target);
    fsyncDir(this.dir);
  }

  /** Every stored blob's digest. */
  list(): string[] {
    try {
      return fs
        .readdirSync(this.dir)
        .filter((hex) => /^[a-f0-9]{64}$/.test(hex))
        .map((hex) => `sha256:${hex}`);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
  }

  /** Removes a blob; returns the bytes freed (0 if it was not there). */
  remove(digest: string): number {
    try {
      const { size } = fs.statSync(this.path(digest));
      fs.rmSync(this.path(digest));
      return size;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 0;
      throw err;
    }
  }
}
