import * as fs from 'node:fs';

/**
 * `bytes` random bytes from the kernel's CSPRNG as hex. Read from
 * /dev/urandom rather than through node:crypto, whose first load costs
 * the CLI several milliseconds on every container start.
 */
export function randomHex(bytes: number): string {
  const buffer = Buffer.alloc(bytes);
  const fd = fs.openSync('/dev/urandom', 'r');
  try {
    let filled = 0;
    while (filled < bytes) filled += fs.readSync(fd, buffer, filled, bytes - filled, null);
  } finally {
    fs.closeSync(fd);
  }
  return buffer.toString('hex');
}
