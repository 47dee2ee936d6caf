import type { Options } from 'yargs';
import type { Container } from '../../runtime/container';
import type { RunOptions } from '../../runtime/options';
import { parseUlimit } from '../../linux/rlimits';
import { create, parseRestartPolicy, run } from '../../runtime/run';
import { exitCodeForStartError } from '../../runtime/exit-codes';
import type { CliCommand, GlobalArgs } from '../command';
import { UsageError, reportError } from '../fail';
import type { PullPolicy } from './registry';
import type { VolumeMount } from '../../runtime/volumes';
import type { TerminalEnd } from '../../runtime/terminal';
import type { TerminalSize } from '../../linux/pty';
import { RESOURCE_OPTIONS, ResourceArgs, nameTheFlag, resourceOptions } from '../resource-flags';

interface RunArgs extends GlobalArgs, ResourceArgs {
  rootfs?: string;
  entrypoint?: string;
  rm: boolean;
  name?: string;
  hostname?: string;
  env: string[];
  workdir?: string;
  user?: string;
  network?: string;
  publish: string[];
  'publish-all': boolean;
  dns: string[];
  'dns-search': string[];
  'add-host': string[];
  pid?: 'host' | 'private';
  ipc?: 'host' | 'private';
  uts?: 'host' | 'private';
  cgroupns?: 'host' | 'private';
  'read-only': boolean;
  'no-pivot': boolean;
  pull: PullPolicy;
  platform?: string;
  'cap-add': string[];
  'cap-drop': string[];
  privileged: boolean;
  'security-opt': string[];
  ulimit: string[];
  device: string[];
  tmpfs: string[];
  'userns-remap'?: string;
  interactive: boolean;
  tty: boolean;
  volume: string[];
  mount: string[];
  detach: boolean;
  'detach-keys'?: string;
  init: boolean;
  restart: string;
}

/** The options of `run`, shared with the argv splitter (cli/argv.ts). */
export const RUN_OPTIONS = {
  rootfs: { type: 'string', describe: 'run on this root filesystem directory instead of an image', requiresArg: true },
  entrypoint: { type: 'string', describe: 'replace the image\'s ENTRYPOINT ("" clears it)' },
  rm: { type: 'boolean', default: false, describe: 'remove the container when it exits' },
  detach: { alias: 'd', type: 'boolean', default: false, describe: 'run in the background under a monitor and print the container id' },
  'detach-keys': { type: 'string', requiresArg: true, describe: 'with -it: the keys that detach, leaving the container running (default ctrl-p,ctrl-q)' },
  init: { type: 'boolean', default: false, describe: 'run an init inside the container that forwards signals and reaps processes' },
  restart: { type: 'string', default: 'no', requiresArg: true, describe: 'restart policy of a detached container: no, on-failure[:N], always, unless-stopped' },
  name: { type: 'string', requiresArg: true, describe: 'container name' },
  hostname: { alias: 'h', type: 'string', requiresArg: true, describe: 'container host name (default: short id)' },
  env: { alias: 'e', type: 'string', array: true, default: [] as string[], requiresArg: true, describe: 'set environment variables (KEY=VALUE)' },
  workdir: { alias: 'w', type: 'string', requiresArg: true, describe: 'working directory inside the container' },
  user: { alias: 'u', type: 'string', requiresArg: true, describe: 'name|uid[:group|gid]' },
  network: { alias: 'net', type: 'string', requiresArg: true, describe: 'bridge (default for images; $TSRUN_NETWORK), none (default with --rootfs), host, container:NAME or a network name' },
  publish: { alias: 'p', type: 'string', array: true, default: [] as string[], requiresArg: true, describe: "publish a container's port: [IP:]HOST:CONTAINER[/tcp|udp]" },
  'publish-all': { alias: 'P', type: 'boolean', default: false, describe: 'publish every EXPOSEd port on a free host port' },
  dns: { type: 'string', array: true, default: [] as string[], requiresArg: true, describe: 'nameserver for the container\'s resolv.conf' },
  'dns-search': { type: 'string', array: true, default: [] as string[], requiresArg: true, describe: 'search domain for the container\'s resolv.conf' },
  'add-host': { type: 'string', array: true, default: [] as string[], requiresArg: true, describe: 'add a line to /etc/hosts: HOST:IP' },
  pid: { type: 'string', choices: ['host', 'private'], describe: 'PID namespace to use' },
  ipc: { type: 'string', choices: ['host', 'private'], describe: 'IPC namespace to use' },
  uts: { type: 'string', choices: ['host', 'private'], describe: 'UTS namespace to use' },
  cgroupns: { type: 'string', choices: ['host', 'private'], describe: 'cgroup namespace to use' },
  'read-only': { type: 'boolean', default: false, describe: 'mount the root filesystem read-only' },
  'no-pivot': { type: 'boolean', default: false, describe: 'use MS_MOVE + chroot instead of pivot_root' },
  pull: { type: 'string', choices: ['missing', 'always', 'never'], default: 'missing', describe: 'pull the image before running it' },
  platform: { type: 'string', requiresArg: true, describe: 'os/arch[/variant] to pull from a multi-platform index (default: this host)' },
  'cap-add': { type: 'string', array: true, default: [] as string[], requiresArg: true, describe: 'add a capability to the default set (NET_ADMIN, ALL)' },
  'cap-drop': { type: 'string', array: true, default: [] as string[], requiresArg: true, describe: 'drop a capability from the default set (ALL)' },
  privileged: { type: 'boolean', default: false, describe: 'every capability, no seccomp, no masked paths, all host devices' },
  'security-opt': { type: 'string', array: true, default: [] as string[], requiresArg: true, describe: 'no-new-privileges[=true|false], seccomp=unconfined|PROFILE.json' },
  ulimit: { type: 'string', array: true, default: [] as string[], requiresArg: true, describe: 'resource limit NAME=SOFT[:HARD] (nofile=1024:2048, -1 for unlimited)' },
  device: { type: 'string', array: true, default: [] as string[], requiresArg: true, describe: 'add a host device HOST[:CONTAINER][:rwm]' },
  tmpfs: { type: 'string', array: true, default: [] as string[], requiresArg: true, describe: 'mount a tmpfs PATH[:OPTIONS] (size=64m,mode=1777)' },
  'userns-remap': { type: 'string', requiresArg: true, describe: 'user namespace from /etc/subuid, /etc/subgid: default (dockremap) or USER[:GROUP]' },
  interactive: { alias: 'i', type: 'boolean', default: false, describe: 'keep stdin open: the container reads tsrun\'s stdin (without it, /dev/null)' },
  tty: { alias: 't', type: 'boolean', default: false, describe: 'allocate a pseudo-terminal' },
  volume: { alias: 'v', type: 'string', array: true, default: [] as string[], requiresArg: true, describe: 'bind mount or volume: [SOURCE:]TARGET[:ro|rw][,shared|slave|private|rshared|rslave|rprivate]' },
  mount: { type: 'string', array: true, default: [] as string[], requiresArg: true, describe: 'type=bind|volume|tmpfs,source=...,target=...[,readonly]...' },
  ...RESOURCE_OPTIONS,
} satisfies Record<string, Options>;

