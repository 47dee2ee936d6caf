import fs = require('node:fs');
import { ContainerLocation, findContainer } from './containers';
import { TsrunError } from '../errors';

/** One line of a container's log, as its monitor wrote it (the CRI format: `<time> <stream> <F|P> <text>`). */
export interface LogEntry {
  time: string;
  stream: 'stdout' | 'stderr';
  /** The text, with its newline unless the line was cut (a partial line, or the last one without a newline). */
  text: string;
}

export interface LogOptions extends ContainerLocation {
  /** Only the last N lines (default: all). */
  tail?: number;
  /** Keep reading as the container writes, until it exits. */
  follow?: boolean;
  signal?: AbortSignal;
}

export function parseLogLine(line: string): LogEntry | null {
  const match = /^(\S+) (stdout|stderr) ([FP]) (.*)$/s.exec(line);
  if (!match) return null;
  return { time: match[1], stream: match[2] as LogEntry['stream'], text: match[4] + (match[3] === 'F' ? '\n' : '') };
}

function completeLines(chunk: string): { lines: string[]; rest: string } {
  const lines = chunk.split('\n');
  const rest = lines.pop() ?? '';
  return { lines, rest };
}

/** A detached container's output (`tsrun logs`), oldest first. */
export async function* containerLogs(reference: string, options: LogOptions = {}): AsyncGenerator<LogEntry> {
  const found = findContainer(reference, options);
  if (!found.monitor.exists()) throw new TsrunError(`logs: container ${reference} was not started detached; its output went to the terminal of its tsrun`, 'EINVAL');
  let fd: number;
  try {
    fd = fs.openSync(found.monitor.log, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  try {
    const buf = Buffer.alloc(64 * 1024);
    let rest = '';
    const read = (): string[] => {
      const lines: string[] = [];
      for (;;) {
        const n = fs.readSync(fd, buf, 0, buf.length, null);
        if (n === 0) return lines;
        const parsed = completeLines(rest + buf.toString('utf8', 0, n));
        rest = parsed.rest;
        lines.push(...parsed.lines);
      }
    };
    let first = read();
    if (options.tail !== undefined) first = options.tail > 0 ? first.slice(-options.tail) : [];
    for (const line of first) {
      const entry = parseLogLine(line);
      if (entry) yield entry;
    }
    if (!options.follow) return;
    let delay = 10;
    for (;;) {
      // Read once more after the exit is known: the monitor writes the log before exit.json.
      const done = found.monitor.exit() !== null || !found.monitor.exists();
      const lines = read();
      for (const line of lines) {
        const entry = parseLogLine(line);
        if (entry) yield entry;
      }
      if (done) return;
      if (options.signal?.aborted) return;
      delay = lines.length > 0 ? 10 : Math.min(delay * 2, 200);
      await new Promise((resolve) => setTimeout(resolve, delay));
    }
  } finally {
    fs.closeSync(fd);
  }
}
