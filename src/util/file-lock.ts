import fs = require('node:fs');
import { LockTimeoutError, syscallErrorFrom } from '../errors';
import { loadNative } from '../native/index';

const LOCK_SH = 1;
const LOCK_EX = 2;
const LOCK_UN = 8;

/**
 * An flock(2) on a file: shared for readers, exclusive for writers. The
 * kernel drops it when the process dies, so a crashed tsrun never leaves
 * the store locked. Waiting polls, because a blocking flock would stall
 * the event loop.
 */
export class FileLock {
  private constructor(private fd: number | null) {}

  static async acquire(file: string, mode: 'shared' | 'exclusive', timeoutMs = 120_000): Promise<FileLock> {
    let fd: number;
    try {
      fd = fs.openSync(file, fs.constants.O_RDWR | fs.constants.O_CREAT, 0o600);
    } catch (err) {
      throw syscallErrorFrom('lock', err);
    }
    const native = loadNative();
    const deadline = Date.now() + timeoutMs;
    try {
      for (let delay = 2; !native.flock(fd, mode === 'shared' ? LOCK_SH : LOCK_EX); delay = Math.min(delay * 2, 50)) {
        if (Date.now() > deadline) throw new LockTimeoutError(file, timeoutMs);
        await new Promise((resolve) => setTimeout(resolve, delay));
      }
    } catch (err) {
      fs.closeSync(fd);
      throw err;
    }
    return new FileLock(fd);
  }

  release(): void {
    if (this.fd === null) return;
    loadNative().flock(this.fd, LOCK_UN);
    fs.closeSync(this.fd);
    this.fd = null;
  }
}

/** Runs `body` holding the lock, and releases it however `body` ends. */
export async function withFileLock<T>(file: string, mode: 'shared' | 'exclusive', body: () => Promise<T> | T): Promise<T> {
  const lock = await FileLock.acquire(file, mode);
  try {
    return await body();
  } finally {
    lock.release();
  }
}
