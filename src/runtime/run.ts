import * as fs from 'node:fs';
import { TsrunError, ValidationError } from '../errors';
import { canPivotRoot } from '../linux/rootfs';
import { processStartTime } from '../linux/proc';
import { loadNative } from '../native';
import { silentLogger } from '../logger';
import { ContainerPlan, buildContainerPlan } from './container-plan';
import { Container, ContainerStdio, ExitResult, pipeStream } from './container';
import { createImageContainer } from './image-container';
import { OCI_VERSION } from '../oci/defaults';
import type { Spec } from '../oci/runtime-spec';
import { DEFAULT_STATE_DIR, RunOptions, StdioOption, buildSpec } from './options';
import { spawnContainer } from './spawn';
import { ContainerState, StateStore, newContainerId, validateName } from './state';

interface StdioFds {
  /** What the child's 0, 1, 2 become (-1: inherited). */
  child: [number, number, number];
  /** Fds to close in this process once the child has them. */
  childEnds: number[];
  /** This process's ends of the pipes, per fd (-1: none). */
  parent: [number, number, number];
}

function setupStdio(option: RunOptions['stdio']): StdioFds {
  const perFd: StdioOption[] = Array.isArray(option) ? option : [option ?? 'pipe', option ?? 'pipe', option ?? 'pipe'];
  const fds: StdioFds = { child: [-1, -1, -1], childEnds: [], parent: [-1, -1, -1] };
  try {
    perFd.forEach((mode, i) => {
      if (mode === 'inherit') {
        fds.child[i] = i;
      } else if (mode === 'ignore') {
        const devNull = fs.openSync('/dev/null', i === 0 ? 'r' : 'w');
        fds.childEnds.push(devNull);
        fds.child[i] = devNull;
      } else if (mode === 'pipe') {
        const [readEnd, writeEnd] = loadNative().pipe();
        const [childEnd, parentEnd] = i === 0 ? [readEnd, writeEnd] : [writeEnd, readEnd];
        fds.childEnds.push(childEnd);
        fds.child[i] = childEnd;
        fds.parent[i] = parentEnd;
      } else if (Number.isInteger(mode) && mode >= 0) {
        fds.child[i] = mode;
      } else {
        throw new TsrunError(`stdio[${i}]: ${JSON.stringify(mode)} is not inherit, pipe, ignore or an fd`, 'EINVAL');
      }
    });
  } catch (err) {
    closeAll([...fds.childEnds, ...fds.parent]);
    throw err;
  }
  return fds;
}

function closeAll(fds: number[]): void {
  for (const fd of fds) if (fd >= 0) fs.closeSync(fd);
}

/**
 * What differs between a container on a plain root filesystem (runtime
 * state only) and one made from an image (a record and layers in the store).
 */
interface Lifecycle {
  rootfs: string;
  process?: { args: string[]; env: string[]; cwd: string; user: string | undefined };
  started(pid: number): void;
  startFailed(): void | Promise<void>;
  exited(result: ExitResult): void | Promise<void>;
}

function rootfsLifecycle(options: RunOptions, id: string, name: string, spec: () => Spec): Lifecycle {
  const store = new StateStore(options.stateDir ?? process.env.TSRUN_STATE ?? DEFAULT_STATE_DIR);
  const state: ContainerState = {
    ociVersion: OCI_VERSION,
    id,
    name,
    status: 'creating',
    pid: 0,
    bundle: '',
    rootfs: options.rootfs ?? '',
    created: new Date().toISOString(),
    command: options.args ?? [],
  };
  // Taken before the start, so that a name in use stops it.
  store.create(state);
  return {
    rootfs: options.rootfs ?? '',
    started(pid) {
      Object.assign(state, { status: 'running', pid, pidStartTime: processStartTime(pid) ?? undefined, rootfs: spec().root.path, startedAt: new Date().toISOString() });
      store.save(state);
    },
    startFailed() {
      store.remove(state);
    },
    exited(result) {
      if (options.autoRemove) store.remove(state);
      else store.save({ ...state, status: 'stopped', pid: 0, exitCode: result.exitCode, finishedAt: new Date().toISOString() });
    },
  };
}

/**
 * Starts a container and returns once its command has exec'd.
 *
 * @example
 * const c = await run({ rootfs: '/srv/busybox', args: ['sh', '-c', 'echo hi'] });
 * c.stdout?.pipe(process.stdout);
 * const { exitCode } = await c.wait();
 */
export async function run(options: RunOptions): Promise<Container> {
  const logger = options.logger ?? silentLogger;
  options.signal?.throwIfAborted();
  if ((options.rootfs === undefined) === (options.image === undefined)) throw new ValidationError('rootfs', 'give either rootfs or image, not both or neither');
  const id = newContainerId();
  const name = options.name ?? id.slice(0, 12);
  validateName(name);
  const pivot = !options.noPivot && canPivotRoot();
  let spec: Spec | undefined;
  const lifecycle: Lifecycle =
    options.image !== undefined ? await createImageContainer({ ...options, image: options.image }, id, name, logger) : rootfsLifecycle(options, id, name, () => spec as Spec);

  let stdio: StdioFds | undefined;
  let plan: ContainerPlan;
  let spawned;
  try {
    spec = buildSpec({ ...options, ...lifecycle.process, rootfs: lifecycle.rootfs }, id);
    if (!pivot && !options.noPivot) logger.warn({ id, rootfs: spec.root.path }, 'pivot_root is impossible on a ramfs root; using MS_MOVE + chroot');
    stdio = setupStdio(options.stdio);
    plan = buildContainerPlan(spec, { stdio: stdio.child, dieWithParent: options.dieWithParent ?? true, pivot });
    spawned = spawnContainer(spec, plan);
  } catch (err) {
    if (stdio) closeAll(stdio.parent);
    try {
      await lifecycle.startFailed();
    } catch (cleanupError) {
      if (err instanceof TsrunError) err.cleanupError = cleanupError;
    }
    throw err;
  } finally {
    if (stdio) closeAll(stdio.childEnds);
  }
  logger.debug({ id, name, pid: spawned.pid, mode: plan.mode, steps: plan.steps.length }, 'container started');
  lifecycle.started(spawned.pid);

  const streams: ContainerStdio = {
    stdin: stdio.parent[0] >= 0 ? pipeStream(stdio.parent[0], 'write') : null,
    stdout: stdio.parent[1] >= 0 ? pipeStream(stdio.parent[1], 'read') : null,
    stderr: stdio.parent[2] >= 0 ? pipeStream(stdio.parent[2], 'read') : null,
  };
  const onAbort = (): void => {
    container.kill('SIGKILL');
  };
  const container = new Container(
    id,
    name,
    spec.hostname,
    spawned,
    streams,
    (result) => {
      options.signal?.removeEventListener('abort', onAbort);
      return lifecycle.exited(result);
    },
    logger,
  );
  options.signal?.addEventListener('abort', onAbort, { once: true });
  return container;
}
