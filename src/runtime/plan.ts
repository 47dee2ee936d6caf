import { SyscallError } from '../errors';
import type { ChildErrorReport } from '../native';
import { HEADER_SIZE, MAX_STEPS, NO_STRING, Op, OpName, PLAN_MAGIC, PLAN_VERSION, STEP_SIZE } from './plan-opcodes';

/**
 * One step of the plan the child runs between clone and execve. `phase`,
 * `target` and `detail` only serve the error message when the step fails.
 */
export interface PlanStep {
  op: OpName;
  flags?: number;
  args?: (number | bigint)[];
  strs?: (string | null)[];
  /** Exec: [candidates, argv, envp]; Setgroups: [gids]. */
  lists?: string[][];
  /** Seccomp: the BPF program (struct sock_filter[]). */
  blob?: Buffer;
  phase: string;
  target?: string;
  detail?: string;
}

const SYSCALL_NAMES: Partial<Record<OpName, string>> = {
  PivotRoot: 'pivot_root',
  WriteFile: 'write',
  LinkUp: 'ioctl(SIOCSIFFLAGS)',
  SyncSignal: 'sync write',
  SyncWait: 'sync read',
  CloseFrom: 'close_range',
  Exec: 'exec',
  Touch: 'open',
  Stdio: 'dup3',
  SetCtty: 'ioctl(TIOCSCTTY)',
  Seccomp: 'seccomp',
  MaskPath: 'mount',
  OpenPty: 'open pty',
  PivotRootSlave: 'pivot_root',
};

/** The syscall name a failed step reports, e.g. "pivot_root" or "mount". */
export function syscallName(op: OpName): string {
  return SYSCALL_NAMES[op] ?? op.toLowerCase();
}

/**
 * The plan's string section, laid out as it is filled and written in one
 * go at the end: a start builds a plan of ~100 steps, and a Buffer per
 * string was most of the garbage a container start left behind.
 */
class StringPool {
  private readonly entries: (string | Buffer | number[])[] = [];
  private size = 0;
  private readonly offsets = new Map<string, number>();

  string(value: string): number {
    const known = this.offsets.get(value);
    if (known !== undefined) return known;
    if (value.includes('\0')) throw new TypeError(`plan string contains a NUL byte: ${JSON.stringify(value)}`);
    const offset = this.size;
    this.entries.push(value);
    this.size += Buffer.byteLength(value, 'utf8') + 1;
    this.offsets.set(value, offset);
    return offset;
  }

  /** A u32 count, then the u32 offsets of the strings. */
  list(values: string[]): number {
    const items = values.map((v) => this.string(v));
    const offset = this.size;
    this.entries.push(items);
    this.size += 4 + 4 * items.length;
    return offset;
  }

  /** A u32 length, then the bytes. */
  blob(bytes: Buffer): number {
    const offset = this.size;
    this.entries.push(bytes);
    this.size += 4 + bytes.length;
    return offset;
  }

  get length(): number {
    return this.size;
  }

  /** Strings have any length, so the u32s here go through a DataView (unaligned, little-endian). */
  writeTo(out: Buffer, start: number): void {
    const view = new DataView(out.buffer, out.byteOffset, out.length);
    let at = start;
    for (const entry of this.entries) {
      if (typeof entry === 'string') {
        at += out.write(entry, at, 'utf8');
        out[at++] = 0;
      } else if (Buffer.isBuffer(entry)) {
        view.setUint32(at, entry.length, true);
        at += 4 + entry.copy(out, at + 4);
      } else {
        view.setUint32(at, entry.length, true);
        at += 4;
        for (const item of entry) {
          view.setUint32(at, item, true);
          at += 4;
        }
      }
    }
  }
}

const TWO_32 = 2 ** 32;

/**
 * Stores a step argument as the s64 native/plan.h reads, in two u32 words
 * (low first). A safe integer needs no BigInt: the typed array keeps the
 * low word modulo 2^32, and the high word is the quotient, rounded down,
 * which is two's complement for a negative value.
 */
function storeArg(words: Uint32Array, at: number, arg: number | bigint): void {
  if (typeof arg === 'number' && Number.isSafeInteger(arg)) {
    words[at] = arg;
    words[at + 1] = Math.floor(arg / TWO_32);
  } else {
    const signed = BigInt(arg);
    if (signed < -(2n ** 63n) || signed >= 2n ** 63n) throw new RangeError(`plan argument ${arg} is out of range for a signed 64-bit integer`);
    const value = BigInt.asUintN(64, signed);
    words[at] = Number(value & 0xffffffffn);
    words[at + 1] = Number(value >> 32n);
  }
}

/**
 * Serializes steps into the wire format of native/plan.h. The header and
 * the steps are u32 words at aligned offsets, written through a typed
 * array: Buffer's write methods are calls with checks, which a CLI start
 * runs interpreted, a thousand times per plan.
 */
export function serializePlan(steps: readonly PlanStep[]): Buffer {
  if (steps.length === 0 || steps.length > MAX_STEPS) throw new RangeError(`plan has ${steps.length} steps`);
  const pool = new StringPool();
  const stepsEnd = HEADER_SIZE + steps.length * STEP_SIZE;
  const refs = new Uint32Array(4 * steps.length).fill(NO_STRING);
  steps.forEach((step, i) => {
    const stepRefs = step.blob
      ? [pool.blob(step.blob)]
      : step.lists
        ? step.lists.map((l) => pool.list(l))
        : (step.strs ?? []).map((s) => (s === null ? NO_STRING : pool.string(s)));
    if (stepRefs.length > 4) throw new RangeError(`${step.op}: at most 4 strings`);
    refs.set(stepRefs, 4 * i);
  });
  // Buffer.alloc gives the buffer its own ArrayBuffer: offset 0, so the words are aligned.
  const out = Buffer.alloc(stepsEnd + pool.length);
  const words = new Uint32Array(out.buffer, out.byteOffset, stepsEnd / 4);
  words[0] = PLAN_MAGIC;
  words[1] = PLAN_VERSION;
  words[2] = steps.length;
  words[3] = stepsEnd;
  steps.forEach((step, i) => {
    const base = (HEADER_SIZE + i * STEP_SIZE) / 4;
    words[base] = Op[step.op];
    words[base + 1] = step.flags ?? 0;
    const args = step.args ?? [];
    if (args.length > 3) throw new RangeError(`${step.op}: at most 3 args`);
    for (let a = 0; a < args.length; a++) storeArg(words, base + 2 + 2 * a, args[a]);
    words.set(refs.subarray(4 * i, 4 * i + 4), base + 8);
  });
  pool.writeTo(out, stepsEnd);
  return out;
}

/** Turns the child's {step, errno} report into an error naming the step. */
export function childFailure(steps: readonly PlanStep[], report: ChildErrorReport): SyscallError {
  const step = steps[report.step];
  if (!step) return new SyscallError('spawn', 'unknown step', report.errno, undefined, `step ${report.step}`);
  return new SyscallError(step.phase, syscallName(step.op), report.errno, step.target, step.detail);
}
