import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { ReadStream, WriteStream } from 'node:tty';
import type { TerminalSize } from '../linux/pty';
import { TsrunError } from '../errors';
import { loadNative } from '../native';
import { DetachKeyFilter } from './detach-keys';

/** How long to wait for the child to send its pty master; it sends it before exec, so this is only a guard. */
const RECEIVE_TIMEOUT_MS = 10_000;

/**
 * The runtime's end of a container's terminal: the pty master, as one
 * duplex stream (what the process writes comes out, what is written goes
 * in as typed input). Reading ends when every process holding the slave
 * has exited (the kernel then reports EIO, which is the normal end here).
 */
export class Terminal {
  readonly stream: Socket;

  constructor(readonly fd: number) {
    // A pty master is a TTY to libuv, which net.Socket refuses; tty.ReadStream
    // wraps it in libuv's tty handle, which writes as well (as node-pty does).
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const tty = require('node:tty') as typeof import('node:tty');
    this.stream = new tty.ReadStream(fd);
    this.stream.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code !== 'EIO' && err.code !== 'EPIPE') throw err;
      this.stream.destroy();
    });
  }

  /** TIOCSWINSZ: the container's foreground process group gets SIGWINCH. */
  resize(size: TerminalSize): void {
    if (this.stream.destroyed) return;
    loadNative().setWindowSize(this.fd, size.rows, size.cols);
  }

  /** Receives the master that the child's OpenPty step sent over `socket`. */
  static receive(socket: number): Terminal {
    const fd = loadNative().receiveFd(socket, RECEIVE_TIMEOUT_MS);
    if (fd === null) throw new TsrunError('terminal: the container exited before it sent its terminal', 'EPIPE');
    return new Terminal(fd);
  }
}

/** What connectTerminal drives: a container's terminal, here (Terminal) or through its monitor (attach). */
export interface TerminalEnd {
  readonly stream: Duplex;
  resize(size: TerminalSize): void;
}

/** The host side of `docker run -it` (and of exec -it, attach): where the terminal's traffic goes. */
export interface HostTerminal {
  stdin: NodeJS.ReadableStream & Partial<Pick<ReadStream, 'isTTY' | 'setRawMode'>>;
  stdout: NodeJS.WritableStream & Partial<Pick<WriteStream, 'isTTY' | 'rows' | 'columns'>>;
}

/** The size of the host's terminal, if it has one. */
export function hostTerminalSize(stdout: HostTerminal['stdout']): TerminalSize | undefined {
  return stdout.isTTY && stdout.rows && stdout.columns ? { rows: stdout.rows, cols: stdout.columns } : undefined;
}

/**
 * Connects a container's terminal to the host's: the container's output
 * to `stdout`; with `input`, `stdin` in raw mode (keys, ^C included, go to
 * the container) to the container; window size changes follow. Returns
 * the function that undoes all of it; the host terminal's mode is also
 * restored if this process exits without calling it. With `detachKeys`
 * (parseDetachKeys), typing them calls `onDetach` instead of reaching the
 * container, for attach and detached containers.
 */
export function connectTerminal(terminal: TerminalEnd, host: HostTerminal, options: { input: boolean; detachKeys?: Buffer; onDetach?: () => void }): () => void {
  const { stdin, stdout } = host;
  const raw = options.input && stdin.isTTY === true && typeof stdin.setRawMode === 'function';
  const restore = (): void => {
    if (raw) stdin.setRawMode?.(false);
  };
  const onData = (chunk: Buffer): void => {
    stdout.write(chunk);
  };
  const onResize = (): void => {
    const size = hostTerminalSize(stdout);
    if (size) terminal.resize(size);
  };
  terminal.stream.on('data', onData);
  if (stdout.isTTY) stdout.on('resize', onResize);
  if (raw) {
    stdin.setRawMode?.(true);
    process.once('exit', restore);
  }
  const filter = options.input && options.detachKeys ? new DetachKeyFilter(options.detachKeys) : undefined;
  if (filter) {
    filter.on('detach', () => options.onDetach?.());
    stdin.pipe(filter).pipe(terminal.stream, { end: false });
  } else if (options.input) {
    stdin.pipe(terminal.stream, { end: false });
  }
  return () => {
    if (filter) {
      stdin.unpipe(filter);
      filter.unpipe(terminal.stream);
    } else if (options.input) {
      stdin.unpipe(terminal.stream);
    }
    if (options.input) stdin.pause();
    restore();
    process.off('exit', restore);
    stdout.off('resize', onResize);
    terminal.stream.off('data', onData);
  };
}
