import fs = require('node:fs');
import path = require('node:path');
import type { Logger } from '../logger';
import { isRunning, processStartTime } from '../linux/proc';
import { randomHex } from '../util/random';

/**
 * `<root>/tmp`: where blobs and layers are written before they are renamed
 * into the store, on the same filesystem so the rename is atomic. Each
 * operation gets its own directory, named after its process
 * (`<pid>-<start time>-<random>`), so the next mutation can tell the
 * leftovers of a crashed process from work still under way, which runs
 * outside the store lock.
 */
export class Staging {
  constructor(readonly dir: string) {}

  /** A new, empty staging directory for one operation; remove it with `remove`. */
  create(purpose: string): string {
    fs.mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    const dir = path.join(this.dir, `${process.pid}-${processStartTime(process.pid) ?? 0}-${randomHex(6)}-${purpose}`);
    fs.mkdirSync(dir, { mode: 0o700 });
    return dir;
  }

  remove(dir: string): void {
    fs.rmSync(dir, { recursive: true, force: true });
  }

  /** Entries whose process no longer runs: what a crash left behind. */
  staleEntries(): string[] {
    let entries: string[];
    try {
      entries = fs.readdirSync(this.dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
    return entries.filter((entry) => {
      const match = /^(\d+)-(\d+)-/.exec(entry);
      return !(match && isRunning(Number(match[1]), Number(match[2])));
    });
  }

  /** Removes what processes that no longer run left behind. */
  removeStale(logger: Logger): void {
    for (const entry of this.staleEntries()) {
      logger.info({ entry }, 'removing staging left by a process that is gone');
      fs.rmSync(path.join(this.dir, entry), { recursive: true, force: true });
    }
  }
}
