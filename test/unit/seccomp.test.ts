import os = require('node:os');
import { ValidationError } from '../../src/errors';
import { DEFAULT_SECCOMP_PROFILE, compileSeccomp, resolveProfile, syscallNumber } from '../../src/linux/seccomp';
import type { SeccompArch, SeccompProfile } from '../../src/linux/seccomp';
import { AARCH64_SYSCALLS, I386_SYSCALLS, X86_64_SYSCALLS } from '../../src/linux/seccomp/syscall-table';
import type { LinuxSeccomp } from '../../src/oci/runtime-spec';

const AUDIT = { x86_64: 0xc000003e, aarch64: 0xc00000b7 };
const ALLOW = 0x7fff0000;
const errno = (e: number): number => 0x00050000 | e;
const KILL_PROCESS = 0x80000000;
const AUDIT_I386 = 0x40000003;

/**
 * A classic BPF interpreter for the instructions a seccomp filter may use,
 * written from linux/filter.h, to run the compiled program against
 * seccomp_data as the kernel would.
 */
let executed = 0;

function runFilter(program: Buffer, data: { nr: number; arch: number; args?: bigint[] }): number {
  executed = 0;
  const mem = Buffer.alloc(64);
  mem.writeInt32LE(data.nr, 0);
  mem.writeUInt32LE(data.arch, 4);
  (data.args ?? []).forEach((a, i) => mem.writeBigUInt64LE(BigInt.asUintN(64, a), 16 + 8 * i));
  let acc = 0;
  for (let pc = 0; pc < program.length / 8; pc++) {
    const code = program.readUInt16LE(pc * 8);
    const jt = program.readUInt8(pc * 8 + 2);
    const jf = program.readUInt8(pc * 8 + 3);
    const k = program.readUInt32LE(pc * 8 + 4);
    executed++;
    switch (code) {
      case 0x20:
        acc = mem.readUInt32LE(k);
        break;
      case 0x54:
        acc = (acc & k) >>> 0;
        break;
      case 0x05:
        pc += k;
        break;
      case 0x15:
        pc += acc === k ? jt : jf;
        break;
      case 0x25:
        pc += acc > k ? jt : jf;
        break;
      case 0x35:
        pc += acc >= k ? jt : jf;
        break;
      case 0x06:
        return k;
      default:
        throw new Error(`unexpected opcode 0x${code.toString(16)} at ${pc}`);
    }
  }
  throw new Error('fell off the end of the program');
}

function filterFor(seccomp: LinuxSeccomp, arch: SeccompArch = 'x86_64'): (name: string, args?: bigint[]) => number {
  const { program } = compileSeccomp(seccomp, arch);
  return (name, args) => {
    const nr = syscallNumber(arch, name);
    if (nr === undefined) throw new Error(`no ${name} on ${arch}`);
    return runFilter(program, { nr, arch: AUDIT[arch], args });
  };
}

