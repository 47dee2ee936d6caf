import type { ChildProcess } from 'node:child_process';
import fs = require('node:fs');
import path = require('node:path');
import { TsrunError } from '../errors';
import { ProcessIdentity, isRunning, processStartTime } from '../linux/proc';
import { loadNative } from '../native';
import type { Spec } from '../oci/runtime-spec';
import { ContainerPlan } from './container-plan';
import { PlanStep, childFailure, serializePlan } from './plan';
import { SpawnHooks, runParentSide } from './spawn';

/**
 * The fds tsrun-monitor (native/monitor.cc) gets: the plan, the child's end
 * of the sync channel, the report pipe, and the exec fifo, which the plan
 * reopens as /proc/self/fd/6. With a terminal, the monitor gives the init
 * a console socket as fd 7, for the plan's OpenPty step.
 */
const PLAN_FD = 3;
export const MONITOR_FIFO_FD = 6;
export const MONITOR_CONSOLE_FD = 7;

/** What the monitor holds for `tsrun attach`: the init's pty master (run -t), a pipe to its stdin (run -i without -t). */
export interface MonitorIo {
  tty: boolean;
  stdin: boolean;
}

const O_PATH = 0o10000000;
const S_IFIFO = 0o010000;

/** Report kinds of native/monitor.cc (MonitorReport: u32 kind, i32 a, i32 b). */
const Report = { Pid: 1, ExecFailed: 3 } as const;
const REPORT_SIZE = 12;

/** How a detached container ended, as its monitor wrote it to exit.json. */
export interface MonitorExit {
  exitCode: number;
  /** The signal that killed the init, or null. */
  signal: number | null;
  finishedAt: string;
}

/**
 * A detached container's files, in its own directory under the state
 * directory: `monitors/<id>/` holds the exec fifo (present until start),
 * container.log (CRI format), exec-status, exit.json and monitor.log.
 */
export class MonitorFiles {
  constructor(readonly dir: string) {}

  static of(stateDir: string, id: string): MonitorFiles {
    return new MonitorFiles(path.join(stateDir, 'monitors', id));
  }

  get fifo(): string {
    return path.join(this.dir, 'exec.fifo');
  }

  /** The options the container was created with (run.ts), for restarts. */
  get options(): string {
    return path.join(this.dir, 'options.json');
  }

  /** How many times a restart policy restarted the container. */
  restartCount(): number {
    try {
      return Number(fs.readFileSync(path.join(this.dir, 'restart-count'), 'utf8')) || 0;
    } catch {
      return 0;
    }
  }

  setRestartCount(count: number): void {
    fs.writeFileSync(path.join(this.dir, 'restart-count'), String(count));
  }

  /** `stop` marks the container stopped by hand, which restart policies respect. */
  markStopped(byHand: boolean): void {
    const marker = path.join(this.dir, 'stopped-by-hand');
    if (byHand) fs.writeFileSync(marker, '');
    else fs.rmSync(marker, { force: true });
  }

  stoppedByHand(): boolean {
    return fs.existsSync(path.join(this.dir, 'stopped-by-hand'));
  }

  /** Before a restart: what the last run left, but the log (which goes on, as Docker's). */
  clearRun(): void {
    for (const name of ['exit.json', 'exec-status', 'steps.json', 'exec.fifo', 'plan.bin']) fs.rmSync(path.join(this.dir, name), { force: true });
  }

  get steps(): string {
    return path.join(this.dir, 'steps.json');
  }

  get log(): string {
    return path.join(this.dir, 'container.log');
  }

  /** Where the monitor listens for `tsrun attach` while the container runs. */
  get attachSocket(): string {
    return path.join(this.dir, 'attach.sock');
  }

  exists(): boolean {
    return fs.existsSync(this.dir);
  }

  /** null while the container has not exited (or was never detached). */
  exit(): MonitorExit | null {
    try {
      return JSON.parse(fs.readFileSync(path.join(this.dir, 'exit.json'), 'utf8')) as MonitorExit;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw err;
    }
  }

