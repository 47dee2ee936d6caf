import fs = require('node:fs');
import type { Socket } from 'node:net';
import { Duplex, PassThrough } from 'node:stream';
import { StateError, TsrunError } from '../errors';
import type { TerminalSize } from '../linux/pty';
import { ContainerLocation, containerName, findContainer, ociStatus } from './containers';
import { checkOperation } from './lifecycle';

/** Frame types of the monitor's attach socket (native/attach_server.h): u8 type, u32 length (LE), payload. */
const Frame = { Hello: 1, Stdout: 2, Stderr: 3, Exit: 4, Stdin: 16, StdinEof: 17, Resize: 18 } as const;
const HELLO_TTY = 1;
const HELLO_STDIN = 2;
const HEADER_SIZE = 5;

const O_PATH = 0o10000000;

function frame(type: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const header = Buffer.alloc(HEADER_SIZE);
  header.writeUInt8(type, 0);
  header.writeUInt32LE(payload.length, 1);
  return Buffer.concat([header, payload]);
}

/** How an attachment ended: the container exited, or the caller detached and it runs on. */
export type AttachEnd = { exitCode: number; detached?: undefined } | { detached: true; exitCode?: undefined };

/**
 * The container's input and output: what is written goes to its stdin
 * (its terminal with `tty`), ending it closes a piped stdin; what is read
 * is its stdout (all of a terminal's output).
 */
class AttachStream extends Duplex {
  constructor(private readonly socket: Socket) {
    super();
  }

  override _read(): void {
    // The monitor sends as the container writes; there is nothing to ask for.
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    if (this.socket.destroyed) {
      callback();
      return;
    }
    this.socket.write(frame(Frame.Stdin, chunk), () => callback());
  }

  override _final(callback: (error?: Error | null) => void): void {
    if (this.socket.destroyed) callback();
    else this.socket.write(frame(Frame.StdinEof), () => callback());
  }
}

/**
 * A connection to a detached container's monitor (`tsrun attach`). Several
 * may be open at once; closing one (detach()) leaves the container running.
 */
export class Attachment {
  /** Whether the container has a terminal: then `stream` carries it, and resize() sets its window size. */
  readonly tty: boolean;
  /** Whether the container takes input (it was created with openStdin, and has not closed it). */
  readonly acceptsInput: boolean;
  /** Read: the container's stdout; write: its stdin (ignored when it takes none). */
  readonly stream: Duplex;
  /** The container's stderr (nothing with a terminal, whose output is all on `stream`). */
  readonly stderr = new PassThrough();
  private readonly ended: Promise<AttachEnd>;
  private detached = false;

  private constructor(
    private readonly socket: Socket,
    hello: number,
    rest: Buffer,
    onEnd: (code: number | undefined, detached: boolean) => AttachEnd,
  ) {
    this.tty = (hello & HELLO_TTY) !== 0;
    this.acceptsInput = (hello & HELLO_STDIN) !== 0;
    this.stream = new AttachStream(socket);
    let exitCode: number | undefined;
    let pending = rest;
    const parse = (chunk: Buffer): void => {
      pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
      while (pending.length >= HEADER_SIZE) {
        const length = pending.readUInt32LE(1);
        if (pending.length < HEADER_SIZE + length) break;
        const type = pending.readUInt8(0);
        const payload = pending.subarray(HEADER_SIZE, HEADER_SIZE + length);
        pending = pending.subarray(HEADER_SIZE + length);
        if (type === Frame.Stdout) this.stream.push(payload);
        else if (type === Frame.Stderr) this.stderr.write(payload);
        else if (type === Frame.Exit && length === 4) {
          exitCode = payload.readInt32LE(0);
          // The monitor waits for this side to close before it closes its own (see DrainUntilClosed in native/attach_server.cc).
          socket.end();
        }
      }
    };
    this.ended = new Promise((resolve, reject) => {
      socket.on('close', () => {
        this.stream.push(null);
        this.stderr.end();
        try {
          resolve(onEnd(exitCode, this.detached));
        } catch (err) {
          reject(err);
        }
      });
    });
    socket.on('data', parse);
    // A monitor gone mid-write is the end, which 'close' reports.
    socket.on('error', () => socket.destroy());
    if (rest.length > 0) parse(Buffer.alloc(0));
  }

