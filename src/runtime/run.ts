import * as fs from 'node:fs';
import * as path from 'node:path';
import { TsrunError, ValidationError } from '../errors';
import type { CgroupDriver } from '../linux/cgroups';
import { canPivotRoot } from '../linux/rootfs';
import { ownIdentity, processStartTime } from '../linux/proc';
import { loadNative } from '../native';
import { Logger, silentLogger } from '../logger';
import { ContainerPlan, PlanOptions, buildContainerPlan } from './container-plan';
import { Terminal } from './terminal';
import type { ContainerNetwork, NetworkFiles } from './container-network';
import { Container, ContainerStdio, ExitResult, pipeStream } from './container';
import { OCI_VERSION } from '../oci/defaults';
import type { LinuxResources, Mount, Spec } from '../oci/runtime-spec';
import { writeNetworkFiles } from '../storage/init-layer';
import { DEFAULT_STATE_DIR, RunOptions, StdioOption, buildSpec } from './options';
import { killAndReap, spawnContainer } from './spawn';
import type { ResolvedMounts } from './volumes';
import { withFileLock } from '../util/file-lock';
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
  /** The container's -v/--mount/--tmpfs mounts, kept in its record for inspect and for `volume rm`'s in-use check. */
  usesMounts?(mounts: ResolvedMounts): void;
  /** Makes the hosts and resolv.conf a network fills in (asked for only when the container has a network to fill them from). */
  networkFiles(): NetworkFiles;
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
    networkFiles() {
      const dir = store.containerDir(id);
      const files = { hosts: path.join(dir, 'hosts'), resolvConf: path.join(dir, 'resolv.conf') };
      writeNetworkFiles(files, options.network ?? 'none');
      const bind = (source: string, destination: string): Mount => ({ destination, type: 'bind', source, options: ['rbind', 'rw', 'rprivate'] });
      return { ...files, mounts: [bind(files.hosts, '/etc/hosts'), bind(files.resolvConf, '/etc/resolv.conf')] };
    },
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

function terminalOption(tty: RunOptions['tty'], consoleFd: number | undefined): PlanOptions['terminal'] {
  if (!tty || consoleFd === undefined) return undefined;
  return { consoleFd, size: typeof tty === 'object' ? tty : undefined };
}

/** Named volumes live in the image store, so only a run that has some takes its lock. */
async function resolveUserMounts(options: RunOptions, rootfs: string): Promise<ResolvedMounts> {
  const mounts = options.volumes ?? [];
  const { resolveMounts } = await import('./volumes');
  if (!mounts.some((m) => m.type === 'volume')) return resolveMounts(mounts, rootfs, '');
  const { storeLockFile, storeRoot } = await import('./image-container');
  const root = storeRoot(options);
  fs.mkdirSync(root, { recursive: true, mode: 0o700 });
  return withFileLock(storeLockFile(root), 'exclusive', () => resolveMounts(mounts, rootfs, root));
}

async function removeAnonymousVolumes(options: RunOptions, names: string[]): Promise<void> {
  if (names.length === 0) return;
  const { storeLockFile, storeRoot } = await import('./image-container');
  const { VolumeStore } = await import('../storage/volumes');
  const root = storeRoot(options);
  await withFileLock(storeLockFile(root), 'exclusive', () => names.forEach((name) => new VolumeStore(root).remove(name, [], true)));
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
  let userMounts: ResolvedMounts | undefined;
  // [runtime end, child end] of the socket the child sends its pty master on.
  const consoleSocket: number[] = [];
  let terminal: Terminal | undefined;
  let network: ContainerNetwork = {};
  try {
    userMounts = await resolveUserMounts(options, lifecycle.rootfs);
    lifecycle.usesMounts?.(userMounts);
    if ((options.network ?? 'none') !== 'none' || (options.publish ?? []).length > 0 || options.publishAll) {
      const { prepareContainerNetwork } = await import('./container-network');
      network = await prepareContainerNetwork(options, { id, name, hostname: options.hostname ?? id.slice(0, 12) }, () => lifecycle.networkFiles(), logger);
    }
    // The network's files first, so that a -v over /etc/hosts wins, as with Docker.
    spec = buildSpec({ ...options, ...lifecycle.process, rootfs: lifecycle.rootfs }, id, resources, [...(network.mounts ?? []), ...userMounts.mounts], network.joinPath);
    if (!pivot && !options.noPivot) logger.warn({ id, rootfs: spec.root.path }, 'pivot_root is impossible on a ramfs root; using MS_MOVE + chroot');
    stdio = setupStdio(options.tty ? 'inherit' : options.stdio);
    if (options.tty) consoleSocket.push(...loadNative().socketPair());
    cgroup = cgroups.createContainerCgroup(id, spec.linux.resources ?? {}, logger);
    crashPoint('run:cgroup');
    plan = buildContainerPlan(spec, {
      stdio: stdio.child,
      dieWithParent: options.dieWithParent ?? true,
      pivot,
      cgroupJoin: cgroup.joinSteps(),
      terminal: terminalOption(options.tty, consoleSocket[1]),
      networkSync: network.attachment !== undefined,
    });
    const attachment = network.attachment;
    spawned = spawnContainer(spec, plan, { network: attachment ? (pid) => attachment.attach(pid) : undefined });
    if (options.tty) {
      fs.closeSync(consoleSocket.pop() as number);
      terminal = Terminal.receive(consoleSocket[0]);
    }
  } catch (err) {
    // Started, but its terminal could not be received: it must not run on.
    if (spawned) killAndReap(spawned);
    if (stdio) closeAll(stdio.parent);
    const anonymous = userMounts?.anonymous ?? [];
    const cleanups = [async () => network.attachment?.detach(), async () => cgroup?.destroy(), async () => lifecycle.startFailed(), async () => removeAnonymousVolumes(options, anonymous)];
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
    closeAll(consoleSocket);
  }
  logger.debug({ id, name, pid: spawned.pid, mode: plan.mode, steps: plan.steps.length }, 'container started');
  lifecycle.started(spawned.pid);
  crashPoint('run:started');
  try {
    await network.attachment?.started(spawned.pid);
  } catch (err) {
    logger.warn({ id, err }, 'could not tell the network\'s other containers about this one');
  }

  const streams: ContainerStdio = terminal ? { stdin: terminal.stream, stdout: terminal.stream, stderr: null } : {
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
      try {
        await network.attachment?.detach();
      } catch (err) {
        logger.warn({ id, err }, 'CNI DEL failed; `tsrun system prune` retries it');
      }
      await lifecycle.exited(result);
      if (options.autoRemove) await removeAnonymousVolumes(options, userMounts?.anonymous ?? []);
      return result;
    },
    logger,
    terminal ?? null,
  );
  options.signal?.addEventListener('abort', onAbort, { once: true });
  return container;
}