/** `--tmpfs /run:size=64m` as a path -> options map, as Docker's API has it. */
function tmpfsOption(values: readonly string[]): Record<string, string> {
  const result: Record<string, string> = {};
  for (const value of values) {
    const colon = value.indexOf(':');
    result[colon < 0 ? value : value.slice(0, colon)] = colon < 0 ? '' : value.slice(colon + 1);
  }
  return result;
}

type SecurityOptions = Pick<RunOptions, 'noNewPrivileges' | 'seccomp'>;

/** `--security-opt` values as Docker takes them (`KEY=VALUE`, or the older `KEY:VALUE`). */
export function parseSecurityOpts(values: readonly string[]): SecurityOptions {
  const result: SecurityOptions = {};
  for (const raw of values) {
    const match = /^([a-z-]+)(?:[=:](.*))?$/.exec(raw);
    const [key, value] = match ? [match[1], match[2]] : [raw, undefined];
    if (key === 'no-new-privileges') {
      if (value !== undefined && value !== 'true' && value !== 'false') throw new UsageError(`--security-opt: invalid no-new-privileges value ${JSON.stringify(value)} (true or false)`);
      result.noNewPrivileges = value !== 'false';
    } else if (key === 'seccomp') {
      if (!value) throw new UsageError('--security-opt: seccomp needs a value: unconfined or the path of a profile (JSON)');
      result.seccomp = value;
    } else {
      throw new UsageError(`--security-opt: unknown option ${JSON.stringify(raw)} (no-new-privileges, seccomp)`);
    }
  }
  return result;
}

/** Signals a foreground container gets from `tsrun run`, as docker run --sig-proxy does. */
const FORWARDED: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2', 'SIGWINCH'];

/**
 * Forwards tsrun's signals to the container. It listens from before the
 * container starts: a signal that came while it was being created is held
 * and delivered once it runs, rather than killing tsrun (or, for SIGUSR1,
 * waking Node's inspector).
 */
class SignalProxy {
  private target: Pick<Container, 'kill'> | undefined;
  private readonly held: NodeJS.Signals[] = [];
  private readonly signals: NodeJS.Signals[];
  private readonly forward = (signal: NodeJS.Signals): void => {
    if (this.target) this.target.kill(signal);
    else this.held.push(signal);
  };