describe('seccomp: Docker\'s default profile compiled for each architecture', () => {
  for (const arch of ['x86_64', 'aarch64'] as const) {
    test(`${arch}: the default container's filter`, () => {
      const caps = ['CAP_CHOWN', 'CAP_SYS_CHROOT', 'CAP_KILL'];
      const check = filterFor(resolveProfile(DEFAULT_SECCOMP_PROFILE, { capabilities: caps, arch, kernel: '6.1.0' }), arch);
      for (const name of ['read', 'write', 'openat', 'execve', 'chroot', 'capset', 'prctl', 'ptrace', 'wait4']) expect([name, check(name)]).toEqual([name, ALLOW]);
      for (const name of ['unshare', 'mount', 'setns', 'keyctl', 'add_key', 'bpf', 'kexec_load', 'init_module', 'reboot', 'open_by_handle_at', 'userfaultfd', 'clock_settime']) {
        expect([name, check(name)]).toEqual([name, errno(1)]);
      }
      expect(check('clone3')).toBe(errno(38));
      // clone: a plain fork or thread yes, a new namespace no.
      expect(check('clone', [0x11n /* SIGCHLD */])).toBe(ALLOW);
      expect(check('clone', [0x10000000n /* CLONE_NEWUSER */])).toBe(errno(1));
      expect(check('clone', [0x20000n /* CLONE_NEWNS */ | 0x11n])).toBe(errno(1));
      expect(check('socket', [2n])).toBe(ALLOW);
      expect(check('socket', [40n /* AF_VSOCK */])).toBe(errno(1));
      expect(check('socket', [40n | (1n << 32n)])).toBe(ALLOW);
      expect(check('personality', [0xffffffffn])).toBe(ALLOW);
      expect(check('personality', [0x0040000n /* READ_IMPLIES_EXEC */])).toBe(errno(1));
    });
  }

  test('every syscall of the table gets exactly its rule, in a few dozen instructions (the search tree routes each number)', () => {
    for (const arch of ['x86_64', 'aarch64'] as const) {
      const resolved = resolveProfile(DEFAULT_SECCOMP_PROFILE, { capabilities: ['CAP_CHOWN'], arch, kernel: '6.1.0' });
      const allowed = new Set(resolved.syscalls?.filter((r) => r.action === 'SCMP_ACT_ALLOW' && !r.args).flatMap((r) => r.names));
      const conditional = new Set(resolved.syscalls?.filter((r) => r.args || r.action !== 'SCMP_ACT_ALLOW').flatMap((r) => r.names));
      const check = filterFor(resolved, arch);
      const table = arch === 'x86_64' ? X86_64_SYSCALLS : AARCH64_SYSCALLS;
      let longest = 0;
      for (const name of Object.keys(table)) {
        if (conditional.has(name)) continue;
        expect([arch, name, check(name)]).toEqual([arch, name, allowed.has(name) ? ALLOW : errno(1)]);
        longest = Math.max(longest, executed);
      }
      expect(longest).toBeLessThan(40);
      // Numbers no syscall has yet, below and past the table's last, get the default action.
      const { program } = compileSeccomp(resolved, arch);
      const last = Math.max(...Object.values(table));
      for (const nr of [last + 1, last + 100, 0x3fffffff]) expect([arch, nr, runFilter(program, { nr, arch: AUDIT[arch] })]).toEqual([arch, nr, errno(1)]);
      // Neighbouring numbers with one action share a compare: the kernel checks and JIT-compiles the whole program at every start.
      expect(program.length / 8).toBeLessThan(arch === 'x86_64' ? 600 : 300);
    }
  });

  test('CAP_SYS_ADMIN brings mount, unshare and any clone, as Docker resolves its includes', () => {
    const check = filterFor(resolveProfile(DEFAULT_SECCOMP_PROFILE, { capabilities: ['CAP_SYS_ADMIN'], arch: 'x86_64' }));
    expect(check('mount')).toBe(ALLOW);
    expect(check('unshare')).toBe(ALLOW);
    expect(check('clone', [0x10000000n])).toBe(ALLOW);
    expect(check('clone3')).toBe(ALLOW);
  });

  test('a rule with minKernel applies from that release on, and by default the release is this kernel\'s', () => {
    const profile: SeccompProfile = {
      defaultAction: 'SCMP_ACT_ERRNO',
      syscalls: [{ names: ['ptrace'], action: 'SCMP_ACT_ALLOW', includes: { minKernel: '4.8' } }],
    };
    const names = (kernel?: string): string[] => (resolveProfile(profile, { capabilities: [], arch: 'x86_64', kernel }).syscalls ?? []).flatMap((r) => r.names);
    expect(names('4.4.0-210-generic')).toEqual([]);
    expect(names('4.8.0')).toEqual(['ptrace']);
    expect(names('10.0.1')).toEqual(['ptrace']);
    expect(names()).toEqual(names(os.release()));
  });

  test('i386 calls on x86_64 get the same rules by their own numbers; any other ABI, x32 included, is killed', () => {
    const resolved = resolveProfile(DEFAULT_SECCOMP_PROFILE, { capabilities: [], arch: 'x86_64' });
    const { program } = compileSeccomp(resolved, 'x86_64');
    const i386 = (name: string): number => runFilter(program, { nr: I386_SYSCALLS[name], arch: AUDIT_I386 });
    for (const name of ['read', 'socketcall', 'chown32', '_llseek', 'mmap2', 'modify_ldt']) expect([name, i386(name)]).toEqual([name, ALLOW]);
    for (const name of ['unshare', 'mount', 'kexec_load', 'keyctl']) expect([name, i386(name)]).toEqual([name, errno(1)]);
    expect(i386('clone3')).toBe(errno(38));
    expect(runFilter(program, { nr: 0, arch: 0x40000028 /* AUDIT_ARCH_ARM */ })).toBe(KILL_PROCESS);
    expect(runFilter(program, { nr: 0x40000000, arch: AUDIT.x86_64 })).toBe(KILL_PROCESS);
    // A profile that lists only x86_64 kills the 32-bit ABI.
    const nativeOnly = compileSeccomp({ ...resolved, architectures: ['SCMP_ARCH_X86_64'] }, 'x86_64').program;
    expect(runFilter(nativeOnly, { nr: I386_SYSCALLS.read, arch: AUDIT_I386 })).toBe(KILL_PROCESS);
    expect(runFilter(nativeOnly, { nr: X86_64_SYSCALLS.read, arch: AUDIT.x86_64 })).toBe(ALLOW);
  });
});

