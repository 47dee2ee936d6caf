import type { LayerProgress } from '../registry/progress';

/**
 * Draws pull and push progress as Docker does. On a terminal, one line per
 * layer, redrawn in place with a bar while bytes move; otherwise one line
 * each time a layer's status changes, which reads well in a log.
 */

const BAR_WIDTH = 50;
/** Redraws at most this often on a terminal. */
const REDRAW_MS = 100;

/** Docker's progress sizes: decimal units, up to four significant digits (`1.234MB`). */
function size(bytes: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit++;
  }
  return `${unit === 0 ? value : value.toFixed(3)}${units[unit]}`;
}

function bar(current: number, total: number): string {
  const filled = total > 0 ? Math.min(BAR_WIDTH, Math.floor((current / total) * BAR_WIDTH)) : 0;
  const arrow = filled < BAR_WIDTH ? '>' : '';
  return `[${'='.repeat(Math.max(0, filled - (arrow ? 1 : 0)))}${arrow}${' '.repeat(BAR_WIDTH - Math.max(filled, arrow ? 1 : 0))}]`;
}

function describe(progress: LayerProgress, withBar: boolean): string {
  const status = progress.status === 'Mounted' ? `Mounted from ${progress.detail ?? 'another repository'}` : progress.status;
  if ((progress.status === 'Downloading' || progress.status === 'Pushing') && progress.current !== undefined && progress.total !== undefined) {
    return withBar ? `${progress.id}: ${status} ${bar(progress.current, progress.total)}  ${size(progress.current)}/${size(progress.total)}` : `${progress.id}: ${status}`;
  }
  return `${progress.id}: ${status}${progress.status === 'Retrying' && progress.detail ? ` (${progress.detail})` : ''}`;
}

export interface ProgressRenderer {
  update(progress: LayerProgress): void;
  /** Draws the final state; call before printing anything else. */
  finish(): void;
}

export function progressRenderer(out: NodeJS.WriteStream): ProgressRenderer {
  return out.isTTY ? new TerminalProgress(out) : new LineProgress(out);
}

class LineProgress implements ProgressRenderer {
  private readonly last = new Map<string, string>();

  constructor(private readonly out: NodeJS.WritableStream) {}

  update(progress: LayerProgress): void {
    const line = describe(progress, false);
    if (this.last.get(progress.id) === line) return;
    this.last.set(progress.id, line);
    this.out.write(`${line}\n`);
  }

  finish(): void {}
}

class TerminalProgress implements ProgressRenderer {
  private readonly lines = new Map<string, string>();
  /** Lines drawn so far, which the next redraw moves back over. */
  private drawn = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly out: NodeJS.WriteStream) {}

  update(progress: LayerProgress): void {
    this.lines.set(progress.id, describe(progress, true));
    this.timer ??= setTimeout(() => this.draw(), REDRAW_MS);
  }

  private draw(): void {
    this.timer = undefined;
    const width = this.out.columns ?? 120;
    const text = [...this.lines.values()].map((line) => `\x1b[2K${line.slice(0, width - 1)}\n`).join('');
    this.out.write(`${this.drawn > 0 ? `\x1b[${this.drawn}A` : ''}${text}`);
    this.drawn = this.lines.size;
  }

  finish(): void {
    if (this.timer) clearTimeout(this.timer);
    this.draw();
  }
}
