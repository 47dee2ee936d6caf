/**
 * tsrun as a library: start containers from a Node program.
 *
 * @example
 * import { run } from 'tsrun';
 * const c = await run({ rootfs: '/srv/busybox', args: ['hostname'], hostname: 'box' });
 * c.stdout?.pipe(process.stdout);
 * console.log(await c.wait()); // { exitCode: 0, signal: null }
 */
export { run } from './runtime/run';
export type { RunOptions, StdioOption } from './runtime/options';
export { Container } from './runtime/container';
export type { ExitResult } from './runtime/container';
export { ExitCode, exitCodeForStartError } from './runtime/exit-codes';
export { TsrunError, SyscallError, ValidationError, NotFoundError, ConflictError, ContentError, DigestMismatchError, LockTimeoutError } from './errors';
export type { Logger } from './logger';
export type { Spec, IdMapping } from './oci/runtime-spec';
