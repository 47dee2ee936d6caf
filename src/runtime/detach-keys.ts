import { Transform, TransformCallback } from 'node:stream';
import { ValidationError } from '../errors';

/** Docker's default: ctrl-p then ctrl-q. */
export const DEFAULT_DETACH_KEYS = 'ctrl-p,ctrl-q';

const CTRL_SPECIAL: Record<string, number> = { '@': 0, '[': 27, '\\': 28, ']': 29, '^': 30, _: 31 };

/**
 * `--detach-keys` as Docker reads it: comma-separated keys, each a single
 * character or `ctrl-<c>` with c in a-z, @, [, \, ], ^, _ (so ctrl-p is 0x10).
 */
export function parseDetachKeys(spec: string): Buffer {
  const bytes = spec.split(',').map((key) => {
    const ctrl = /^ctrl-(.)$/i.exec(key);
    if (ctrl) {
      const c = ctrl[1].toLowerCase();
      if (c >= 'a' && c <= 'z') return c.charCodeAt(0) - 96;
      if (c in CTRL_SPECIAL) return CTRL_SPECIAL[c];
    } else if (key.length === 1) {
      return key.charCodeAt(0);
    }
    throw new ValidationError('detach-keys', `${JSON.stringify(key)} is not a key: a single character or ctrl-<a-z, @, [, \\, ], ^, _>`);
  });
  if (bytes.length === 0 || bytes.some((b) => b > 127)) throw new ValidationError('detach-keys', `${JSON.stringify(spec)} names no key`);
  return Buffer.from(bytes);
}

/**
 * Passes typed input through, except the detach sequence: its keys are
 * held while they match, dropped and reported with a 'detach' event when
 * all have come, and let through as typed when the sequence breaks off.
 */
export class DetachKeyFilter extends Transform {
  private matched = 0;

  constructor(private readonly keys: Buffer) {
    super();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    const out: number[] = [];
    for (const byte of chunk) {
      if (byte === this.keys[this.matched]) {
        this.matched++;
        if (this.matched === this.keys.length) {
          this.matched = 0;
          if (out.length > 0) this.push(Buffer.from(out.splice(0)));
          this.emit('detach');
        }
        continue;
      }
      out.push(...this.keys.subarray(0, this.matched));
      this.matched = byte === this.keys[0] ? 1 : 0;
      if (this.matched === 0) out.push(byte);
    }
    if (out.length > 0) this.push(Buffer.from(out));
    callback();
  }

  override _flush(callback: TransformCallback): void {
    if (this.matched > 0) this.push(this.keys.subarray(0, this.matched));
    this.matched = 0;
    callback();
  }
}
