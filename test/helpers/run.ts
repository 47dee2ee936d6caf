import { run } from '../../src';
import type { Container, RunOptions } from '../../src';
import { busyboxRootfs } from './fixtures';

export interface Collected {
  stdout: string;
  stderr: string;
  exitCode: number;
  signal: string | null;
}

/** Feeds `input` to a container started with stdio 'pipe', and collects its output until it exits. */
export async function collectOutput(container: Container, input = ''): Promise<Collected & { id: string }> {
  let stdout = '';
  let stderr = '';
  container.stdout?.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  container.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  container.stdin?.end(input);
  const { exitCode, signal } = await container.wait();
  return { stdout, stderr, exitCode, signal: signal as string | null, id: container.id };
}

/** Runs a container on the busybox rootfs and collects its output. */
export async function runCollect(args: string[], options: Partial<RunOptions> & { stateDir: string; input?: string }): Promise<Collected> {
  const { input, ...rest } = options;
  const { id: _, ...collected } = await collectOutput(await run({ rootfs: busyboxRootfs(), args, stdio: 'pipe', ...rest }), input);
  return collected;
}
