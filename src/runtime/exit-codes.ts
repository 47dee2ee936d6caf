import { SyscallError } from '../errors';

/** Docker's codes for a container that did not start. */
export const ExitCode = {
  /** tsrun itself failed: bad input, or a setup step. */
  RuntimeError: 125,
  /** The command was found but cannot be invoked (permissions, format, working directory). */
  CannotInvoke: 126,
  /** The command was not found. */
  NotFound: 127,
} as const;

/** The exit status `tsrun run` reports for a container that failed to start. */
export function exitCodeForStartError(err: unknown): number {
  if (err instanceof SyscallError && err.step === 'process') {
    if (err.syscall === 'exec' && (err.code === 'ENOENT' || err.code === 'ENOTDIR')) return ExitCode.NotFound;
    return ExitCode.CannotInvoke;
  }
  return ExitCode.RuntimeError;
}
