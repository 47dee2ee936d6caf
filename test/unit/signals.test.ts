import * as os from 'node:os';
import { SyscallError, ValidationError } from '../../src/errors';
import { ExitCode, exitCodeForStartError } from '../../src/runtime/exit-codes';
import { signalName, signalNumber } from '../../src/runtime/signals';

describe('signalNumber', () => {
  test.each<[string | number, number]>([
    ['TERM', 15],
    ['SIGTERM', 15],
    ['sigkill', 9],
    [' hup ', 1],
    ['9', 9],
    [2, 2],
    [64, 64],
    ['USR1', os.constants.signals.SIGUSR1],
  ])('%j is %i', (input, expected) => {
    expect(signalNumber(input)).toBe(expected);
  });

  test.each<string | number>([0, 65, -1, 1.5, '0', '65', 'NOPE', 'SIG', ''])('%j is refused', (input) => {
    expect(() => signalNumber(input)).toThrow(ValidationError);
    try {
      signalNumber(input);
    } catch (err) {
      expect((err as ValidationError).field).toBe('signal');
    }
  });
});

describe('signalName', () => {
  test('known numbers by name, others as SIG<n>', () => {
    expect(signalName(15)).toBe('SIGTERM');
    expect(signalName(9)).toBe('SIGKILL');
    expect(signalName(40)).toBe('SIG40');
  });

  test('round-trips with signalNumber', () => {
    const numbers = Object.values(os.constants.signals);
    expect(numbers.length).toBeGreaterThan(20);
    for (const number of numbers) expect(signalNumber(signalName(number))).toBe(number);
  });
});

describe('exitCodeForStartError (docker run\'s 125, 126, 127)', () => {
  test('the command was not found: 127', () => {
    expect(exitCodeForStartError(new SyscallError('process', 'exec', 2, 'nosuch'))).toBe(ExitCode.NotFound);
    expect(exitCodeForStartError(new SyscallError('process', 'exec', 20, 'a/b'))).toBe(127);
  });

  test('found but not runnable, or the process setup failed: 126', () => {
    expect(exitCodeForStartError(new SyscallError('process', 'exec', 13, '/etc/passwd'))).toBe(ExitCode.CannotInvoke);
    expect(exitCodeForStartError(new SyscallError('process', 'exec', 8, '/bin/x'))).toBe(126);
    expect(exitCodeForStartError(new SyscallError('process', 'chdir', 2, '/nope'))).toBe(126);
  });

  test('anything else is tsrun\'s failure: 125', () => {
    expect(exitCodeForStartError(new SyscallError('rootfs', 'mount', 2, '/proc'))).toBe(ExitCode.RuntimeError);
    expect(exitCodeForStartError(new ValidationError('args', 'a command is required'))).toBe(125);
    expect(exitCodeForStartError(new Error('x'))).toBe(125);
    expect(exitCodeForStartError(undefined)).toBe(125);
  });
});
