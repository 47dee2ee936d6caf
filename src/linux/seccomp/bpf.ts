import { ValidationError } from '../../errors';
import type { LinuxSeccomp, LinuxSeccompArg, SeccompAction } from '../../oci/runtime-spec';
import type * as SyscallTable from './syscall-table';

/**
 * A seccomp filter compiler: `linux.seccomp` (the OCI form, rules already
 * resolved) to a classic BPF program for one architecture.
 *
 * The program checks the architecture first and goes to that ABI's
 * section: the native one, and i386 on x86_64 where the profile lists
 * SCMP_ARCH_X86 (as Docker's does); any other ABI, x32 included, kills the
 * process, since a rule names syscalls by one ABI's numbers. A section
 * finds the syscall number with a binary search over intervals of
 * numbers. Each syscall's rules are tried in the profile's order; a rule
 * matches when all its argument conditions do (64-bit comparisons, done
 * as two 32-bit ones, high word first); no match gives the default action.
 * See: man 2 seccomp, linux/filter.h, linux/seccomp.h.
 */

export type SeccompArch = 'x86_64' | 'aarch64';

/** A syscall ABI: what seccomp_data.arch says for it, and its numbers. */
interface Abi {
  scmp: string;
  audit: number;
  syscalls(): Readonly<Record<string, number>>;
  /** x86_64's x32 calls come with AUDIT_ARCH_X86_64 and bit 30 set in the number. */
  x32: boolean;
}

/**
 * The generated tables (~1,200 names) are loaded by the first lookup: a
 * container whose program comes from the cache (program-cache.ts) needs
 * none, and evaluating them was ~1 ms of a CLI start.
 */
function syscallTable(): typeof SyscallTable {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return require('./syscall-table') as typeof SyscallTable;
}

const X86_64: Abi = { scmp: 'SCMP_ARCH_X86_64', audit: 0xc000003e, syscalls: () => syscallTable().X86_64_SYSCALLS, x32: true };
const I386: Abi = { scmp: 'SCMP_ARCH_X86', audit: 0x40000003, syscalls: () => syscallTable().I386_SYSCALLS, x32: false };
const AARCH64: Abi = { scmp: 'SCMP_ARCH_AARCH64', audit: 0xc00000b7, syscalls: () => syscallTable().AARCH64_SYSCALLS, x32: false };

/** Each host architecture's own ABI, and the 32-bit one a profile may list too. */
const ARCHES: Record<SeccompArch, { native: Abi; compat: Abi[] }> = {
  x86_64: { native: X86_64, compat: [I386] },
  aarch64: { native: AARCH64, compat: [] },
};

/** The seccomp architecture of this Node process. */
export function hostSeccompArch(arch: string = process.arch): SeccompArch {
  if (arch === 'x64') return 'x86_64';
  if (arch === 'arm64') return 'aarch64';
  throw new ValidationError('linux.seccomp', `seccomp filters are built for x86_64 and aarch64, not ${arch}`);
}

export function syscallNumber(arch: SeccompArch, name: string): number | undefined {
  return ARCHES[arch].native.syscalls()[name];
}

// Classic BPF opcodes (linux/bpf_common.h).
const LD_W_ABS = 0x20;
const JEQ_K = 0x15;
const JGT_K = 0x25;
const JGE_K = 0x35;
const JA = 0x05;
const AND_K = 0x54;
const RET_K = 0x06;

const OFFSET_NR = 0;
const OFFSET_ARCH = 4;
const argLow = (i: number): number => 16 + 8 * i;
const argHigh = (i: number): number => 20 + 8 * i;
const X32_SYSCALL_BIT = 0x40000000;

