import * as fs from 'node:fs';
import { TsrunError, ValidationError } from '../errors';
import type { CgroupDriver } from '../linux/cgroups';
import { canPivotRoot } from '../linux/rootfs';
import { ownIdentity, processStartTime } from '../linux/proc';
import { loadNative } from '../native';
import { Logger, silentLogger } from '../logger';
import { ContainerPlan, buildContainerPlan } from './container-plan';
import { Container, ContainerStdio, ExitResult, pipeStream } from './container';
import { OCI_VERSION } from '../oci/defaults';
import type { LinuxResources, Spec } from '../oci/runtime-spec';
import { DEFAULT_STATE_DIR, RunOptions, StdioOption, buildSpec } from './options';
import { spawnContainer } from './spawn';
import { ContainerState, StateStore, newContainerId, validateName } from './state';
import { crashPoint } from '../util/crash-point';

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

function rootfsLifecycle(options: RunOptions, id: string, name: string, spec: () => Spec, resources: LinuxResources): Lifecycle {
  const store = new StateStore(options.stateDir ?? process.env.TSRUN_STATE ?? DEFAULT_STATE_DIR);
  const state: ContainerState = {
    ociVersion: OCI_VERSION,
    id,
    name,
    status: 'creating',
    pid: 0,
    owner: ownIdentity(),
    bundle: '',
    rootfs: options.rootfs ?? '',
    created: new Date().toISOString(),
    command: options.args ?? [],
    resources,
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
      if (options.autoRemove) {
        store.remove(state);
        return;
      }
      // Read back: `tsrun update` may have changed the limits meanwhile.
      let current: ContainerState;
      try {
        current = store.load(id);
      } catch (err) {
        // `tsrun rm -f` removed it while it ran.
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
        throw err;
      }
      store.save({ ...current, status: 'stopped', pid: 0, exitCode: result.exitCode, oomKilled: result.oomKilled, finishedAt: new Date().toISOString() });
    },
  };
}

/** The image store's code loads only for image containers, so that `run --rootfs` starts without it. */
async function imageLifecycle(options: RunOptions & { image: string }, id: string, name: string, resources: LinuxResources, logger: Logger): Promise<Lifecycle> {
  const { createImageContainer } = await import('./image-container');
  return createImageContainer(options, id, name, resources, logger);
}

async function userNamespaceRemap(options: RunOptions): Promise<RunOptions['idMappings']> {
  if (options.idMappings) throw new ValidationError('usernsRemap', 'give either usernsRemap or idMappings, not both');
  const { HOST_SUBID_FILES, remapMappings } = await import('../linux/userns-remap');
  return remapMappings(options.usernsRemap as string, options.subIdFiles ?? HOST_SUBID_FILES);
}

/**
 * Starts a container and returns once its command has exec'd.
 *
 * @example
 * const c = await run({ rootfs: '/srv/busybox', args: ['sh', '-c', 'echo hi'] });
 * c.stdout?.pipe(process.stdout);
 * const { exitCode } = await c.wait();
 */
export async function run(runOptions: RunOptions): Promise<Container> {
  const logger = runOptions.logger ?? silentLogger;
  runOptions.signal?.throwIfAborted();
  const options = runOptions.usernsRemap === undefined ? runOptions : { ...runOptions, idMappings: await userNamespaceRemap(runOptions) };
  if ((options.rootfs === undefined) === (options.image === undefined)) throw new ValidationError('rootfs', 'give either rootfs or image, not both or neither');
  // Loaded here, not at the top, so that the CLI's other commands start without it.
  const cgroups = await import('./container-cgroup');
  // Before anything exists: a bad limit leaves nothing to clean up.
  const resources = cgroups.resourcesFromOptions(options);
  const id = newContainerId();
  const name = options.name ?? id.slice(0, 12);
  validateName(name);
  const pivot = !options.noPivot && canPivotRoot();
  let spec: Spec | undefined;
  // The record comes first: from then on a concurrent `tsrun ps` sees the
  // container as being created, and leaves its cgroup alone.
  const lifecycle: Lifecycle =
    options.image !== undefined
      ? await imageLifecycle({ ...options, image: options.image }, id, name, resources, logger)
      : rootfsLifecycle(options, id, name, () => spec as Spec, resources);

  let stdio: StdioFds | undefined;
  let cgroup: CgroupDriver | undefined;
  let plan: ContainerPlan;
  let spawned;
  try {
    spec = buildSpec({ ...options, ...lifecycle.process, rootfs: lifecycle.rootfs }, id, resources);
    if (!pivot && !options.noPivot) logger.warn({ id, rootfs: spec.root.path }, 'pivot_root is impossible on a ramfs root; using MS_MOVE + chroot');
    stdio = setupStdio(options.stdio);
    cgroup = cgroups.createContainerCgroup(id, spec.linux.resources ?? {}, logger);
    crashPoint('run:cgroup');
    plan = buildContainerPlan(spec, { stdio: stdio.child, dieWithParent: options.dieWithParent ?? true, pivot, cgroupJoin: cgroup.joinSteps() });
    spawned = spawnContainer(spec, plan);
  } catch (err) {
    if (stdio) closeAll(stdio.parent);
    const cleanups = [async () => cgroup?.destroy(), async () => lifecycle.startFailed()];
    for (const cleanup of cleanups) {
      try {
        await cleanup();
      } catch (cleanupError) {
        if (err instanceof TsrunError) err.cleanupError ??= cleanupError;
      }
    }
    throw err;
  } finally {
    if (stdio) closeAll(stdio.childEnds);
  }
  logger.debug({ id, name, pid: spawned.pid, mode: plan.mode, steps: plan.steps.length }, 'container started');
  lifecycle.started(spawned.pid);
  crashPoint('run:started');

  const streams: ContainerStdio = {
    stdin: stdio.parent[0] >= 0 ? pipeStream(stdio.parent[0], 'write') : null,
    stdout: stdio.parent[1] >= 0 ? pipeStream(stdio.parent[1], 'read') : null,
    stderr: stdio.parent[2] >= 0 ? pipeStream(stdio.parent[2], 'read') : null,
  };
  const onAbort = (): void => {
    container.kill('SIGKILL');
  };
  const containerCgroup = cgroup;
  const container = new Container(
    id,
    name,
    spec.hostname,
    spawned,
    streams,
    async (reaped) => {
      options.signal?.removeEventListener('abort', onAbort);
      // The cgroup goes before the record says exited: a record that says
      // so while its cgroup exists marks a leftover for `tsrun ps`.
      crashPoint('run:exited');
      const result = await cgroups.releaseContainerCgroup(containerCgroup, reaped, logger);
      await lifecycle.exited(result);
      return result;
    },
    logger,
  );
  options.signal?.addEventListener('abort', onAbort, { once: true });
  return container;
}