  /** 'ok', a {step, errno} failure, or null while the init has not reached its exec. */
  execStatus(): 'ok' | { step: number; errno: number } | null {
    let text: string;
    try {
      text = fs.readFileSync(path.join(this.dir, 'exec-status'), 'utf8').trim();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw err;
    }
    if (text === 'ok') return 'ok';
    const [, step, errno] = text.split(' ').map(Number);
    return { step, errno };
  }

  /** The monitor's own complaints (it writes nothing else there). */
  monitorLog(): string {
    try {
      return fs.readFileSync(path.join(this.dir, 'monitor.log'), 'utf8').trim();
    } catch {
      return '';
    }
  }

  remove(): void {
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

/** The monitor binary, built by node-gyp beside the addon. */
export function monitorBinary(): string {
  const root = path.resolve(__dirname, '..', '..');
  for (const build of ['Release', 'Debug']) {
    const candidate = path.join(root, 'build', build, 'tsrun-monitor');
    if (fs.existsSync(candidate)) return candidate;
  }
  throw new TsrunError(`tsrun: tsrun-monitor is not built (run "npm run build:native"); looked in ${path.join(root, 'build')}`, 'ENOENT');
}

function readReport(fd: number): { kind: number; a: number; b: number } | null {
  const buf = Buffer.alloc(REPORT_SIZE);
  let got = 0;
  while (got < REPORT_SIZE) {
    let n: number;
    try {
      n = fs.readSync(fd, buf, got, REPORT_SIZE - got, null);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EAGAIN') continue;
      throw err;
    }
    if (n === 0) return null;
    got += n;
  }
  return { kind: buf.readUInt32LE(0), a: buf.readInt32LE(4), b: buf.readInt32LE(8) };
}

/** A container whose init waits on its exec fifo, under its monitor. */
export interface MonitoredInit {
  pid: number;
  monitor: ProcessIdentity;
}

/**
 * Starts tsrun-monitor, which clones the container's init with `plan` (built
 * with execFifoFd MONITOR_FIFO_FD and stdio kept), and returns once the
 * init is created: set up, and waiting on its exec fifo. The parent's half
 * of the plan (a user namespace's id maps) is done here, over the sync
 * channel the monitor hands to the init.
 */
export function createMonitored(spec: Spec, plan: ContainerPlan, files: MonitorFiles, exitCommand: string[], io: MonitorIo, hooks: SpawnHooks = {}): MonitoredInit {
  const native = loadNative();
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const childProcess = require('node:child_process') as typeof import('node:child_process');
  fs.mkdirSync(files.dir, { recursive: true, mode: 0o700 });
  fs.rmSync(files.fifo, { force: true });
  native.mknod(files.fifo, S_IFIFO | 0o600, 0, 0);
  const planFile = path.join(files.dir, 'plan.bin');
  fs.writeFileSync(planFile, serializePlan(plan.steps), { mode: 0o600 });
  // What a later `start` needs to name a step that failed.
  const described = plan.steps.map(({ op, phase, target, detail }) => ({ op, phase, target, detail }));
  fs.writeFileSync(files.steps, JSON.stringify(described), { mode: 0o600 });

  const opened: number[] = [];
  const open = (fd: number): number => {
    opened.push(fd);
    return fd;
  };
  let monitor: ChildProcess | undefined;
  let reportRead = -1;
  try {
    const planFd = open(fs.openSync(planFile, 'r'));
    const fifoFd = open(fs.openSync(files.fifo, O_PATH));
    const logFd = open(fs.openSync(path.join(files.dir, 'monitor.log'), 'a', 0o600));
    const [syncParent, syncChild] = native.socketPair().map(open);
    const [reportReadEnd, reportWrite] = native.pipe().map(open);
    reportRead = reportReadEnd;
    const stdio = ['ignore', 'ignore', logFd, planFd, syncChild, reportWrite, fifoFd] as const;
    if (stdio.indexOf(planFd) !== PLAN_FD || stdio.indexOf(fifoFd) !== MONITOR_FIFO_FD) throw new Error('monitor fd layout');
    const flags = [...(io.tty ? ['--tty'] : []), ...(io.stdin ? ['--stdin'] : [])];
    monitor = childProcess.spawn(monitorBinary(), [...flags, files.dir, String(plan.cloneFlags), ...exitCommand], { stdio: [...stdio], detached: true });
    monitor.unref();
    for (const fd of [planFd, fifoFd, logFd, syncChild, reportWrite]) fs.closeSync(fd);
    opened.splice(0, opened.length, syncParent, reportRead);

    const first = readReport(reportRead);
    if (first === null || first.kind !== Report.Pid) {
      throw new TsrunError(`tsrun-monitor failed: ${files.monitorLog() || 'it exited without starting the container'}`, 'EMONITOR');
    }
    const pid = first.a;
    const message = runParentSide(spec, pid, syncParent, hooks);
    if (message === null) {
      // The init stopped before it was created; the monitor passes on its report.
      const report = readReport(reportRead);
      if (report?.kind === Report.ExecFailed) throw childFailure(plan.steps, { step: report.a, errno: report.b });
      throw new TsrunError(`container init ${pid} exited before it was created`, 'ECHILD');
    }
    for (const fd of opened.splice(0)) fs.closeSync(fd);
    const monitorPid = monitor.pid as number;
    return { pid, monitor: { pid: monitorPid, startTime: processStartTime(monitorPid) ?? 0 } };
  } catch (err) {
    for (const fd of opened) fs.closeSync(fd);
    monitor?.kill('SIGKILL');
    throw err;
  } finally {
    fs.rmSync(planFile, { force: true });
  }
}

async function sleep(ms: number): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Lets a created init exec: opening the fifo for reading completes the
 * init's open for writing, and the byte it writes says it got there. The
 * fifo goes afterwards: its absence is what says "started".
 */
export async function releaseInit(fifo: string, pid: number, pidStartTime: number | undefined): Promise<void> {
  const O_NONBLOCK = fs.constants.O_NONBLOCK;
  let fd: number;
  try {
    fd = fs.openSync(fifo, fs.constants.O_RDONLY | O_NONBLOCK);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new TsrunError(`container init ${pid} was started already`, 'ESTATE');
    throw err;
  }
  try {
    const byte = Buffer.alloc(1);
    for (;;) {
      let n = 0;
      try {
        n = fs.readSync(fd, byte, 0, 1, null);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EAGAIN') throw err;
      }
      if (n === 1) break;
      if (!isRunning(pid, pidStartTime)) throw new TsrunError(`container init ${pid} exited before it was started`, 'ECHILD');
      await sleep(2);
    }
  } finally {
    fs.closeSync(fd);
  }
  fs.rmSync(fifo, { force: true });
}

/**
 * After releaseInit: resolves once the init has exec'd, or throws the
 * step that failed, as the monitor's exec-status file says.
 */
export async function awaitExec(files: MonitorFiles): Promise<void> {
  let status: ReturnType<MonitorFiles['execStatus']>;
  while ((status = files.execStatus()) === null && files.exit() === null) await sleep(2);
  status ??= files.execStatus();
  if (status === null || status === 'ok') return;
  throw childFailure(JSON.parse(fs.readFileSync(files.steps, 'utf8')) as PlanStep[], status);
}

/** Resolves with the exit once the monitor has written it. */
export async function waitForExit(files: MonitorFiles, signal?: AbortSignal): Promise<MonitorExit> {
  let delay = 5;
  for (;;) {
    const exit = files.exit();
    if (exit) return exit;
    signal?.throwIfAborted();
    if (!files.exists()) throw new TsrunError(`${files.dir} is gone: the container was removed`, 'ENOENT');
    await sleep(delay);
    delay = Math.min(delay * 2, 100);
  }
}
