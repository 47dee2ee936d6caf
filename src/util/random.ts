import fs = require('node:fs');

/**
 * `count` random bytes from the kernel's CSPRNG. Read from /dev/urandom
 * rather than through node:crypto, whose first load costs the CLI several
 * milliseconds on every container start.
 */
export function randomBytes(count: number): Buffer {
  const buffer = Buffer.alloc(count);
  const fd = fs.openSync('/dev/urandom', 'r');
  try {
    let filled = 0;
    while (filled < count) filled += fs.readSync(fd, buffer, filled, count - filled, null);
  } finally {
    fs.closeSync(fd);
  }
  return buffer;
}

export function randomHex(bytes: number): string {
  return randomBytes(bytes).toString('hex');
}

const BASE32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';

/** `length` random characters of RFC 4648 base32 (A-Z, 2-7), as Docker's overlay2 short links. */
export function randomBase32(length: number): string {
  return [...randomBytes(length)].map((byte) => BASE32[byte & 31]).join('');
}
