/**
 * An independent reader of the plan wire format, written from the comment
 * in native/plan.h (not from src/runtime/plan.ts), so that tests can check
 * what the serializer really put in the buffer.
 *
 *   header:  u32 magic, u32 version, u32 step_count, u32 pool_offset
 *   steps:   u32 op, u32 flags, i64 args[3], u32 strs[4]   (48 bytes)
 *   pool:    NUL-terminated strings; a list is u32 count + count u32 offsets
 */
import { Op, OpName } from '../../src/runtime/plan-opcodes';

export const NONE = 0xffffffff;

export interface DecodedStep {
  opcode: number;
  op: OpName | undefined;
  flags: number;
  args: [bigint, bigint, bigint];
  refs: [number, number, number, number];
}

export interface DecodedPlan {
  magic: number;
  version: number;
  count: number;
  poolOffset: number;
  steps: DecodedStep[];
  pool: Buffer;
  /** The NUL-terminated string at `offset` of the pool, or null for NONE. */
  string(offset: number): string | null;
  /** The string list at `offset` of the pool. */
  list(offset: number): string[];
}

const NAMES = new Map<number, OpName>(Object.entries(Op).map(([name, code]) => [code, name as OpName]));

export function decodePlan(buf: Buffer): DecodedPlan {
  const count = buf.readUInt32LE(8);
  const poolOffset = buf.readUInt32LE(12);
  const steps: DecodedStep[] = [];
  for (let i = 0; i < count; i++) {
    const base = 16 + 48 * i;
    const opcode = buf.readUInt32LE(base);
    steps.push({
      opcode,
      op: NAMES.get(opcode),
      flags: buf.readUInt32LE(base + 4),
      args: [buf.readBigInt64LE(base + 8), buf.readBigInt64LE(base + 16), buf.readBigInt64LE(base + 24)],
      refs: [buf.readUInt32LE(base + 32), buf.readUInt32LE(base + 36), buf.readUInt32LE(base + 40), buf.readUInt32LE(base + 44)],
    });
  }
  const pool = buf.subarray(poolOffset);
  const string = (offset: number): string | null => {
    if (offset === NONE) return null;
    if (offset >= pool.length) throw new Error(`string offset ${offset} outside a pool of ${pool.length} bytes`);
    const end = pool.indexOf(0, offset);
    if (end < 0) throw new Error(`string at ${offset} is not NUL-terminated`);
    return pool.toString('utf8', offset, end);
  };
  const list = (offset: number): string[] => {
    const n = pool.readUInt32LE(offset);
    return Array.from({ length: n }, (_, i) => string(pool.readUInt32LE(offset + 4 + 4 * i)) as string);
  };
  return { magic: buf.readUInt32LE(0), version: buf.readUInt32LE(4), count, poolOffset, steps, pool, string, list };
}

/** The opcode names of a serialized plan, in order. */
export function decodedOps(buf: Buffer): (OpName | undefined)[] {
  return decodePlan(buf).steps.map((s) => s.op);
}
