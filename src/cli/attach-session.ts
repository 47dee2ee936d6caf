import type { Attachment } from '../runtime/attach';
import { signalNumber } from '../runtime/signals';
import { connectTerminal, hostTerminalSize } from '../runtime/terminal';
import { UsageError } from './fail';

/** Signals `--sig-proxy` passes to a container without a terminal (with one, ^C is typed input). */
const PROXIED: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2'];

export interface SessionOptions {
  /** Attach this process's stdin (when the container takes input). */
  stdin: boolean;
  detachKeys: Buffer;
  /** Without a terminal: pass signals to the container with `kill`. */
  sigProxy: boolean;
  kill(signal: NodeJS.Signals): void;
}

/**
 * Connects this process to an attachment (`tsrun attach`, `start -a`): with
 * a terminal, the host's in raw mode (restored on every exit path), its
 * window size, and the detach keys; a signal to this process detaches.
 * Without one, stdout and stderr apart, stdin until its end, and signals
 * passed to the container. Resolves with the exit code to leave with: the
 * container's, 0 after a detach, 128+N after signal N.
 */
export async function followAttachment(attachment: Attachment, options: SessionOptions): Promise<number> {
  const input = options.stdin && attachment.acceptsInput;
  if (attachment.tty && input && !process.stdin.isTTY) {
    attachment.detach();
    throw new UsageError('the input device is not a TTY');
  }
  let signalled: number | undefined;
  let disconnect: () => void;
  if (attachment.tty) {
    const size = hostTerminalSize(process.stdout);
    if (size) attachment.resize(size);
    const undo = connectTerminal(attachment, { stdin: process.stdin, stdout: process.stdout }, { input, detachKeys: options.detachKeys, onDetach: () => attachment.detach() });
    const leave = (signal: NodeJS.Signals): void => {
      signalled = 128 + signalNumber(signal);
      attachment.detach();
    };
    PROXIED.forEach((s) => process.on(s, leave));
    disconnect = () => {
      PROXIED.forEach((s) => process.off(s, leave));
      undo();
    };
  } else {
    attachment.stream.pipe(process.stdout);
    attachment.stderr.pipe(process.stderr);
    if (input) process.stdin.pipe(attachment.stream);
    const forward = (signal: NodeJS.Signals): void => options.kill(signal);
    const signals = options.sigProxy ? PROXIED : [];
    signals.forEach((s) => process.on(s, forward));
    disconnect = () => {
      signals.forEach((s) => process.off(s, forward));
      if (input) {
        process.stdin.unpipe(attachment.stream);
        process.stdin.pause();
      }
    };
  }
  try {
    const end = await attachment.wait();
    return end.detached ? (signalled ?? 0) : end.exitCode;
  } finally {
    disconnect();
  }
}
