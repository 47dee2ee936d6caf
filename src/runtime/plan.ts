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

class StringPool {
  private readonly chunks: Buffer[] = [];
  private size = 0;
  private readonly offsets = new Map<string, number>();

  string(value: string): number {
    if (value.includes('\0')) throw new TypeError(`plan string contains a NUL byte: ${JSON.stringify(value)}`);
    const known = this.offsets.get(value);
    if (known !== undefined) return known;
    const offset = this.push(Buffer.from(`${value}\0`, 'utf8'));
    this.offsets.set(value, offset);
    return offset;
  }

  list(values: string[]): number {
    const items = values.map((v) => this.string(v));
    const buf = Buffer.alloc(4 + 4 * items.length);
    buf.writeUInt32LE(items.length, 0);
    items.forEach((offset, i) => buf.writeUInt32LE(offset, 4 + 4 * i));
    return this.push(buf);
  }

  blob(bytes: Buffer): number {
    const head = Buffer.alloc(4);
    head.writeUInt32LE(bytes.length, 0);
    return this.push(Buffer.concat([head, bytes]));
  }

  concat(): Buffer {
    return Buffer.concat(this.chunks, this.size);
  }

  private push(buf: Buffer): number {
    const offset = this.size;
    this.chunks.push(buf);
    this.size += buf.length;
    return offset;
  }
}

/** Serializes steps into the wire format of native/plan.h. */
export function serializePlan(steps: readonly PlanStep[]): Buffer {
  if (steps.length === 0 || steps.length > MAX_STEPS) throw new RangeError(`plan has ${steps.length} steps`);
  const pool = new StringPool();
  const head = Buffer.alloc(HEADER_SIZE + steps.length * STEP_SIZE);
  head.writeUInt32LE(PLAN_MAGIC, 0);
  head.writeUInt32LE(PLAN_VERSION, 4);
  head.writeUInt32LE(steps.length, 8);
  head.writeUInt32LE(head.length, 12);
  steps.forEach((step, i) => {
    const base = HEADER_SIZE + i * STEP_SIZE;
    head.writeUInt32LE(Op[step.op], base);
    head.writeUInt32LE(step.flags ?? 0, base + 4);
    const args = step.args ?? [];
    if (args.length > 3) throw new RangeError(`${step.op}: at most 3 args`);
    args.forEach((arg, a) => head.writeBigInt64LE(BigInt(arg), base + 8 + 8 * a));
    const refs = step.blob
      ? [pool.blob(step.blob)]
      : step.lists
        ? step.lists.map((l) => pool.list(l))
        : (step.strs ?? []).map((s) => (s === null ? NO_STRING : pool.string(s)));
    if (refs.length > 4) throw new RangeError(`${step.op}: at most 4 strings`);
    for (let s = 0; s < 4; s++) head.writeUInt32LE(refs[s] ?? NO_STRING, base + 32 + 4 * s);
  });
  return Buffer.concat([head, pool.concat()]);
}

/** Turns the child's {step, errno} report into an error naming the step. */
export function childFailure(steps: readonly PlanStep[], report: ChildErrorReport): SyscallError {
  const step = steps[report.step];
  if (!step) return new SyscallError('spawn', 'unknown step', report.errno, undefined, `step ${report.step}`);
  return new SyscallError(step.phase, syscallName(step.op), report.errno, step.target, step.detail);
}
