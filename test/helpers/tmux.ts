import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

/** Whether tmux is installed (scripts/setup.sh installs it); tests that need a real terminal skip with a message without it. */
export const hasTmux = spawnSync('tmux', ['-V']).status === 0;

/** Whether the pane's script has written `file` to its end: a shell's `> file` creates it empty first. */
export function written(file: string): boolean {
  return fs.existsSync(file) && fs.readFileSync(file, 'utf8').endsWith('\n');
}

/**
 * A tmux server of its own (a socket in `dir`) whose one pane runs a
 * shell script: a real terminal for tests to type into, resize and read.
 */
export class TmuxSession {
  private readonly socket: string;

  constructor(dir: string, script: string, size = { cols: 80, rows: 24 }) {
    this.socket = path.join(dir, 'tmux.sock');
    this.tmux('new-session', '-d', '-x', String(size.cols), '-y', String(size.rows), `sh ${script}`);
  }

  tmux(...args: string[]): string {
    const result = spawnSync('tmux', ['-S', this.socket, ...args], { encoding: 'utf8' });
    if (result.status !== 0) throw new Error(`tmux ${args.join(' ')}: ${result.stderr}`);
    return result.stdout;
  }

  /** The pane's text, wrapped lines joined. */
  screen(): string {
    return this.tmux('capture-pane', '-p', '-J');
  }

  /** Types `text` as it is (`\r` is Enter). */
  type(text: string): void {
    this.tmux('send-keys', '-l', text);
  }

  /** Sends keys by tmux's names (C-p, Enter). */
  keys(...names: string[]): void {
    this.tmux('send-keys', ...names);
  }

  resize(cols: number, rows: number): void {
    this.tmux('resize-window', '-x', String(cols), '-y', String(rows));
  }

  kill(): void {
    spawnSync('tmux', ['-S', this.socket, 'kill-server']);
  }
}