describe('seccomp: the compiler', () => {
  test('64-bit comparisons, each operator, across the 32-bit halves', () => {
    const rule = (op: string, value: number, valueTwo?: number): LinuxSeccomp => ({
      defaultAction: 'SCMP_ACT_ALLOW',
      syscalls: [{ names: ['getpid'], action: 'SCMP_ACT_ERRNO', errnoRet: 99, args: [{ index: 2, value, valueTwo, op: op as never }] }],
    });
    const big = 2 ** 33 + 5;
    const cases: [string, number, bigint, boolean][] = [
      ['SCMP_CMP_EQ', big, BigInt(big), true],
      ['SCMP_CMP_EQ', big, 5n, false],
      ['SCMP_CMP_NE', big, 5n, true],
      ['SCMP_CMP_NE', big, BigInt(big), false],
      ['SCMP_CMP_GT', big, BigInt(big) + 1n, true],
      ['SCMP_CMP_GT', big, BigInt(big), false],
      ['SCMP_CMP_GT', big, 0xffffffffn, false],
      ['SCMP_CMP_GE', big, BigInt(big), true],
      ['SCMP_CMP_GE', big, BigInt(big) - 1n, false],
      ['SCMP_CMP_LT', big, 0xffffffffn, true],
      ['SCMP_CMP_LT', big, BigInt(big), false],
      ['SCMP_CMP_LT', big, 1n << 34n, false],
      ['SCMP_CMP_LE', big, BigInt(big), true],
      ['SCMP_CMP_LE', big, BigInt(big) + 1n, false],
    ];
    for (const [op, value, arg, denied] of cases) {
      const result = filterFor(rule(op, value))('getpid', [0n, 0n, arg]);
      expect([op, value, arg, result]).toEqual([op, value, arg, denied ? errno(99) : ALLOW]);
    }
    const masked = filterFor(rule('SCMP_CMP_MASKED_EQ', 0xf0, 0x30));
    expect(masked('getpid', [0n, 0n, 0x3fn])).toBe(errno(99));
    expect(masked('getpid', [0n, 0n, 0x4fn])).toBe(ALLOW);
  });

  test('rules for one syscall are tried in order, all conditions of a rule must hold', () => {
    const check = filterFor({
      defaultAction: 'SCMP_ACT_ERRNO',
      defaultErrnoRet: 13,
      syscalls: [
        { names: ['kill'], action: 'SCMP_ACT_ALLOW', args: [{ index: 0, value: 1, op: 'SCMP_CMP_EQ' }, { index: 1, value: 9, op: 'SCMP_CMP_EQ' }] },
        { names: ['kill'], action: 'SCMP_ACT_ERRNO', errnoRet: 3, args: [{ index: 1, value: 15, op: 'SCMP_CMP_EQ' }] },
        { names: ['getpid', 'no_such_syscall'], action: 'SCMP_ACT_ALLOW' },
      ],
    });
    expect(check('kill', [1n, 9n])).toBe(ALLOW);
    expect(check('kill', [2n, 9n])).toBe(errno(13));
    expect(check('kill', [1n, 15n])).toBe(errno(3));
    expect(check('getpid')).toBe(ALLOW);
    expect(check('getppid')).toBe(errno(13));
  });

  test('bad profiles name the field', () => {
    expect(() => compileSeccomp({ defaultAction: 'SCMP_ACT_NOPE' as never }, 'x86_64')).toThrow(ValidationError);
    expect(() => compileSeccomp({ defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['read'], action: 'SCMP_ACT_NOTIFY' }] }, 'x86_64')).toThrow(/syscalls\[0\]\.action: SCMP_ACT_NOTIFY/);
    expect(() => compileSeccomp({ defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['read'], action: 'SCMP_ACT_KILL', args: [{ index: 6, value: 0, op: 'SCMP_CMP_EQ' }] }] }, 'x86_64')).toThrow(
      /args\[0\]\.index/,
    );
    expect(() => resolveProfile({ syscalls: [] } as never, { capabilities: [], arch: 'x86_64' })).toThrow(/defaultAction/);
  });
});
