import { createHash } from 'node:crypto';
import fs = require('node:fs');
import path = require('node:path');
import { writeFileAtomic } from '../util/atomic-file';

/**
 * The build cache: `<root>/build-cache/<key-hex>` holds the id of the
 * image a step made. A step's key chains the key of the step before it
 * (down to the base image's id) with the step's own text after variable
 * expansion and, for COPY and ADD, the hash of the files it copies; so an
 * unchanged step on an unchanged parent finds its image, and a change
 * misses from that step on. An entry whose image was removed is a miss.
 */
export class BuildCache {
  private readonly dir: string;

  constructor(storeRoot: string) {
    this.dir = path.join(storeRoot, 'build-cache');
  }

  static key(parent: string, step: string): string {
    return createHash('sha256').update(parent).update('\n').update(step).digest('hex');
  }

  get(key: string): string | undefined {
    try {
      return fs.readFileSync(path.join(this.dir, key), 'utf8').trim() || undefined;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
  }

  set(key: string, imageId: string): void {
    fs.mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    writeFileAtomic(path.join(this.dir, key), imageId, { durable: false });
  }
}
