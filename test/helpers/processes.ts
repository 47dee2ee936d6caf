import * as fs from 'node:fs';

/** A process of this container still alive: its monitor (whose command line names the container's directory) or anything in it. */
export function processesOf(id: string): number[] {
  const found: number[] = [];
  for (const entry of fs.readdirSync('/proc').filter((e) => /^\d+$/.test(e))) {
    try {
      if (fs.readFileSync(`/proc/${entry}/cmdline`, 'utf8').includes(id)) found.push(Number(entry));
    } catch {
      // Gone while we looked.
    }
  }
  return found;
}

/** The container's tsrun-monitor, if it runs. */
export function monitorOf(id: string): number | undefined {
  return processesOf(id).find((pid) => {
    try {
      return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')[0].endsWith('tsrun-monitor');
    } catch {
      return false;
    }
  });
}
