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

  writeTo(out: Buffer, start: number): void {
    let at = start;
    for (const entry of this.entries) {
      if (typeof entry === 'string') {
        at += out.write(entry, at, 'utf8');
        out[at++] = 0;
      } else if (Buffer.isBuffer(entry)) {
        at = out.writeUInt32LE(entry.length, at);
        at += entry.copy(out, at);
      } else {
        at = out.writeUInt32LE(entry.length, at);
        for (const item of entry) at = out.writeUInt32LE(item, at);
      }
    }
  }
}

/** Writes a step argument as the s64 native/plan.h reads; small numbers skip the BigInt conversion. */
function writeArg(out: Buffer, arg: number | bigint, at: number): void {
  if (typeof arg === 'number' && Number.isInteger(arg) && Math.abs(arg) < 2 ** 47) {
    out.writeIntLE(arg, at, 6);
    out.writeInt16LE(arg < 0 ? -1 : 0, at + 6);
  } else {
    out.writeBigInt64LE(BigInt(arg), at);
  }
}

/** Serializes steps into the wire format of native/plan.h. */
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
  const out = Buffer.alloc(stepsEnd + pool.length);
  out.writeUInt32LE(PLAN_MAGIC, 0);
  out.writeUInt32LE(PLAN_VERSION, 4);
  out.writeUInt32LE(steps.length, 8);
  out.writeUInt32LE(stepsEnd, 12);
  steps.forEach((step, i) => {
    const base = HEADER_SIZE + i * STEP_SIZE;
    out.writeUInt32LE(Op[step.op], base);
    out.writeUInt32LE(step.flags ?? 0, base + 4);
    const args = step.args ?? [];
    if (args.length > 3) throw new RangeError(`${step.op}: at most 3 args`);
    for (let a = 0; a < args.length; a++) writeArg(out, args[a], base + 8 + 8 * a);
    for (let s = 0; s < 4; s++) out.writeUInt32LE(refs[4 * i + s], base + 32 + 4 * s);
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
