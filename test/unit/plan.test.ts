import * as fs from 'node:fs';
import { SyscallError } from '../../src/errors';
import { loadNative } from '../../src/native';
import { PlanStep, childFailure, serializePlan, syscallName } from '../../src/runtime/plan';
import { HEADER_SIZE, MAX_STEPS, NO_STRING, Op, OpName, PLAN_MAGIC, PLAN_VERSION, STEP_SIZE, StepFlag } from '../../src/runtime/plan-opcodes';
import { NONE, decodePlan } from './plan-decoder';

const exec = (argv = ['/bin/true'], env: string[] = []): PlanStep => ({ op: 'Exec', lists: [[argv[0]], argv, env], phase: 'process', target: argv[0] });

describe('serializePlan: header', () => {
  test('magic, version, step count and pool offset, little endian', () => {
    const steps: PlanStep[] = [{ op: 'Umask', args: [0o22], phase: 'p' }, { op: 'Chdir', strs: ['/'], phase: 'p' }, exec()];
    const buf = serializePlan(steps);
    expect(buf.subarray(0, 4).toString('latin1')).toBe('TPLN');
    expect(buf.readUInt32LE(0)).toBe(PLAN_MAGIC);
    expect(buf.readUInt32LE(4)).toBe(PLAN_VERSION);
    expect(buf.readUInt32LE(8)).toBe(3);
    expect(buf.readUInt32LE(12)).toBe(HEADER_SIZE + 3 * STEP_SIZE);
    expect(HEADER_SIZE + 3 * STEP_SIZE).toBe(16 + 3 * 48);
  });

  test('a plan without strings ends right after its steps', () => {
    const buf = serializePlan([{ op: 'Setsid', phase: 'p' }]);
    expect(buf.length).toBe(16 + 48);
    expect(decodePlan(buf).pool.length).toBe(0);
  });
});

describe('serializePlan: steps', () => {
  test('op, flags and args land at their offsets; missing args are 0', () => {
    const buf = serializePlan([
      { op: 'Mkdir', flags: StepFlag.IgnoreExist, args: [0o755], strs: ['/a'], phase: 'p' },
      { op: 'Setresuid', args: [1, 2, 3], phase: 'p' },
      { op: 'Setsid', phase: 'p' },
    ]);
    const [mkdir, setresuid, setsid] = decodePlan(buf).steps;
    expect(mkdir).toMatchObject({ opcode: Op.Mkdir, op: 'Mkdir', flags: 1, args: [0o755n, 0n, 0n] });
    expect(setresuid).toMatchObject({ opcode: 16, flags: 0, args: [1n, 2n, 3n] });
    expect(setsid).toMatchObject({ opcode: 19, flags: 0, args: [0n, 0n, 0n], refs: [NONE, NONE, NONE, NONE] });
  });

  test('every opcode name encodes to its number', () => {
    const names = Object.keys(Op) as OpName[];
    const buf = serializePlan(names.map((op) => ({ op, phase: 'p' })));
    expect(decodePlan(buf).steps.map((s) => s.opcode)).toEqual(names.map((n) => Op[n]));
  });

  test('args are signed 64-bit: -1, bigints beyond 2^53, combined flags', () => {
    const dev = (0x12345n << 32n) | 0xabcdn;
    const buf = serializePlan([
      { op: 'Stdio', args: [-1, 5, -1], phase: 'p' },
      { op: 'Mknod', args: [0o20666, dev], strs: ['/dev/x'], phase: 'p' },
      { op: 'Setrlimit', args: [7, 2n ** 63n - 1n, -(2n ** 63n)], phase: 'p' },
      { op: 'Prctl', args: [2 ** 32 - 1, 2 ** 32 + 5, -(2 ** 32) - 5], phase: 'p' },
      { op: 'Prctl', args: [Number.MAX_SAFE_INTEGER, Number.MIN_SAFE_INTEGER, -(2 ** 31) - 1], phase: 'p' },
    ]);
    const [stdio, mknod, rlimit, words, safe] = decodePlan(buf).steps;
    expect(stdio.args).toEqual([-1n, 5n, -1n]);
    expect(mknod.args).toEqual([0o20666n, dev, 0n]);
    expect(rlimit.args).toEqual([7n, 2n ** 63n - 1n, -(2n ** 63n)]);
    expect(words.args).toEqual([2n ** 32n - 1n, 2n ** 32n + 5n, -(2n ** 32n) - 5n]);
    expect(safe.args).toEqual([2n ** 53n - 1n, -(2n ** 53n) + 1n, -(2n ** 31n) - 1n]);
  });

  test('null and missing strings are NO_STRING', () => {
    const buf = serializePlan([{ op: 'Mount', args: [0x4000], strs: [null, '/', null, null], phase: 'p' }, { op: 'Chroot', strs: ['.'], phase: 'p' }]);
    const plan = decodePlan(buf);
    expect(NO_STRING).toBe(NONE);
    expect(plan.steps[0].refs[0]).toBe(NONE);
    expect(plan.string(plan.steps[0].refs[1])).toBe('/');
    expect(plan.steps[0].refs.slice(2)).toEqual([NONE, NONE]);
    expect(plan.string(plan.steps[1].refs[0])).toBe('.');
    expect(plan.steps[1].refs.slice(1)).toEqual([NONE, NONE, NONE]);
  });
});

