import fs = require('node:fs');
import path = require('node:path');
import { randomHex } from './random';

let tempNames: { token: string; count: number } | undefined;

/**
 * A temp file name next to `file` that no other write uses: this process's
 * pid and a random token (pids repeat across pid namespaces that share a
 * directory), drawn once per process, and a counter.
 */
function tempName(file: string): string {
  tempNames ??= { token: randomHex(4), count: 0 };
  return `${file}.${process.pid}.${tempNames.token}.${++tempNames.count}.tmp`;
}

/**
 * Writes via a temp file + rename so readers never see half a file;
 * `durable` adds an fsync for data that must survive a power loss (the
 * store), which runtime state on a tmpfs does not need.
 */
export function writeFileAtomic(file: string, data: string | Buffer, options: { durable: boolean; mode?: number }): void {
  const tmp = tempName(file);
  const fd = fs.openSync(tmp, 'w', options.mode ?? 0o600);
  try {
    fs.writeFileSync(fd, data);
    if (options.durable) fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  try {
    fs.renameSync(tmp, file);
  } catch (err) {
    fs.rmSync(tmp, { force: true });
    throw err;
  }
  if (options.durable) fsyncDir(path.dirname(file));
}

/** Makes a rename or a new entry in `dir` survive a power loss. */
export function fsyncDir(dir: string): void {
  const fd = fs.openSync(dir, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}
