import { TsrunError, ValidationError } from '../errors';
import { ExitCode } from '../runtime/exit-codes';

/** A command line that yargs accepted but that makes no sense; exits 125 like docker's usage errors. */
export class UsageError extends TsrunError {
  constructor(message: string) {
    super(message, 'EUSAGE');
  }
}

/** The error and its causes on one line: `outer: inner: innermost`. */
export function describeError(err: unknown): string {
  const parts: string[] = [];
  let current: unknown = err;
  while (current instanceof Error && parts.length < 8) {
    if (!restates(parts, current)) parts.push(current.message);
    current = current.cause;
  }
  if (parts.length === 0) parts.push(String(err));
  return parts.join(': ');
}

/** A cause says nothing new when an outer message holds its text or, for a Node system error, its errno name. */
function restates(parts: string[], cause: Error): boolean {
  const code = (cause as NodeJS.ErrnoException).code;
  const systemError = typeof code === 'string' && typeof (cause as NodeJS.ErrnoException).syscall === 'string';
  return parts.some((part) => part.includes(cause.message) || (systemError && part.includes(code)));
}

/** Prints `tsrun: <message>` (with the stack under --debug) and returns the exit code. */
export function reportError(err: unknown, debug: boolean, exitCode: number = ExitCode.RuntimeError): number {
  process.stderr.write(`tsrun: ${describeError(err)}\n`);
  if (debug && err instanceof Error && err.stack) process.stderr.write(`${err.stack}\n`);
  if (err instanceof TsrunError && err.cleanupError) process.stderr.write(`tsrun: cleanup also failed: ${describeError(err.cleanupError)}\n`);
  return exitCode;
}

/**
 * Docker's exit codes for a command on existing objects: 125 when the
 * input itself is wrong (a bad flag value), 1 when the runtime refuses
 * (no such container, not running).
 */
export function commandExitCode(err: unknown): number {
  return err instanceof ValidationError ? ExitCode.RuntimeError : 1;
}

/**
 * Runs `body` for each operand, as docker does for `rm A B`, `inspect A B`:
 * each failure is reported and sets the exit code, and the others still run.
 * Returns what the successful calls returned.
 */
export async function eachReported<T>(operands: string[], debug: boolean, body: (operand: string) => Promise<T>): Promise<T[]> {
  const results: T[] = [];
  for (const operand of operands) {
    try {
      results.push(await body(operand));
    } catch (err) {
      process.exitCode = reportError(err, debug, commandExitCode(err));
    }
  }
  return results;
}
