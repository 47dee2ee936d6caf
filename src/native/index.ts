import path = require('node:path');

/** What the child reports when a plan step fails: step index, positive errno. */
export interface ChildErrorReport {
  step: number;
  errno: number;
}

export interface ExitStatus {
  exitCode: number | null;
  signal: number | null;
}

export interface SpawnResult {
  pid: number;
  pidfd: number;
  /** Read end of the error channel; pass it to readChildError once. */
  errorFd: number;
  /** The child's start time as /proc/PID/stat gives it (clock ticks since boot), read by the child itself; vfork mode only. */
  startTime?: number;
}

export interface ExitWatcher {
  ref(): void;
  unref(): void;
}

/** The addon's exports (native/addon.cc). Every function throws fs-style errors. */
export interface NativeBinding {
  spawn(plan: Buffer, options: { cloneFlags: number; mode: 'vfork' | 'fork'; syncFd?: number; parentSyncFd?: number }): SpawnResult;
  pipe(): [number, number];
  socketPair(): [number, number];
  syncWait(fd: number, timeoutMs: number): number | null;
  syncRelease(fd: number, byte: number): void;
  readChildError(fd: number, keepOpen?: boolean): ChildErrorReport | null;
  pidfdOpen(pid: number): number;
  pidfdSendSignal(pidfd: number, signal: number): void;
  waitExit(pidfd: number, block: boolean): ExitStatus | null;
  ExitWatcher: new (pidfd: number, callback: (status: ExitStatus | { error: string }) => void) => ExitWatcher;
  mount(source: string | null, target: string, fstype: string | null, flags: number, data?: string | null): void;
  /** mount(2) from a thread whose cwd is `cwd`, for relative paths in `data` (overlay lowerdir). */
  mountAt(cwd: string, source: string | null, target: string, fstype: string | null, flags: number, data?: string | null): void;
  umount2(target: string, flags: number): void;
  pivotRoot(newRoot: string, putOld: string): void;
  mknod(path: string, mode: number, major: number, minor: number): void;
  /** An fd (O_CLOEXEC) of `path` resolved with `root` as "/" (openat2 RESOLVE_IN_ROOT); ENOSYS without openat2. */
  openInRoot(root: string, path: string, flags: number): number;
  sethostname(name: string): void;
  lsetxattr(path: string, name: string, value: Buffer, flags: number): void;
  lgetxattr(path: string, name: string): Buffer | null;
  llistxattr(path: string): string[];
  /** flock(fd, op | LOCK_NB): false when another holder has the lock. */
  flock(fd: number, operation: number): boolean;
  /** An idmapped bind of `source` on `target`, with the ids of the user namespace `usernsFd`. */
  idmapBind(source: string, target: string, usernsFd: number): void;
  /** The fd sent over a unix socket (SCM_RIGHTS), close-on-exec; null if the peer closed without sending. */
  receiveFd(socket: number, timeoutMs: number): number | null;
  /** A unix stream socket connected to `socketPath`, close-on-exec. */
  connectUnix(socketPath: string): number;
  /** TIOCSWINSZ on a terminal. */
  setWindowSize(fd: number, rows: number, cols: number): void;
  /** The file's bytes as a one-byte (Latin-1) string that V8 uses without a copy of its own. */
  readOneByteString(path: string): string;
  /** The file mapped read-only; a change made to it in place shows through. */
  mapReadOnly(path: string): Uint8Array;
  /** Makes an empty network namespace with lo up on a worker thread; calls back with an fd (O_CLOEXEC) that holds it. */
  newNetworkNamespace(callback: (error: NodeJS.ErrnoException | null, fd?: number) => void): void;
}

let binding: NativeBinding | undefined;

/** The addon as the CLI's launcher loaded it (scripts/cli-loader.js), so that it is not loaded twice. */
export function adoptNative(loaded: NativeBinding): void {
  binding ??= loaded;
}

/** Loads build/Release/tsrun_native.node (or build/Debug); the error lists where it looked. */
export function loadNative(): NativeBinding {
  if (binding) return binding;
  const root = path.resolve(__dirname, '..', '..');
  const candidates = ['build/Release/tsrun_native.node', 'build/Debug/tsrun_native.node'].map((p) => path.join(root, p));
  const failures: string[] = [];
  for (const candidate of candidates) {
    try {
      // Not require(): resolving the path, it reads and parses the nearest
      // package.json (for a package's reference to itself), which was about
      // a millisecond of every CLI start.
      const addon = { exports: {} };
      process.dlopen(addon, candidate);
      binding = addon.exports as NativeBinding;
      return binding;
    } catch (err) {
      failures.push(`${candidate}: ${(err as Error).message.split('\n')[0]}`);
    }
  }
  throw new Error(`tsrun: the native addon is not built (run "npm run build"); tried:\n  ${failures.join('\n  ')}`);
}
