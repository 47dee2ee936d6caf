import * as fs from 'node:fs';
import * as path from 'node:path';
import { DEFAULT_SECCOMP_PROFILE, compileSeccomp, resolveProfile, seccompCacheDirIn } from '../../src/linux/seccomp';
import { cachedSeccompProgram } from '../../src/linux/seccomp/program-cache';
import type { LinuxSeccomp } from '../../src/oci/runtime-spec';
import { useTempDir } from '../helpers/fixtures';

const PROFILE = resolveProfile(DEFAULT_SECCOMP_PROFILE, { capabilities: ['CAP_CHOWN'], arch: 'x86_64' });
const denying = (name: string): LinuxSeccomp => ({ defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: [name], action: 'SCMP_ACT_ERRNO' }] });
const RET_KILL = Buffer.from([6, 0, 0, 0, 0, 0, 0, 0]);

interface Entry {
  input: Buffer;
  program: Buffer;
}

/** The cache file's format, read and written independently of the code under test. */
function decode(bytes: Buffer): Entry[] {
  const entries: Entry[] = [];
  for (let at = 0; at < bytes.length; ) {
    const inputBytes = bytes.readUInt32LE(at);
    const programBytes = bytes.readUInt32LE(at + 4);
    const input = bytes.subarray(at + 8, at + 8 + inputBytes);
    entries.push({ input, program: bytes.subarray(at + 8 + inputBytes, at + 8 + inputBytes + programBytes) });
    at += 8 + inputBytes + programBytes;
  }
  return entries;
}

function encode(entries: Entry[]): Buffer {
  return Buffer.concat(
    entries.flatMap(({ input, program }) => {
      const header = Buffer.alloc(8);
      header.writeUInt32LE(input.length, 0);
      header.writeUInt32LE(program.length, 4);
      return [header, input, program];
    }),
  );
}