describe('serializePlan: string pool', () => {
  test('strings are NUL-terminated UTF-8 and offsets are relative to the pool', () => {
    const buf = serializePlan([{ op: 'Symlink', strs: ['pts/ptmx', '/dev/ptmx'], phase: 'p' }, { op: 'Sethostname', strs: ['héllo-日本'], phase: 'p' }]);
    const plan = decodePlan(buf);
    expect(plan.steps[0].refs[0]).toBe(0);
    expect(plan.pool.subarray(0, 9).toString('latin1')).toBe('pts/ptmx\0');
    expect(plan.string(plan.steps[0].refs[1])).toBe('/dev/ptmx');
    expect(plan.string(plan.steps[1].refs[0])).toBe('héllo-日本');
    // The pool is exactly the strings, nothing in between.
    expect(plan.pool.toString('utf8')).toBe('pts/ptmx\0/dev/ptmx\0héllo-日本\0');
  });

  test('an empty string is a lone NUL, not an absent string', () => {
    const plan = decodePlan(serializePlan([{ op: 'WriteFile', strs: ['/f', ''], phase: 'p' }]));
    expect(plan.steps[0].refs[1]).not.toBe(NONE);
    expect(plan.string(plan.steps[0].refs[1])).toBe('');
  });

  test('a string used twice is stored once', () => {
    const plan = decodePlan(serializePlan([{ op: 'Mount', args: [0x5000], strs: ['/root', '/root', null, null], phase: 'p' }, { op: 'Chdir', strs: ['/root'], phase: 'p' }]));
    const refs = [plan.steps[0].refs[0], plan.steps[0].refs[1], plan.steps[1].refs[0]];
    expect(new Set(refs).size).toBe(1);
    expect(plan.pool.toString('utf8')).toBe('/root\0');
  });

  test('lists are a u32 count and u32 offsets of their strings', () => {
    const buf = serializePlan([exec(['sh', '-c', 'echo hi'], ['PATH=/bin', 'A=b'])]);
    const plan = decodePlan(buf);
    const [candidates, argv, env, fourth] = plan.steps[0].refs;
    expect(plan.list(candidates)).toEqual(['sh']);
    expect(plan.list(argv)).toEqual(['sh', '-c', 'echo hi']);
    expect(plan.list(env)).toEqual(['PATH=/bin', 'A=b']);
    expect(fourth).toBe(NONE);
    expect(plan.pool.readUInt32LE(argv)).toBe(3);
    // "sh" is shared by the candidates and argv.
    expect(plan.pool.readUInt32LE(candidates + 4)).toBe(plan.pool.readUInt32LE(argv + 4));
  });

  test('an empty list is a count of 0', () => {
    const plan = decodePlan(serializePlan([{ op: 'Setgroups', lists: [[]], phase: 'p' }]));
    expect(plan.pool.readUInt32LE(plan.steps[0].refs[0])).toBe(0);
    expect(plan.list(plan.steps[0].refs[0])).toEqual([]);
  });
});

