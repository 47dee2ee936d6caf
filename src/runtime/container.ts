import fs = require('node:fs');
import type { Socket } from 'node:net';
import type { Readable, Writable } from 'node:stream';
import { loadNative } from '../native';
import type { ExitWatcher } from '../native';
import type { Logger } from '../logger';
import { signalName, signalNumber } from './signals';
import type { SpawnedProcess } from './spawn';
import type { Terminal } from './terminal';

export interface ExitResult {
  /** The exit status, or 128 + N when signal N killed the process (as a shell reports it). */
  exitCode: number;
  /** The signal that killed the process, if one did. */
  signal: NodeJS.Signals | string | null;
  /** Whether the kernel's OOM killer ended the container at its memory limit (set by run(), which owns the cgroup). */
  oomKilled?: boolean;
}

export interface ContainerStdio {
  stdin: Writable | null;
  stdout: Readable | null;
  stderr: Readable | null;
}

/** Closes the parent's ends of a process's stdio, for a process given up before a Container took them. */
export function destroyStdio(streams: ContainerStdio): void {
  for (const stream of [streams.stdin, streams.stdout, streams.stderr]) stream?.destroy();
}

/**
 * A running container's init process. `wait()` settles once the process
 * has been reaped, its stdout/stderr pipes are drained (like
 * child_process's 'close' event) and `onExit` is done; what `onExit`
 * returns, if anything, is the result `wait()` gives.
 */
export class Container {
  readonly pid: number;
  readonly stdin: Writable | null;
  readonly stdout: Readable | null;
  readonly stderr: Readable | null;
  private readonly _exit: Promise<ExitResult>;
  private _pidfd: number;
  private readonly _watcher: ExitWatcher;

  constructor(
    readonly id: string,
    readonly name: string,
    readonly hostname: string | undefined,
    process: SpawnedProcess,
    stdio: ContainerStdio,
    onExit: (result: ExitResult) => void | ExitResult | Promise<void | ExitResult>,
    private readonly _logger: Logger,
    /** The pty master when the container runs with a terminal (then stdin and stdout are its stream). */
    readonly terminal: Terminal | null = null,
  ) {
    this.pid = process.pid;
    this._pidfd = process.pidfd;
    this.stdin = stdio.stdin;
    this.stdout = stdio.stdout;
    this.stderr = stdio.stderr;
    const streamsClosed = [this.stdout, this.stderr].filter((s): s is Readable => s !== null).map((s) => new Promise((resolve) => s.once('close', resolve)));
    let resolve: (result: ExitResult) => void = () => undefined;
    let reject: (err: unknown) => void = () => undefined;
    this._exit = new Promise<ExitResult>((onResolve, onReject) => {
      resolve = onResolve;
      reject = onReject;
    });
    // Not inside the promise's executor, where a throw would only reject
    // wait(): the constructor throws, and the caller still holds the
    // process to kill and reap.
    this._watcher = new (loadNative().ExitWatcher)(this._pidfd, (status) => {
      fs.closeSync(this._pidfd);
      this._pidfd = -1;
      // Nobody is left to read it; keeping it would leak the pipe. A
      // terminal's is also its output, which ends by itself once drained.
      if (this.stdin !== this.stdout) this.stdin?.destroy();
      if ('error' in status) {
        reject(new Error(`waiting for container ${this.id}: ${status.error}`));
        return;
      }
      const result: ExitResult =
        status.signal !== null ? { exitCode: 128 + status.signal, signal: signalName(status.signal) } : { exitCode: status.exitCode ?? 0, signal: null };
      this._logger.debug({ id, ...result }, 'container exited');
      Promise.all(streamsClosed)
        .then(() => onExit(result))
        .then(
          (final) => final ?? result,
          (err: unknown) => {
            this._logger.warn({ id, err }, 'cleanup after exit failed');
            return result;
          },
        )
        .then(resolve, reject);
    });
  }

  /** Resolves with the exit status; never rejects for a non-zero exit. */
  wait(): Promise<ExitResult> {
    return this._exit;
  }

  /** Whether the process is still unreaped. */
  get running(): boolean {
    return this._pidfd >= 0;
  }

  /**
   * Sends a signal through the pidfd, so a recycled pid can never be hit.
   * Returns false if the process is already gone.
   */
  kill(signal: string | number = 'SIGTERM'): boolean {
    const number = signalNumber(signal);
    if (this._pidfd < 0) return false;
    try {
      loadNative().pidfdSendSignal(this._pidfd, number);
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ESRCH') return false;
      throw err;
    }
  }

  /** Lets this Node process exit while the container still runs. */
  unref(): void {
    this._watcher.unref();
  }

  ref(): void {
    this._watcher.ref();
  }
}

/**
 * Wraps the parent's end of a pipe; net.Socket keeps it off the fs thread
 * pool. node:net is loaded here, not at the top, because `tsrun run` with
 * inherited stdio never needs it and its load is a measurable part of start-up.
 */
export function pipeStream(fd: number, direction: 'read' | 'write'): Socket {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const net = require('node:net') as typeof import('node:net');
  const socket = new net.Socket({ fd, readable: direction === 'read', writable: direction === 'write' });
  // A container that exits without reading its stdin is normal, not an
  // error of the program that wrote to it.
  if (direction === 'write') socket.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code !== 'EPIPE' && err.code !== 'ECONNRESET') throw err;
  });
  return socket;
}
