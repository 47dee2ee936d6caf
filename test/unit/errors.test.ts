import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describeError } from '../../src/cli/fail';
import {
  ConflictError,
  ContentError,
  DigestMismatchError,
  LockTimeoutError,
  NotFoundError,
  SyscallError,
  TsrunError,
  ValidationError,
  syscallErrorFrom,
} from '../../src/errors';
import { loadNative } from '../../src/native';

/** What `fn` throws (a test failure if it returns). */
function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  throw new Error('expected a throw');
}

describe('SyscallError', () => {
  test('"step: syscall path: CODE (text; detail)" and its fields', () => {
    const err = new SyscallError('rootfs', 'mount', 2, '/var/lib/tsrun/overlay2/ab12/merged', 'lowerdir l/A:l/B');
    expect(err.message).toBe('rootfs: mount /var/lib/tsrun/overlay2/ab12/merged: ENOENT (no such file or directory; lowerdir l/A:l/B)');
    expect(err).toMatchObject({ step: 'rootfs', syscall: 'mount', errno: 2, code: 'ENOENT', path: '/var/lib/tsrun/overlay2/ab12/merged', detail: 'lowerdir l/A:l/B', name: 'SyscallError' });
    expect(err).toBeInstanceOf(TsrunError);
    expect(err).toBeInstanceOf(Error);
  });

  test('without a path or a detail', () => {
    expect(new SyscallError('process', 'setresuid', 1).message).toBe('process: setresuid: EPERM (operation not permitted)');
    expect(new SyscallError('namespaces', 'sethostname', 22, undefined, 'x').message).toBe('namespaces: sethostname: EINVAL (invalid argument; x)');
    expect(new SyscallError('p', 'chdir', 13, '').message).toBe('p: chdir: EACCES (permission denied)');
  });

  test('errno is positive whichever sign it is given with (Node uses negative ones)', () => {
    const err = new SyscallError('p', 'open', -13, '/x');
    expect(err.errno).toBe(13);
    expect(err.code).toBe('EACCES');
  });

  test('an errno Node does not know still gives a code', () => {
    const err = new SyscallError('p', 'ioctl', 4000);
    expect(err.code).toBe('E4000');
    expect(err.message).toBe('p: ioctl: E4000 (errno 4000)');
  });

  test('the cause is kept', () => {
    const cause = new Error('inner');
    expect(new SyscallError('p', 'x', 1, undefined, undefined, { cause }).cause).toBe(cause);
  });
});

describe('syscallErrorFrom', () => {
  test('a Node fs error becomes a SyscallError for the step, caused by it', () => {
    const missing = path.join(os.tmpdir(), 'tsrun-no-such-dir', 'file');
    const original = thrown(() => fs.readFileSync(missing));
    const wrapped = syscallErrorFrom('state', original, 'reading the state');
    expect(wrapped).toBeInstanceOf(SyscallError);
    expect(wrapped).toMatchObject({ step: 'state', syscall: 'open', errno: 2, code: 'ENOENT', path: missing, detail: 'reading the state', cause: original });
    expect((wrapped as Error).message).toBe(`state: open ${missing}: ENOENT (no such file or directory; reading the state)`);
  });

  test('an addon error (fs-shaped, from native/errors.cc) becomes a SyscallError', () => {
    const original = thrown(() => loadNative().mknod('/tsrun-no-such-dir/fifo', 0o010644, 0, 0));
    expect(original).toMatchObject({ code: 'ENOENT', errno: -2, syscall: 'mknod', path: '/tsrun-no-such-dir/fifo' });
    expect((original as Error).message).toBe("ENOENT: No such file or directory, mknod '/tsrun-no-such-dir/fifo'");
    const wrapped = syscallErrorFrom('devices', original);
    expect(wrapped).toMatchObject({ step: 'devices', syscall: 'mknod', errno: 2, code: 'ENOENT', path: '/tsrun-no-such-dir/fifo' });
  });

  test('anything else is returned untouched', () => {
    const plain = new Error('plain');
    expect(syscallErrorFrom('s', plain)).toBe(plain);
    const typed = new ValidationError('f', 'bad');
    expect(syscallErrorFrom('s', typed)).toBe(typed);
    expect(syscallErrorFrom('s', 'a string')).toBe('a string');
    expect(syscallErrorFrom('s', undefined)).toBeUndefined();
    const noSyscall = Object.assign(new Error('half'), { errno: -2 });
    expect(syscallErrorFrom('s', noSyscall)).toBe(noSyscall);
  });
});

describe('the other errors', () => {
  test('ValidationError names the field; code EINVAL', () => {
    const err = new ValidationError('idMappings.uid[0].size', 'must be at least 1');
    expect(err).toMatchObject({ field: 'idMappings.uid[0].size', code: 'EINVAL', name: 'ValidationError', message: 'idMappings.uid[0].size: must be at least 1' });
  });

  test('NotFoundError, ConflictError, LockTimeoutError', () => {
    expect(new NotFoundError('container', 'web')).toMatchObject({ kind: 'container', what: 'web', code: 'ENOENT', message: 'container "web" not found' });
    expect(new NotFoundError('user', 'x', 'custom').message).toBe('custom');
    expect(new ConflictError('taken')).toMatchObject({ code: 'EEXIST', name: 'ConflictError' });
    expect(new LockTimeoutError('/run/tsrun/lock', 500)).toMatchObject({
      file: '/run/tsrun/lock',
      code: 'ETIMEDOUT',
      message: 'timed out after 500 ms waiting for the lock /run/tsrun/lock: another tsrun process holds it',
    });
  });

  test('ContentError and DigestMismatchError', () => {
    expect(new ContentError('layer sha256:ab12', 'path escapes the layer', '../../etc/x').message).toBe('layer sha256:ab12: ../../etc/x: path escapes the layer');
    expect(new ContentError('manifest.json', 'not JSON')).toMatchObject({ message: 'manifest.json: not JSON', code: 'EBADCONTENT', entry: undefined });
    const digest = new DigestMismatchError('blob', 'sha256:aa', 'sha256:bb');
    expect(digest).toBeInstanceOf(ContentError);
    expect(digest).toMatchObject({ name: 'DigestMismatchError', expected: 'sha256:aa', actual: 'sha256:bb', message: 'blob: digest mismatch: expected sha256:aa, got sha256:bb' });
  });
});

describe('describeError (the CLI\'s one-line error)', () => {
  test('the cause chain on one line, outer first', () => {
    const inner = new SyscallError('rootfs', 'mount', 1, '/proc');
    const outer = new TsrunError('starting the container', 'EFAIL', { cause: inner });
    expect(describeError(outer)).toBe('starting the container: rootfs: mount /proc: EPERM (operation not permitted)');
  });

  test('a cause already in the message is not repeated', () => {
    const inner = new Error('disk full');
    expect(describeError(new Error('saving state: disk full', { cause: inner }))).toBe('saving state: disk full');
  });

  test("a Node system error wrapped by a message that names its errno is not repeated", () => {
    let enoent: unknown;
    try {
      fs.statSync('/nonexistent-tsrun-path');
    } catch (err) {
      enoent = err;
    }
    const outer = new TsrunError('load: stat /nonexistent-tsrun-path: ENOENT (no such file or directory)', 'ENOENT', { cause: enoent });
    expect(describeError(outer)).toBe('load: stat /nonexistent-tsrun-path: ENOENT (no such file or directory)');
  });

  test('not an Error', () => {
    expect(describeError('text')).toBe('text');
    expect(describeError(42)).toBe('42');
  });
});