  /** With a terminal, window changes reach the container as a resize of its pty, which signals it itself. */
  constructor(tty: boolean) {
    this.signals = FORWARDED.filter((s) => !(tty && s === 'SIGWINCH'));
    this.signals.forEach((s) => process.on(s, this.forward));
  }

  attach(container: Pick<Container, 'kill'>): void {
    this.target = container;
    this.held.splice(0).forEach((s) => container.kill(s));
  }

  close(): void {
    this.signals.forEach((s) => process.off(s, this.forward));
  }
}

/** In Docker's order: -v, then --mount (--tmpfs is the `tmpfs` option). */
async function userVolumes(argv: RunArgs): Promise<VolumeMount[]> {
  // Loaded only when asked for, as the other modules a plain run does without.
  if (argv.volume.length === 0 && argv.mount.length === 0) return [];
  const { parseMountFlag, parseVolumeFlag } = await import('../../runtime/volumes');
  return [...argv.volume.map(parseVolumeFlag), ...argv.mount.map(parseMountFlag)];
}

// The terminal code (and node:stream under it) loads only for a container with a terminal.
async function hostTerminalSize(): Promise<TerminalSize | true> {
  return (await import('../../runtime/terminal')).hostTerminalSize(process.stdout) ?? true;
}

async function connectHostTerminal(terminal: TerminalEnd, options: { input: boolean; detachKeys?: Buffer; onDetach?: () => void }): Promise<() => void> {
  return (await import('../../runtime/terminal')).connectTerminal(terminal, { stdin: process.stdin, stdout: process.stdout }, options);
}

/** The image (none with --rootfs) and the command after it. */
function imageAndCommand(argv: RunArgs, command: string): { image: string | undefined; positionals: string[] } {
  const positionals = [...argv._, ...(argv['--'] ?? [])].map(String);
  const image = argv.rootfs === undefined ? positionals.shift() : undefined;
  if (argv.rootfs === undefined && image === undefined) throw new UsageError(`"tsrun ${command}" requires an image (or --rootfs DIR) and a command`);
  if (argv.rootfs !== undefined && positionals.length === 0) throw new UsageError(`"tsrun ${command}" requires a command to run`);
  return { image, positionals };
}

export const runCommand: CliCommand<RunArgs> = {
  name: 'run',
  describe: 'Run a command in a new container',
  usage: '$0 run [options] IMAGE [COMMAND [ARG...]]\n$0 run [options] --rootfs DIR COMMAND [ARG...]',
  options: RUN_OPTIONS,
  // The image; with --rootfs, this first positional is the command itself.
  containerCommandAfter: 1,
  async execute(argv) {
    const { image, positionals } = imageAndCommand(argv, 'run');
    if (argv.detach) {
      await createFromArgs(argv, image, positionals, true);
      return;
    }
    if (argv.restart !== 'no') throw new UsageError('--restart needs a detached container (-d): a foreground container ends with its tsrun');
    if (argv.tty && argv.interactive && !process.stdin.isTTY) throw new UsageError('the input device is not a TTY');
    if (argv.tty && argv.interactive) {
      const { DEFAULT_DETACH_KEYS, parseDetachKeys } = await import('../../runtime/detach-keys');
      await runAttached(argv, image, positionals, parseDetachKeys(argv['detach-keys'] ?? DEFAULT_DETACH_KEYS));
      return;
    }
    const proxy = new SignalProxy(argv.tty);
    let container;
    try {
      if (image !== undefined) await (await import('./registry')).pullForRun(argv, image, argv.pull, argv.platform);
      container = await run({
        ...(await runOptions(argv, image, positionals)),
        stdio: [argv.interactive ? 'inherit' : 'ignore', 'inherit', 'inherit'],
        tty: argv.tty ? await hostTerminalSize() : undefined,
      });
    } catch (err) {
      proxy.close();
      process.exitCode = reportError(nameTheFlag(err), argv.debug, exitCodeForStartError(err));
      return;
    }
    proxy.attach(container);
    const disconnect = container.terminal ? await connectHostTerminal(container.terminal, { input: argv.interactive }) : undefined;
    try {
      const { exitCode } = await container.wait();
      process.exitCode = exitCode;
    } finally {
      disconnect?.();
      proxy.close();
    }
  },
};

/**
 * `run -it`, as Docker's: the container runs under its monitor, which holds
 * its terminal; this tsrun attaches to it before it starts, so the detach
 * keys can leave it running (`tsrun attach` comes back to it). Otherwise
 * the container's exit ends tsrun with its code.
 */