const SECCOMP_RET: Record<Exclude<SeccompAction, 'SCMP_ACT_NOTIFY'>, number> = {
  SCMP_ACT_KILL: 0x00000000,
  SCMP_ACT_KILL_THREAD: 0x00000000,
  SCMP_ACT_KILL_PROCESS: 0x80000000,
  SCMP_ACT_TRAP: 0x00030000,
  SCMP_ACT_ERRNO: 0x00050000,
  SCMP_ACT_TRACE: 0x7ff00000,
  SCMP_ACT_LOG: 0x7ffc0000,
  SCMP_ACT_ALLOW: 0x7fff0000,
};

export const SECCOMP_FILTER_FLAGS: Readonly<Record<string, number>> = {
  SECCOMP_FILTER_FLAG_TSYNC: 1,
  SECCOMP_FILTER_FLAG_LOG: 2,
  SECCOMP_FILTER_FLAG_SPEC_ALLOW: 4,
};

const EPERM = 1;

/** The SECCOMP_RET_* value of an action; ERRNO and TRACE carry errnoRet in the low 16 bits. */
export function actionValue(field: string, action: SeccompAction, errnoRet: number | undefined, defaultErrno = EPERM): number {
  if (action === 'SCMP_ACT_NOTIFY') throw new ValidationError(field, 'SCMP_ACT_NOTIFY needs a seccomp agent, which tsrun does not have');
  const base = SECCOMP_RET[action];
  if (base === undefined) throw new ValidationError(field, `unknown seccomp action ${JSON.stringify(action)}`);
  if (action === 'SCMP_ACT_ERRNO') return (base | ((errnoRet ?? defaultErrno) & 0xffff)) >>> 0;
  if (action === 'SCMP_ACT_TRACE') return (base | ((errnoRet ?? 0) & 0xffff)) >>> 0;
  return base >>> 0;
}

type Target = number | 'pass' | 'fail';

interface Insn {
  code: number;
  jt: Target;
  jf: Target;
  k: number;
}

const insn = (code: number, k: number, jt: Target = 0, jf: Target = 0): Insn => ({ code, jt, jf, k: k >>> 0 });
const ret = (value: number): Insn => insn(RET_K, value);

function split(field: string, value: number | undefined): [hi: number, lo: number] {
  const v = BigInt(value ?? 0);
  if (v < 0n || v > 0xffffffffffffffffn) throw new ValidationError(field, `${value} is not a 64-bit unsigned value`);
  return [Number(v >> 32n), Number(v & 0xffffffffn)];
}

/** One argument condition; 'pass' goes to the next condition, 'fail' to the next rule. */
function condition(field: string, arg: LinuxSeccompArg): Insn[] {
  if (!Number.isInteger(arg.index) || arg.index < 0 || arg.index > 5) throw new ValidationError(`${field}.index`, 'must be 0 to 5');
  const [vh, vl] = split(`${field}.value`, arg.value);
  const hi = insn(LD_W_ABS, argHigh(arg.index));
  const lo = insn(LD_W_ABS, argLow(arg.index));
  switch (arg.op) {
    case 'SCMP_CMP_EQ':
      return [hi, insn(JEQ_K, vh, 0, 'fail'), lo, insn(JEQ_K, vl, 0, 'fail')];
    case 'SCMP_CMP_NE':
      return [hi, insn(JEQ_K, vh, 0, 'pass'), lo, insn(JEQ_K, vl, 'fail', 0)];
    case 'SCMP_CMP_MASKED_EQ': {
      const [eh, el] = split(`${field}.valueTwo`, arg.valueTwo);
      return [hi, insn(AND_K, vh), insn(JEQ_K, eh, 0, 'fail'), lo, insn(AND_K, vl), insn(JEQ_K, el, 0, 'fail')];
    }
    case 'SCMP_CMP_GT':
      return [hi, insn(JGT_K, vh, 'pass', 0), insn(JEQ_K, vh, 0, 'fail'), lo, insn(JGT_K, vl, 'pass', 'fail')];
    case 'SCMP_CMP_GE':
      return [hi, insn(JGT_K, vh, 'pass', 0), insn(JEQ_K, vh, 0, 'fail'), lo, insn(JGE_K, vl, 'pass', 'fail')];
    case 'SCMP_CMP_LT':
      return [hi, insn(JGE_K, vh, 0, 'pass'), insn(JEQ_K, vh, 0, 'fail'), lo, insn(JGE_K, vl, 'fail', 'pass')];
    case 'SCMP_CMP_LE':
      return [hi, insn(JGE_K, vh, 0, 'pass'), insn(JEQ_K, vh, 0, 'fail'), lo, insn(JGT_K, vl, 'fail', 'pass')];
    default:
      throw new ValidationError(`${field}.op`, `unknown comparison ${JSON.stringify(arg.op)}`);
  }
}