describe('serializePlan: what it rejects', () => {
  test('no steps, or more than MAX_STEPS', () => {
    expect(() => serializePlan([])).toThrow(RangeError);
    expect(() => serializePlan([])).toThrow('plan has 0 steps');
    const many = (n: number): PlanStep[] => Array.from({ length: n }, () => ({ op: 'Setsid', phase: 'p' }));
    expect(decodePlan(serializePlan(many(MAX_STEPS))).count).toBe(4096);
    expect(() => serializePlan(many(MAX_STEPS + 1))).toThrow('plan has 4097 steps');
  });

  test('a NUL byte in a string or a list item', () => {
    expect(() => serializePlan([{ op: 'Chdir', strs: ['/a\0/b'], phase: 'p' }])).toThrow(TypeError);
    expect(() => serializePlan([{ op: 'Chdir', strs: ['/a\0/b'], phase: 'p' }])).toThrow(/NUL byte: "\/a\\u0000\/b"/);
    expect(() => serializePlan([exec(['/bin/sh'], ['A=\0'])])).toThrow(/NUL byte/);
  });

  test('more than 3 args or 4 strings or lists', () => {
    expect(() => serializePlan([{ op: 'Prctl', args: [1, 2, 3, 4], phase: 'p' }])).toThrow('Prctl: at most 3 args');
    expect(() => serializePlan([{ op: 'Mount', strs: ['a', 'b', 'c', 'd', 'e'], phase: 'p' }])).toThrow('Mount: at most 4 strings');
    expect(() => serializePlan([{ op: 'Exec', lists: [[], [], [], [], []], phase: 'p' }])).toThrow('Exec: at most 4 strings');
  });

  test('args that do not fit a signed 64-bit integer, or are not integers', () => {
    // Node's own RangeErrors come from another realm under jest: match the text.
    expect(() => serializePlan([{ op: 'Umask', args: [2n ** 63n], phase: 'p' }])).toThrow(/out of range/);
    expect(() => serializePlan([{ op: 'Umask', args: [-(2n ** 63n) - 1n], phase: 'p' }])).toThrow(/out of range/);
    expect(() => serializePlan([{ op: 'Umask', args: [1.5], phase: 'p' }])).toThrow(/not an integer/);
  });
});

describe('syscallName and childFailure', () => {
  test('the syscall a failed step names', () => {
    expect(syscallName('Mount')).toBe('mount');
    expect(syscallName('Setresuid')).toBe('setresuid');
    expect(syscallName('PivotRoot')).toBe('pivot_root');
    expect(syscallName('CloseFrom')).toBe('close_range');
    expect(syscallName('Exec')).toBe('exec');
    expect(syscallName('Stdio')).toBe('dup3');
  });

  test('a child report names the step, the syscall, the path and errno', () => {
    const steps: PlanStep[] = [
      { op: 'Umask', args: [0], phase: 'rootfs' },
      { op: 'Mount', strs: ['proc', '/r/proc', 'proc', null], phase: 'rootfs', target: '/r/proc', detail: 'proc from proc' },
      exec(),
    ];
    const err = childFailure(steps, { step: 1, errno: 1 });
    expect(err).toBeInstanceOf(SyscallError);
    expect(err).toMatchObject({ step: 'rootfs', syscall: 'mount', path: '/r/proc', errno: 1, code: 'EPERM', detail: 'proc from proc' });
    expect(err.message).toBe('rootfs: mount /r/proc: EPERM (operation not permitted; proc from proc)');
  });

  test('a step index outside the plan is still an error, not a crash', () => {
    const err = childFailure([exec()], { step: 7, errno: 2 });
    expect(err).toMatchObject({ step: 'spawn', syscall: 'unknown step', code: 'ENOENT', detail: 'step 7' });
  });
});

/**
 * native spawn() runs PreparePlan (plan_prepare.cc) before anything else and
 * throws "spawn: invalid plan: <why>" for a buffer it rejects. A plan that
 * does not end in Exec is parsed to its end and only then rejected, so that
 * message proves every step before it was read without complaint, with no
 * process created.
 */
