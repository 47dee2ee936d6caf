import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { FIXTURE_ENV, isRoot } from './env';

/** The shared busybox root filesystem (read it, do not write to it). */
export function busyboxRootfs(): string {
  const dir = process.env[FIXTURE_ENV];
  if (!dir) throw new Error('no test fixtures: global-setup did not run as root');
  return path.join(dir, 'busybox');
}

/** A temp dir removed after the file's tests, even when they fail. */
export function useTempDir(prefix = 'tsrun-'): () => string {
  let dir: string | undefined;
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  });
  afterAll(() => {
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });
  return () => {
    if (!dir) throw new Error('useTempDir: used outside a test');
    return dir;
  };
}

/**
 * `describe` for tests that need root; otherwise skipped with the reason
 * printed, so a run without root cannot look green by accident.
 */
export function describeAsRoot(name: string, body: () => void): void {
  if (isRoot()) {
    describe(name, body);
  } else {
    describe.skip(`${name} [skipped: needs root]`, body);
    console.warn(`skipped "${name}": these tests create namespaces and mounts and need root`);
  }
}