function offset(field: string, from: number, to: number): number {
  const distance = to - from - 1;
  if (distance < 0 || distance > 255) throw new ValidationError(field, 'the rule is too long for a BPF jump');
  return distance;
}

/** A rule: its conditions, then its action; symbolic jumps resolved within the rule. */
function ruleCode(field: string, args: readonly LinuxSeccompArg[], action: number): Insn[] {
  const code: Insn[] = [];
  const conditions = args.map((arg, i) => condition(`${field}.args[${i}]`, arg));
  const ends: number[] = [];
  for (const c of conditions) {
    code.push(...c);
    ends.push(code.length);
  }
  code.push(ret(action));
  const end = code.length;
  let c = 0;
  for (let pos = 0; pos < end - 1; pos++) {
    while (pos >= ends[c]) c++;
    const resolve = (t: Target): number => (t === 'pass' ? offset(field, pos, ends[c]) : t === 'fail' ? offset(field, pos, end) : t);
    code[pos] = { ...code[pos], jt: resolve(code[pos].jt), jf: resolve(code[pos].jf) };
  }
  return code;
}

/** Syscall numbers from `from` up to the next interval's start, which share one piece of code. */
interface Interval {
  from: number;
  code: Insn[];
}

/** The return value of code that is a single return, else undefined. */
function plainReturn(code: readonly Insn[]): number | undefined {
  return code.length === 1 && code[0].code === RET_K ? code[0].k : undefined;
}

/**
 * Every syscall number, 0 up, as intervals: each syscall's block, and the
 * default action between them; neighbours that only return the same value
 * are one interval. Docker's profile allows long runs of neighbouring
 * numbers, so a few dozen intervals cover the ~350 syscalls it names.
 */
function intervals(blocks: readonly [number, Insn[]][], defaultAction: number): Interval[] {
  const result: Interval[] = [];
  const add = (from: number, code: Insn[]): void => {
    const value = plainReturn(code);
    const last = result[result.length - 1];
    if (value !== undefined && last && plainReturn(last.code) === value) return;
    result.push({ from, code });
  };
  let next = 0;
  for (const [nr, code] of blocks) {
    if (nr > next) add(next, [ret(defaultAction)]);
    add(nr, code);
    next = nr + 1;
  }
  add(next, [ret(defaultAction)]);
  return result;
}

/**
 * A binary search on the syscall number in the accumulator over the
 * intervals, which end in their code: a syscall costs a few compares, and
 * the program (which the kernel checks, JIT-compiles and emulates for
 * every syscall number at each container start) stays small. Every path
 * through a block returns, so the conditions' loads of the arguments never
 * reach a compare on the number. A far jump goes through JA, whose offset
 * is 32 bits (a conditional jump's is 8).
 */
function searchTree(spans: readonly Interval[]): Insn[] {
  if (spans.length === 1) return spans[0].code;
  const mid = spans.length >> 1;
  const left = searchTree(spans.slice(0, mid));
  const right = searchTree(spans.slice(mid));
  const branch = left.length <= 255 ? [insn(JGE_K, spans[mid].from, left.length, 0)] : [insn(JGE_K, spans[mid].from, 0, 1), insn(JA, left.length)];
  return [...branch, ...left, ...right];
}