  /** The container's window size (with a terminal; the container gets SIGWINCH). */
  resize(size: TerminalSize): void {
    if (!this.tty || this.socket.destroyed) return;
    const payload = Buffer.alloc(4);
    payload.writeUInt16LE(size.rows, 0);
    payload.writeUInt16LE(size.cols, 2);
    this.socket.write(frame(Frame.Resize, payload));
  }

  /** Leaves the container running; wait() then resolves with `{ detached: true }`. */
  detach(): void {
    this.detached = true;
    this.socket.end();
  }

  /** Resolves once the container has exited (with its exit code) or detach() was called. */
  wait(): Promise<AttachEnd> {
    return this.ended;
  }

  /** Connects and reads the monitor's greeting. */
  static async connect(socketPath: string, onEnd: (code: number | undefined, detached: boolean) => AttachEnd): Promise<Attachment> {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const net = require('node:net') as typeof import('node:net');
    // A socket's path is limited to 108 bytes: its directory's fd keeps it short, whatever the state directory.
    const dir = fs.openSync(socketPath.slice(0, socketPath.lastIndexOf('/')), O_PATH | fs.constants.O_DIRECTORY);
    let socket: Socket;
    try {
      socket = await new Promise<Socket>((resolve, reject) => {
        const s = net.connect(`/proc/self/fd/${dir}/${socketPath.slice(socketPath.lastIndexOf('/') + 1)}`);
        s.once('connect', () => resolve(s));
        s.once('error', reject);
      });
    } finally {
      fs.closeSync(dir);
    }
    const [hello, rest] = await new Promise<[number, Buffer]>((resolve, reject) => {
      let got = Buffer.alloc(0);
      const onData = (chunk: Buffer): void => {
        got = Buffer.concat([got, chunk]);
        if (got.length < HEADER_SIZE + 1) return;
        socket.off('data', onData).off('close', onClose);
        socket.pause();
        if (got.readUInt8(0) !== Frame.Hello) reject(new TsrunError('attach: the monitor did not greet as tsrun-monitor does', 'EPROTO'));
        else resolve([got.readUInt8(HEADER_SIZE), got.subarray(HEADER_SIZE + got.readUInt32LE(1))]);
      };
      const onClose = (): void => reject(new TsrunError('attach: the monitor closed the connection', 'ECONNRESET'));
      socket.on('data', onData).once('close', onClose);
    });
    const attachment = new Attachment(socket, hello, rest, onEnd);
    socket.resume();
    return attachment;
  }
}

export interface AttachOptions extends ContainerLocation {
  /** A created container too, so that nothing it writes once started is missed (`run -it` attaches, then starts). */
  created?: boolean;
}

/**
 * Attaches to a running detached container (`tsrun attach`), through its
 * monitor: its output from now on, its input if it was created with
 * openStdin, its window size if it has a terminal. Docker's detach keys are
 * the caller's to watch for (connectTerminal's detachKeys); detach() leaves.
 */
export async function attachContainer(reference: string, options: AttachOptions = {}): Promise<Attachment> {
  const found = findContainer(reference, options);
  const name = containerName(found);
  if (!found.monitor.exists()) throw new TsrunError(`attach: container ${name} was not started detached (tsrun run -d or create); its own tsrun holds its output`, 'EINVAL');
  const status = ociStatus(found);
  if (!(status === 'created' && options.created)) checkOperation(name, status, 'attach');
  const exited = (): StateError => new StateError(name, 'stopped', 'attach', `cannot attach stopped container ${name}: it has exited`);
  const onEnd = (code: number | undefined, detached: boolean): AttachEnd => {
    if (code !== undefined) return { exitCode: code };
    if (detached) return { detached: true };
    const exit = found.monitor.exit();
    if (exit) return { exitCode: exit.exitCode };
    throw new TsrunError(`attach: the monitor of container ${name} went away before the container exited`, 'ECONNRESET');
  };
  try {
    return await Attachment.connect(found.monitor.attachSocket, onEnd);
  } catch (err) {
    // It exited between the status check and the connection.
    if (found.monitor.exit() !== null) throw exited();
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ECONNREFUSED') throw new TsrunError(`attach: container ${name} has no attach socket (${found.monitor.attachSocket}); its monitor predates attach or is gone`, code);
    throw err;
  }
}