describe('seccomp program cache', () => {
  const tmp = useTempDir('tsrun-seccomp-cache-');
  let dir: string;
  let file: string;
  beforeEach(() => {
    dir = seccompCacheDirIn(fs.mkdtempSync(path.join(tmp(), 'state-')));
    file = path.join(dir, 'programs');
  });
  const entries = (): Entry[] => decode(fs.readFileSync(file));
  const compiled = (seccomp: LinuxSeccomp): Buffer => compileSeccomp(seccomp, 'x86_64').program;

  test('a miss compiles, and makes the directory (root only) and the file with one entry', () => {
    expect(cachedSeccompProgram(PROFILE, 'x86_64', dir)).toEqual(compiled(PROFILE));
    expect(fs.statSync(dir).mode & 0o777).toBe(0o700);
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    expect(entries()).toEqual([{ input: expect.any(Buffer), program: compiled(PROFILE) }]);
    expect(entries()[0].input.toString()).toContain(`\nx86_64\n${JSON.stringify(PROFILE)}`);
  });

  test('a miss is one-time work (the CLI writes no code cache after it), a hit is not', () => {
    const inFreshProcess = (): { steady: () => boolean; lookUp: () => Buffer } => {
      let modules!: { steady: () => boolean; lookUp: () => Buffer };
      jest.isolateModules(() => {
        const { isSteadyStateRun } = jest.requireActual<typeof import('../../src/util/one-time-work')>('../../src/util/one-time-work');
        const cache = jest.requireActual<typeof import('../../src/linux/seccomp/program-cache')>('../../src/linux/seccomp/program-cache');
        modules = { steady: isSteadyStateRun, lookUp: () => cache.cachedSeccompProgram(PROFILE, 'x86_64', dir) };
      });
      return modules;
    };
    const first = inFreshProcess();
    expect(first.steady()).toBe(true);
    first.lookUp();
    expect(first.steady()).toBe(false);
    const second = inFreshProcess();
    second.lookUp();
    expect(second.steady()).toBe(true);
  });

  test('a hit returns the stored program without compiling', () => {
    cachedSeccompProgram(PROFILE, 'x86_64', dir);
    // A program the compiler would never make shows where the answer came from.
    fs.writeFileSync(file, encode([{ input: entries()[0].input, program: RET_KILL }]));
    expect(cachedSeccompProgram(PROFILE, 'x86_64', dir)).toEqual(RET_KILL);
  });

  test('each filter and architecture is its own entry, newest first', () => {
    cachedSeccompProgram(PROFILE, 'x86_64', dir);
    expect(cachedSeccompProgram(denying('ptrace'), 'x86_64', dir)).toEqual(compiled(denying('ptrace')));
    expect(cachedSeccompProgram(PROFILE, 'aarch64', dir)).toEqual(compileSeccomp(PROFILE, 'aarch64').program);
    expect(entries().map((e) => e.program)).toEqual([compileSeccomp(PROFILE, 'aarch64').program, compiled(denying('ptrace')), compiled(PROFILE)]);
    // All three are hits now.
    fs.writeFileSync(file, encode(entries().map(({ input }) => ({ input, program: RET_KILL }))));
    expect(cachedSeccompProgram(PROFILE, 'x86_64', dir)).toEqual(RET_KILL);
    expect(cachedSeccompProgram(denying('ptrace'), 'x86_64', dir)).toEqual(RET_KILL);
    expect(cachedSeccompProgram(PROFILE, 'aarch64', dir)).toEqual(RET_KILL);
  });

  test('the file keeps the newest 8 programs', () => {
    const names = ['ptrace', 'mount', 'umount2', 'swapon', 'swapoff', 'reboot', 'kexec_load', 'init_module', 'delete_module'];
    for (const name of names) cachedSeccompProgram(denying(name), 'x86_64', dir);
    expect(entries().map((e) => e.program)).toEqual(names.slice(1).reverse().map((name) => compiled(denying(name))));
  });

  const damaged: [string, (bytes: Buffer) => Buffer][] = [
    ['empty', () => Buffer.alloc(0)],
    ['cut inside the header', (bytes) => bytes.subarray(0, 5)],
    ['cut inside the input', (bytes) => bytes.subarray(0, 100)],
    ['cut inside the program', (bytes) => bytes.subarray(0, bytes.length - 3)],
    ['with no program', (bytes) => encode([{ input: decode(bytes)[0].input, program: Buffer.alloc(0) }])],
    ['with a program of 8 bytes and a half', (bytes) => encode([{ input: decode(bytes)[0].input, program: Buffer.alloc(12, 6) }])],
    ['with a program over 4096 instructions', (bytes) => encode([{ input: decode(bytes)[0].input, program: Buffer.alloc(4097 * 8, 6) }])],
  ];
  test.each(damaged)('an entry %s is a miss, and is replaced', (_what, damage) => {
    cachedSeccompProgram(PROFILE, 'x86_64', dir);
    fs.writeFileSync(file, damage(fs.readFileSync(file)));
    expect(cachedSeccompProgram(PROFILE, 'x86_64', dir)).toEqual(compiled(PROFILE));
    expect(entries().map((e) => e.program)).toEqual([compiled(PROFILE)]);
  });

  test('the entries before a damaged one are still used', () => {
    cachedSeccompProgram(denying('ptrace'), 'x86_64', dir);
    const [first] = entries();
    fs.writeFileSync(file, Buffer.concat([encode([{ input: first.input, program: RET_KILL }]), Buffer.from([1, 2, 3])]));
    expect(cachedSeccompProgram(denying('ptrace'), 'x86_64', dir)).toEqual(RET_KILL);
  });

  test('a directory that cannot be written only costs the compile', () => {
    fs.writeFileSync(dir, 'not a directory');
    expect(cachedSeccompProgram(PROFILE, 'x86_64', dir)).toEqual(compiled(PROFILE));
  });
});
