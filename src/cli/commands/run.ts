import type { Options } from 'yargs';
import type { Container } from '../../runtime/container';
import { create, parseRestartPolicy, run } from '../../runtime/run';
import type { RunOptions } from '../../runtime/options';
import { exitCodeForStartError } from '../../runtime/exit-codes';
import type { CliCommand, GlobalArgs } from '../command';
import { UsageError, reportError } from '../fail';
import type { PullPolicy } from './registry';
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
  network: 'none' | 'host';
  pid?: 'host' | 'private';
  ipc?: 'host' | 'private';
  uts?: 'host' | 'private';
  cgroupns?: 'host' | 'private';
  'read-only': boolean;
  'no-pivot': boolean;
  pull: PullPolicy;
  platform?: string;
  detach: boolean;
  init: boolean;
  restart: string;
}

/** The options of `run`, shared with the argv splitter (cli/argv.ts). */
export const RUN_OPTIONS = {
  rootfs: { type: 'string', describe: 'run on this root filesystem directory instead of an image', requiresArg: true },
  entrypoint: { type: 'string', describe: 'replace the image\'s ENTRYPOINT ("" clears it)' },
  rm: { type: 'boolean', default: false, describe: 'remove the container when it exits' },
  detach: { alias: 'd', type: 'boolean', default: false, describe: 'run in the background under a monitor and print the container id' },
  init: { type: 'boolean', default: false, describe: 'run an init inside the container that forwards signals and reaps processes' },
  restart: { type: 'string', default: 'no', requiresArg: true, describe: 'restart policy of a detached container: no, on-failure[:N], always, unless-stopped' },
  name: { type: 'string', requiresArg: true, describe: 'container name' },
  hostname: { alias: 'h', type: 'string', requiresArg: true, describe: 'container host name (default: short id)' },
  env: { alias: 'e', type: 'string', array: true, default: [] as string[], requiresArg: true, describe: 'set environment variables (KEY=VALUE)' },
  workdir: { alias: 'w', type: 'string', requiresArg: true, describe: 'working directory inside the container' },
  user: { alias: 'u', type: 'string', requiresArg: true, describe: 'name|uid[:group|gid]' },
  network: { alias: 'net', type: 'string', choices: ['none', 'host'], default: 'none', describe: 'network mode' },
  pid: { type: 'string', choices: ['host', 'private'], describe: 'PID namespace to use' },
  ipc: { type: 'string', choices: ['host', 'private'], describe: 'IPC namespace to use' },
  uts: { type: 'string', choices: ['host', 'private'], describe: 'UTS namespace to use' },
  cgroupns: { type: 'string', choices: ['host', 'private'], describe: 'cgroup namespace to use' },
  'read-only': { type: 'boolean', default: false, describe: 'mount the root filesystem read-only' },
  'no-pivot': { type: 'boolean', default: false, describe: 'use MS_MOVE + chroot instead of pivot_root' },
  pull: { type: 'string', choices: ['missing', 'always', 'never'], default: 'missing', describe: 'pull the image before running it' },
  platform: { type: 'string', requiresArg: true, describe: 'os/arch[/variant] to pull from a multi-platform index (default: this host)' },
  ...RESOURCE_OPTIONS,
} satisfies Record<string, Options>;

/** Signals a foreground container gets from `tsrun run`, as docker run --sig-proxy does. */
const FORWARDED: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2', 'SIGWINCH'];

/**
 * Forwards tsrun's signals to the container. It listens from before the
 * container starts: a signal that came while it was being created is held
 * and delivered once it runs, rather than killing tsrun (or, for SIGUSR1,
 * waking Node's inspector).
 */
class SignalProxy {
  private target: Container | undefined;
  private readonly held: NodeJS.Signals[] = [];
  private readonly forward = (signal: NodeJS.Signals): void => {
    if (this.target) this.target.kill(signal);
    else this.held.push(signal);
  };

  constructor() {
    FORWARDED.forEach((s) => process.on(s, this.forward));
  }

  attach(container: Container): void {
    this.target = container;
    this.held.splice(0).forEach((s) => container.kill(s));
  }

  close(): void {
    FORWARDED.forEach((s) => process.off(s, this.forward));
  }
}

export const runCommand: CliCommand<RunArgs> = {
  name: 'run',
  describe: 'Run a command in a new container',
  usage: '$0 run [options] IMAGE [COMMAND [ARG...]]\n$0 run [options] --rootfs DIR COMMAND [ARG...]',
  options: RUN_OPTIONS,
  // The image; with --rootfs, this first positional is the command itself.
  containerCommandAfter: 1,
  async execute(argv) {
    const positionals = [...argv._, ...(argv['--'] ?? [])].map(String);
    const image = argv.rootfs === undefined ? positionals.shift() : undefined;
    if (argv.rootfs === undefined && image === undefined) throw new UsageError('"tsrun run" requires an image (or --rootfs DIR) and a command');
    if (argv.rootfs !== undefined && positionals.length === 0) throw new UsageError('"tsrun run" requires a command to run');
    if (argv.detach) {
      await createFromArgs(argv, image, positionals, true);
      return;
    }
    if (argv.restart !== 'no') throw new UsageError('--restart needs a detached container (-d): a foreground container ends with its tsrun');
    const proxy = new SignalProxy();
    let container;
    try {
      if (image !== undefined) await (await import('./registry')).pullForRun(argv, image, argv.pull, argv.platform);
      container = await run({
        ...runOptions(argv, image, positionals),
        stdio: 'inherit',
      });
    } catch (err) {
      proxy.close();
      process.exitCode = reportError(nameTheFlag(err), argv.debug, exitCodeForStartError(err));
      return;
    }
    proxy.attach(container);
    try {
      const { exitCode } = await container.wait();
      process.exitCode = exitCode;
    } finally {
      proxy.close();
    }
  },
};

function runOptions(argv: RunArgs, image: string | undefined, positionals: string[]): RunOptions {
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
    network: argv.network,
    pid: argv.pid,
    ipc: argv.ipc,
    uts: argv.uts,
    cgroupns: argv.cgroupns,
    readOnly: argv['read-only'],
    noPivot: argv['no-pivot'],
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
    ({ id } = await create({ ...runOptions(argv, image, positionals), restart: parseRestartPolicy(argv.restart) }));
    if (start) await (await import('../../runtime/detached')).startContainer(id, { root: argv.root, stateDir: argv.state, logger: argv.logger });
    process.stdout.write(`${id}\n`);
  } catch (err) {
    process.exitCode = reportError(nameTheFlag(err), argv.debug, exitCodeForStartError(err));
  }
}

export const createCommand: CliCommand<RunArgs> = {
  name: 'create',
  aliases: ['container create'],
  describe: 'Create a new container, to start later with "tsrun start"',
  usage: '$0 create [options] IMAGE [COMMAND [ARG...]]\n$0 create [options] --rootfs DIR COMMAND [ARG...]',
  options: RUN_OPTIONS,
  containerCommandAfter: 1,
  async execute(argv) {
    const positionals = [...argv._, ...(argv['--'] ?? [])].map(String);
    const image = argv.rootfs === undefined ? positionals.shift() : undefined;
    if (argv.rootfs === undefined && image === undefined) throw new UsageError('"tsrun create" requires an image (or --rootfs DIR) and a command');
    if (argv.rootfs !== undefined && positionals.length === 0) throw new UsageError('"tsrun create" requires a command to run');
    await createFromArgs(argv, image, positionals, false);
  },
};
