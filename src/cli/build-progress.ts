import type { BuildEvent } from '../build/builder';

/**
 * Draws a build's progress as BuildKit does. `plain`: one line per event,
 * each prefixed with its step (`#3 [2/6] RUN make`, `#3 0.412 output`,
 * `#3 CACHED`, `#3 DONE 1.2s`), for logs. `tty`: the steps redrawn in
 * place under a `[+] Building` header, with the last lines of the running
 * step's output.
 */

export type ProgressMode = 'plain' | 'tty';

export interface BuildRenderer {
  update(event: BuildEvent): void;
  /** Draws the final state (the failing step's whole output when `failed`); call before printing anything else. */
  finish(failed: boolean): void;
}

interface StepView {
  step: number;
  title: string;
  started: number;
  finished?: number;
  cached: boolean;
  /** Whole lines of output, and the line still being written. */
  output: string[];
  partial: string;
}

function title(event: Extract<BuildEvent, { type: 'step' }>): string {
  return `[${event.stage} ${event.step}/${event.total}] ${event.instruction.replace(/\s+/g, ' ')}`;
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)}s`;
}

export function buildRenderer(mode: ProgressMode, out: NodeJS.WriteStream): BuildRenderer {
  return mode === 'tty' ? new TtyRenderer(out) : new PlainRenderer(out);
}

class PlainRenderer implements BuildRenderer {
  private readonly started = new Map<number, number>();
  /** Partial output lines, per step. */
  private readonly partial = new Map<number, string>();

  constructor(private readonly out: NodeJS.WritableStream) {}

  update(event: BuildEvent): void {
    switch (event.type) {
      case 'step':
        this.started.set(event.step, Date.now());
        this.out.write(`#${event.step} ${title(event)}\n`);
        break;
      case 'cached':
        this.out.write(`#${event.step} CACHED\n`);
        break;
      case 'output': {
        const text = (this.partial.get(event.step) ?? '') + event.data;
        const lines = text.split('\n');
        this.partial.set(event.step, lines.pop() as string);
        const elapsed = ((Date.now() - (this.started.get(event.step) ?? Date.now())) / 1000).toFixed(3);
        for (const line of lines) this.out.write(`#${event.step} ${elapsed} ${line}\n`);
        break;
      }
      case 'done': {
        const rest = this.partial.get(event.step);
        if (rest) this.out.write(`#${event.step} ${rest}\n`);
        this.partial.delete(event.step);
        this.out.write(`#${event.step} DONE ${seconds(Date.now() - (this.started.get(event.step) ?? Date.now()))}\n`);
        break;
      }
      case 'warning':
        this.out.write(`WARNING: ${event.message}\n`);
        break;
      case 'image':
        this.out.write(`writing image ${event.id} done\n${event.tags.map((t) => `naming to ${t} done\n`).join('')}`);
        break;
    }
  }

  finish(): void {}
}

/** Lines of a running step's output shown under it. */
const TAIL_LINES = 6;
const REDRAW_MS = 100;

class TtyRenderer implements BuildRenderer {
  private readonly steps = new Map<number, StepView>();
  private readonly notes: string[] = [];
  private readonly start = Date.now();
  private total = 0;
  private drawn = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly out: NodeJS.WriteStream) {}

  update(event: BuildEvent): void {
    const view = 'step' in event ? this.steps.get(event.step) : undefined;
    switch (event.type) {
      case 'step':
        this.total = event.total;
        this.steps.set(event.step, { step: event.step, title: title(event), started: Date.now(), cached: false, output: [], partial: '' });
        break;
      case 'cached':
        if (view) view.cached = true;
        break;
      case 'output':
        if (view) {
          const lines = (view.partial + event.data).split('\n');
          view.partial = lines.pop() as string;
          view.output = [...view.output, ...lines].slice(-200);
        }
        break;
      case 'done':
        if (view) view.finished = Date.now();
        break;
      case 'warning':
        this.notes.push(`WARNING: ${event.message}`);
        break;
      case 'image':
        this.notes.push(`writing image ${event.id} done`, ...event.tags.map((t) => `naming to ${t} done`));
        break;
    }
    this.timer ??= setTimeout(() => this.draw(false), REDRAW_MS);
  }

  private draw(failed: boolean): void {
    this.timer = undefined;
    const width = this.out.columns || 120;
    const now = Date.now();
    const done = [...this.steps.values()].filter((s) => s.finished !== undefined).length;
    const lines = [`[+] Building ${seconds(now - this.start)} (${done}/${this.total})${failed ? ' FAILED' : done === this.total ? ' FINISHED' : ''}`];
    for (const step of this.steps.values()) {
      const time = step.cached ? '' : ` ${seconds((step.finished ?? now) - step.started)}`;
      lines.push(` => ${step.cached ? 'CACHED ' : ''}${step.title}${time}`);
      if (step.finished === undefined) {
        const all = step.partial === '' ? step.output : [...step.output, step.partial];
        const shown = failed ? all : all.slice(-TAIL_LINES);
        lines.push(...shown.map((l) => ` => => ${l}`));
      }
    }
    lines.push(...this.notes);
    const text = lines.map((line) => `\x1b[2K${failed ? line : line.slice(0, width - 1)}\n`).join('');
    // Up over the last drawing, and clear it: this one may have fewer lines.
    this.out.write(`${this.drawn > 0 ? `\x1b[${this.drawn}A\x1b[0J` : ''}${text}`);
    this.drawn = lines.length;
  }

  finish(failed: boolean): void {
    if (this.timer) clearTimeout(this.timer);
    this.draw(failed);
  }
}