describe('the addon reads what serializePlan writes', () => {
  const native = loadNative();
  const prepare = (buf: Buffer): void => {
    native.spawn(buf, { cloneFlags: 0, mode: 'vfork' });
  };
  const allButExec: PlanStep[] = [
    { op: 'Mount', args: [0x1000], strs: ['/src', '/dst', null, 'mode=755'], phase: 'p' },
    { op: 'Mknod', args: [0o20666, 0x103], strs: ['/dev/null'], phase: 'p' },
    { op: 'Setgroups', lists: [['0', '10', '4294967295']], phase: 'p' },
    { op: 'Exec', lists: [['/bin/sh'], ['sh', '-c', 'x'], []], phase: 'p' },
    { op: 'Stdio', args: [-1, -1, 2], phase: 'p' },
    { op: 'Sethostname', strs: ['h'], phase: 'p' },
  ];

  test('a well-formed plan is only refused for not ending in exec', () => {
    expect(() => prepare(serializePlan(allButExec))).toThrow('spawn: invalid plan: the last step must be exec');
  });

  test('malformed buffers are refused with the reason', () => {
    const good = serializePlan(allButExec);
    const patched = (offset: number, value: number): Buffer => {
      const copy = Buffer.from(good);
      copy.writeUInt32LE(value, offset);
      return copy;
    };
    expect(() => prepare(Buffer.alloc(8))).toThrow('bad magic');
    expect(() => prepare(patched(4, 2))).toThrow('plan version 2 is not 1');
    expect(() => prepare(patched(8, 0))).toThrow('step count 0 out of range');
    expect(() => prepare(patched(8, MAX_STEPS + 1))).toThrow('step count 4097 out of range');
    expect(() => prepare(patched(12, good.readUInt32LE(12) + 1))).toThrow('pool offset does not follow the steps');
    expect(() => prepare(patched(16, 0))).toThrow('step 0: unknown op 0');
    expect(() => prepare(patched(16, Math.max(...Object.values(Op)) + 1))).toThrow(/step 0: unknown op \d+/);
    // Sethostname's string offset pointing past the pool.
    expect(() => prepare(patched(16 + 5 * 48 + 32, good.length))).toThrow(/string offset \d+ is outside the pool/);
    expect(() => prepare(good.subarray(0, good.length - 1))).toThrow(/outside the pool|overruns/);
  });

  test('what PreparePlan checks beyond the layout: gids, exec argv', () => {
    expect(() => prepare(serializePlan([{ op: 'Setgroups', lists: [['12x']], phase: 'p' }, exec()]))).toThrow('step 0: bad gid 12x');
    expect(() => prepare(serializePlan([{ op: 'Setgroups', lists: [['4294967296']], phase: 'p' }, exec()]))).toThrow('bad gid 4294967296');
    expect(() => prepare(serializePlan([{ op: 'Exec', lists: [['/bin/true'], [], []], phase: 'p' }]))).toThrow('step 0: exec needs a path and argv');
    expect(() => prepare(serializePlan([{ op: 'Exec', lists: [[], ['true'], []], phase: 'p' }]))).toThrow('exec needs a path and argv');
  });

  test('a real child: exec succeeds, and a failing step comes back as that step', () => {
    const run = (steps: PlanStep[]): { report: ReturnType<typeof native.readChildError>; exitCode: number | null } => {
      const spawned = native.spawn(serializePlan(steps), { cloneFlags: 0, mode: 'vfork' });
      try {
        const report = native.readChildError(spawned.errorFd);
        const status = native.waitExit(spawned.pidfd, true);
        return { report, exitCode: status?.exitCode ?? null };
      } finally {
        fs.closeSync(spawned.pidfd);
      }
    };
    expect(run([{ op: 'Chdir', strs: ['/'], phase: 'p' }, exec(['/bin/true'])])).toEqual({ report: null, exitCode: 0 });

    const steps: PlanStep[] = [
      { op: 'Chdir', strs: ['/'], phase: 'process' },
      { op: 'Chdir', strs: ['/nonexistent-tsrun-test'], phase: 'process', target: '/nonexistent-tsrun-test', detail: 'working directory' },
      exec(['/bin/true']),
    ];
    const failed = run(steps);
    expect(failed).toEqual({ report: { step: 1, errno: 2 }, exitCode: 127 });
    expect(childFailure(steps, failed.report as { step: number; errno: number }).message).toBe(
      'process: chdir /nonexistent-tsrun-test: ENOENT (no such file or directory; working directory)',
    );

    // IgnoreMissing turns the same ENOENT into success.
    expect(run([{ ...steps[1], flags: StepFlag.IgnoreMissing }, exec(['/bin/true'])])).toEqual({ report: null, exitCode: 0 });
  });
});