/**
 * Compiles `seccomp` for `arch`; names this architecture does not have are
 * skipped (Docker's profile lists every architecture's), and returned in
 * `unknown` for the caller to log.
 */
export function compileSeccomp(seccomp: LinuxSeccomp, arch: SeccompArch): { program: Buffer; unknown: string[] } {
  const { native, compat } = ARCHES[arch];
  const defaultAction = actionValue('linux.seccomp.defaultAction', seccomp.defaultAction, seccomp.defaultErrnoRet);
  const rules = (seccomp.syscalls ?? []).flatMap((rule, r) => {
    const field = `linux.seccomp.syscalls[${r}]`;
    const action = actionValue(`${field}.action`, rule.action, rule.errnoRet, seccomp.defaultErrnoRet);
    // A rule that only repeats the default changes nothing.
    if (action === defaultAction && (rule.args ?? []).length === 0) return [];
    return [{ names: rule.names ?? [], code: ruleCode(field, rule.args ?? [], action) }];
  });
  const nativeNumbers = native.syscalls();
  const unknown = new Set(rules.flatMap((r) => r.names).filter((name) => nativeNumbers[name] === undefined));

  // One section per ABI the profile lists (the native one always); any
  // other ABI is killed.
  const abis = [native, ...compat.filter((abi) => seccomp.architectures?.includes(abi.scmp))];
  const sections = abis.map((abi) => {
    const bySyscall = new Map<number, Insn[]>();
    const numbers = abi.syscalls();
    for (const rule of rules) {
      for (const name of rule.names) {
        const nr = numbers[name];
        if (nr !== undefined) bySyscall.set(nr, [...(bySyscall.get(nr) ?? []), ...rule.code]);
      }
    }
    const blocks = [...bySyscall].sort((a, b) => a[0] - b[0]).map(([nr, code]): [number, Insn[]] => [
      nr,
      // Rules that can fall through end in the default action.
      code[code.length - 1].code === RET_K && code.length === 1 ? code : [...code, ret(defaultAction)],
    ]);
    const section = [insn(LD_W_ABS, OFFSET_NR)];
    if (abi.x32) section.push(insn(JGE_K, X32_SYSCALL_BIT, 0, 1), ret(SECCOMP_RET.SCMP_ACT_KILL_PROCESS));
    return [...section, ...searchTree(intervals(blocks, defaultAction))];
  });
  const program: Insn[] = [insn(LD_W_ABS, OFFSET_ARCH)];
  let start = 1 + 2 * abis.length + 1;
  abis.forEach((abi, i) => {
    program.push(insn(JEQ_K, abi.audit, 0, 1), insn(JA, start - program.length - 2));
    start += sections[i].length;
  });
  program.push(ret(SECCOMP_RET.SCMP_ACT_KILL_PROCESS));
  for (const section of sections) program.push(...section);
  if (program.length > 4096) throw new ValidationError('linux.seccomp', `the filter has ${program.length} instructions; the kernel takes at most 4096`);

  const buf = Buffer.alloc(program.length * 8);
  program.forEach((i, n) => {
    buf.writeUInt16LE(i.code, n * 8);
    buf.writeUInt8(i.jt as number, n * 8 + 2);
    buf.writeUInt8(i.jf as number, n * 8 + 3);
    buf.writeUInt32LE(i.k, n * 8 + 4);
  });
  return { program: buf, unknown: [...unknown].sort() };
}

/** SECCOMP_FILTER_FLAG_* bits of `linux.seccomp.flags`. */
export function seccompFlags(flags: readonly string[] = []): number {
  return flags.reduce((bits, flag, i) => {
    const bit = SECCOMP_FILTER_FLAGS[flag];
    if (bit === undefined) throw new ValidationError(`linux.seccomp.flags[${i}]`, `unknown or unsupported flag ${JSON.stringify(flag)}`);
    return bits | bit;
  }, 0);
}