async function runAttached(argv: RunArgs, image: string | undefined, positionals: string[], detachKeys: Buffer): Promise<void> {
  const proxy = new SignalProxy(true);
  const location = { root: argv.root, stateDir: argv.state, logger: argv.logger };
  const { attachContainer } = await import('../../runtime/attach');
  const { awaitContainerCleanup, killContainer, startContainer } = await import('../../runtime/detached');
  let attachment;
  let id: string | undefined;
  try {
    if (image !== undefined) await (await import('./registry')).pullForRun(argv, image, argv.pull, argv.platform);
    const created = await create({ ...(await runOptions(argv, image, positionals)), tty: await hostTerminalSize(), openStdin: true });
    const started = created.id;
    id = started;
    attachment = await attachContainer(started, { ...location, created: true });
    await startContainer(started, location);
    proxy.attach({
      kill: (signal) => {
        try {
          killContainer(started, signal, location);
          return true;
        } catch {
          // It has exited meanwhile: the attachment ends with it.
          return false;
        }
      },
    });
  } catch (err) {
    attachment?.detach();
    proxy.close();
    process.exitCode = reportError(nameTheFlag(err), argv.debug, exitCodeForStartError(err));
    return;
  }
  const session = attachment;
  const disconnect = await connectHostTerminal(session, { input: true, detachKeys, onDetach: () => session.detach() });
  try {
    const end = await session.wait();
    process.exitCode = end.detached ? 0 : end.exitCode;
    if (!end.detached) await awaitContainerCleanup(id as string, location);
  } finally {
    disconnect();
    proxy.close();
  }
}

async function runOptions(argv: RunArgs, image: string | undefined, positionals: string[]): Promise<RunOptions> {
  const volumes = await userVolumes(argv);
  const publish = argv.publish.length === 0 ? [] : argv.publish.map((await import('../../network/ports')).parsePublish);
  return {
    rootfs: argv.rootfs,
    image,
    root: argv.root,
    args: positionals,
    entrypoint: argv.entrypoint === undefined ? undefined : argv.entrypoint === '' ? [] : [argv.entrypoint],
    env: argv.env,
    cwd: argv.workdir,
    user: argv.user,
    hostname: argv.hostname,
    name: argv.name,
    network: argv.network ?? process.env.TSRUN_NETWORK ?? (argv.rootfs === undefined ? 'bridge' : 'none'),
    publish,
    publishAll: argv['publish-all'],
    dns: argv.dns,
    dnsSearch: argv['dns-search'],
    addHosts: argv['add-host'],
    pid: argv.pid,
    ipc: argv.ipc,
    uts: argv.uts,
    cgroupns: argv.cgroupns,
    volumes,
    readOnly: argv['read-only'],
    noPivot: argv['no-pivot'],
    capAdd: argv['cap-add'],
    capDrop: argv['cap-drop'],
    privileged: argv.privileged,
    ...parseSecurityOpts(argv['security-opt']),
    ulimits: argv.ulimit.map((u, i) => parseUlimit(`--ulimit[${i}]`, u)),
    devices: argv.device,
    tmpfs: tmpfsOption(argv.tmpfs),
    usernsRemap: argv['userns-remap'],
    init: argv.init,
    autoRemove: argv.rm,
    ...resourceOptions(argv),
    stateDir: argv.state,
    logger: argv.logger,
  };
}

/** `run -d` and `create`: the container's id on stdout once it is created (and, for run, started). */
async function createFromArgs(argv: RunArgs, image: string | undefined, positionals: string[], start: boolean): Promise<void> {
  let id: string | undefined;
  try {
    if (image !== undefined) await (await import('./registry')).pullForRun(argv, image, argv.pull, argv.platform);
    // -t: a terminal the monitor holds, of this terminal's size until an attach sets its own; -i: stdin open for attach.
    const io = { tty: argv.tty ? await hostTerminalSize() : undefined, openStdin: argv.interactive };
    ({ id } = await create({ ...(await runOptions(argv, image, positionals)), ...io, restart: parseRestartPolicy(argv.restart) }));
    if (start) await (await import('../../runtime/detached')).startContainer(id, { root: argv.root, stateDir: argv.state, logger: argv.logger });
    process.stdout.write(`${id}\n`);
  } catch (err) {
    process.exitCode = reportError(nameTheFlag(err), argv.debug, exitCodeForStartError(err));
  }
}

export const createCommand: CliCommand<RunArgs> = {
  name: 'create',
  describe: 'Create a new container, to start later with "tsrun start"',
  usage: '$0 create [options] IMAGE [COMMAND [ARG...]]\n$0 create [options] --rootfs DIR COMMAND [ARG...]',
  options: RUN_OPTIONS,
  containerCommandAfter: 1,
  async execute(argv) {
    const { image, positionals } = imageAndCommand(argv, 'create');
    await createFromArgs(argv, image, positionals, false);
  },
};
