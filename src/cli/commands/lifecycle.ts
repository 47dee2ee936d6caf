import { NotFoundError, StateError } from '../../errors';
import type { Attachment } from '../../runtime/attach';
import type { CliCommand, GlobalArgs } from '../command';
import { UsageError, commandExitCode, reportError } from '../fail';

/** Loaded when a command runs, so that `tsrun run` never pays for these modules. */
const detached = (): Promise<typeof import('../../runtime/detached')> => import('../../runtime/detached');

function location(argv: GlobalArgs): { root: string; stateDir: string; logger: GlobalArgs['logger'] } {
  return { root: argv.root, stateDir: argv.state, logger: argv.logger };
}

function containersOf(argv: GlobalArgs, command: string): string[] {
  const references = argv._.map(String);
  if (references.length === 0) throw new UsageError(`"tsrun ${command}" requires at least one container`);
  return references;
}

/** Like docker: each container is tried, each failure reported, and the exit code says whether all went. */
async function eachContainer(argv: GlobalArgs, command: string, action: (reference: string) => Promise<void>): Promise<void> {
  for (const reference of containersOf(argv, command)) {
    try {
      await action(reference);
    } catch (err) {
      process.exitCode = reportError(err, argv.debug, commandExitCode(err));
    }
  }
}

interface StartArgs extends GlobalArgs {
  attach: boolean;
  interactive: boolean;
  'detach-keys'?: string;
}

export const startCommand: CliCommand<StartArgs> = {
  name: 'start',
  describe: 'Start one or more created containers',
  usage: '$0 start [options] CONTAINER [CONTAINER...]',
  options: {
    attach: { alias: 'a', type: 'boolean', default: false, describe: "attach stdout and stderr, and wait for the container's exit" },
    interactive: { alias: 'i', type: 'boolean', default: false, describe: "attach stdin (the container's, when it was created with -i)" },
    'detach-keys': { type: 'string', requiresArg: true, describe: 'with -a: the keys that detach, leaving the container running (default ctrl-p,ctrl-q)' },
  },
  async execute(argv) {
    const { startContainer } = await detached();
    if (argv.attach || argv.interactive) {
      const [reference, ...extra] = containersOf(argv, 'start');
      if (extra.length > 0) throw new UsageError('"tsrun start -a" attaches to one container at a time');
      const detachKeys = await detachKeysOf(argv);
      const { attachContainer } = await import('../../runtime/attach');
      let attachment: Attachment | undefined;
      try {
        // Attached before it starts: nothing it writes is missed.
        await startContainer(reference, { ...location(argv), beforeStart: async (id) => void (attachment = await attachContainer(id, { ...location(argv), created: true })) });
        // Running already: start was a no-op, attach is not.
        attachment ??= await attachContainer(reference, location(argv));
      } catch (err) {
        attachment?.detach();
        process.exitCode = reportError(err, argv.debug, commandExitCode(err));
        return;
      }
      const { followAttachment } = await import('../attach-session');
      process.exitCode = await followAttachment(attachment, { stdin: argv.interactive, detachKeys, sigProxy: true, kill: await signalsTo(reference, argv) });
      return;
    }
    await eachContainer(argv, 'start', async (reference) => {
      await startContainer(reference, location(argv));
      process.stdout.write(`${reference}\n`);
    });
  },
};

interface StopArgs extends GlobalArgs {
  time: number;
  signal?: string;
}

export const stopCommand: CliCommand<StopArgs> = {
  name: 'stop',
  describe: 'Stop one or more running containers: SIGTERM, then SIGKILL after a grace period',
  usage: '$0 stop [options] CONTAINER [CONTAINER...]',
  options: {
    time: { alias: 't', type: 'number', default: 10, requiresArg: true, describe: 'seconds to wait before killing the container' },
    signal: { alias: 's', type: 'string', requiresArg: true, describe: 'signal to send first (default SIGTERM)' },
  },
  async execute(argv) {
    const { stopContainer } = await detached();
    await eachContainer(argv, 'stop', async (reference) => {
      await stopContainer(reference, { ...location(argv), timeoutSeconds: argv.time, signal: argv.signal });
      process.stdout.write(`${reference}\n`);
    });
  },
};

export const restartCommand: CliCommand<StopArgs> = {
  name: 'restart',
  describe: 'Restart one or more detached containers',
  usage: '$0 restart [options] CONTAINER [CONTAINER...]',
  options: { time: { alias: 't', type: 'number', default: 10, requiresArg: true, describe: 'seconds to wait before killing the container' } },
  async execute(argv) {
    const { restartContainer } = await detached();
    await eachContainer(argv, 'restart', async (reference) => {
      await restartContainer(reference, { ...location(argv), timeoutSeconds: argv.time });
      process.stdout.write(`${reference}\n`);
    });
  },
};

interface KillArgs extends GlobalArgs {
  signal: string;
}

export const killCommand: CliCommand<KillArgs> = {
  name: 'kill',
  describe: 'Send a signal to the init of one or more running containers',
  usage: '$0 kill [options] CONTAINER [CONTAINER...]',
  options: { signal: { alias: 's', type: 'string', default: 'KILL', requiresArg: true, describe: 'signal to send (name or number)' } },
  async execute(argv) {
    const { killContainer } = await detached();
    await eachContainer(argv, 'kill', async (reference) => {
      killContainer(reference, argv.signal, location(argv));
      process.stdout.write(`${reference}\n`);
    });
  },
};

export const waitCommand: CliCommand = {
  name: 'wait',
  describe: 'Block until one or more containers stop, then print their exit codes',
  usage: '$0 wait CONTAINER [CONTAINER...]',
  options: {},
  async execute(argv) {
    const { waitContainer } = await detached();
    await eachContainer(argv, 'wait', async (reference) => {
      const { exitCode } = await waitContainer(reference, location(argv));
      process.stdout.write(`${exitCode}\n`);
    });
  },
};

interface LogsArgs extends GlobalArgs {
  follow: boolean;
  tail?: string;
  timestamps: boolean;
}

export const logsCommand: CliCommand<LogsArgs> = {
  name: 'logs',
  describe: 'Fetch the output of a detached container',
  usage: '$0 logs [options] CONTAINER',
  options: {
    follow: { alias: 'f', type: 'boolean', default: false, describe: 'follow the output until the container exits' },
    tail: { alias: 'n', type: 'string', requiresArg: true, describe: 'number of lines to show from the end ("all" for all)' },
    timestamps: { alias: 't', type: 'boolean', default: false, describe: 'show timestamps' },
  },
  async execute(argv) {
    const [reference, ...extra] = argv._.map(String);
    if (reference === undefined || extra.length > 0) throw new UsageError('"tsrun logs" requires exactly one container');
    if (argv.tail !== undefined && argv.tail !== 'all' && !/^\d+$/.test(argv.tail)) throw new UsageError(`--tail: ${JSON.stringify(argv.tail)} is not a number of lines`);
    const tail = argv.tail === undefined || argv.tail === 'all' ? undefined : Number(argv.tail);
    const { containerLogs } = await import('../../runtime/logs');
    const stop = new AbortController();
    process.once('SIGINT', () => stop.abort());
    for await (const entry of containerLogs(reference, { ...location(argv), tail, follow: argv.follow, signal: stop.signal })) {
      const text = argv.timestamps ? `${entry.time} ${entry.text}` : entry.text;
      const out = entry.stream === 'stderr' ? process.stderr : process.stdout;
      if (!out.write(text)) await new Promise((resolve) => out.once('drain', resolve));
    }
  },
};

/** What tsrun-monitor runs once a detached container has exited; not for people. */
export const containerCleanupCommand: CliCommand = {
  name: 'container-cleanup',
  describe: false,
  usage: '$0 container-cleanup CONTAINER',
  options: {},
  async execute(argv) {
    const [reference] = argv._.map(String);
    if (reference === undefined) throw new UsageError('"tsrun container-cleanup" requires a container');
    const { cleanupContainer } = await detached();
    try {
      await cleanupContainer(reference, location(argv));
    } catch (err) {
      // Removed meanwhile (`tsrun rm -f`): nothing is left to clean.
      if ((err as { code?: string }).code !== 'ENOENT') throw err;
    }
  },
};

interface ExecArgs extends GlobalArgs {
  env: string[];
  workdir?: string;
  user?: string;
  interactive: boolean;
  tty: boolean;
}

export const execCommand: CliCommand<ExecArgs> = {
  name: 'exec',
  describe: 'Run a command in a running container',
  usage: '$0 exec [options] CONTAINER COMMAND [ARG...]',
  options: {
    env: { alias: 'e', type: 'string', array: true, default: [] as string[], requiresArg: true, describe: 'set environment variables (KEY=VALUE)' },
    workdir: { alias: 'w', type: 'string', requiresArg: true, describe: 'working directory inside the container' },
    user: { alias: 'u', type: 'string', requiresArg: true, describe: 'name|uid[:group|gid]' },
    interactive: { alias: 'i', type: 'boolean', default: false, describe: 'keep stdin open (else the command reads /dev/null)' },
    tty: { alias: 't', type: 'boolean', default: false, describe: 'allocate a pseudo-terminal' },
  },
  containerCommandAfter: 1,
  async execute(argv) {
    const [reference, ...args] = [...argv._, ...(argv['--'] ?? [])].map(String);
    if (reference === undefined || args.length === 0) throw new UsageError('"tsrun exec" requires a container and a command');
    if (argv.tty && argv.interactive && !process.stdin.isTTY) throw new UsageError('the input device is not a TTY');
    const { execInContainer } = await import('../../runtime/exec');
    const { exitCodeForStartError } = await import('../../runtime/exit-codes');
    const { connectTerminal, hostTerminalSize } = await import('../../runtime/terminal');
    let process_;
    try {
      process_ = await execInContainer(reference, {
        ...location(argv),
        args,
        env: argv.env,
        cwd: argv.workdir,
        user: argv.user,
        stdio: [argv.interactive ? 'inherit' : 'ignore', 'inherit', 'inherit'],
        tty: argv.tty ? (hostTerminalSize(process.stdout) ?? true) : undefined,
      });
    } catch (err) {
      // As docker exec: 126/127 when the command cannot run, 1 for a container that is missing or not running.
      const code = err instanceof StateError || err instanceof NotFoundError ? 1 : exitCodeForStartError(err);
      process.exitCode = reportError(err, argv.debug, code);
      return;
    }
    const forward = (signal: NodeJS.Signals): void => {
      process_?.kill(signal);
    };
    const signals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
    signals.forEach((s) => process.on(s, forward));
    const disconnect = process_.terminal ? connectTerminal(process_.terminal, { stdin: process.stdin, stdout: process.stdout }, { input: argv.interactive }) : undefined;
    try {
      process.exitCode = (await process_.wait()).exitCode;
    } finally {
      disconnect?.();
      signals.forEach((s) => process.off(s, forward));
    }
  },
};

interface AttachArgs extends GlobalArgs {
  'detach-keys'?: string;
  'no-stdin': boolean;
  'sig-proxy': boolean;
}

export const attachCommand: CliCommand<AttachArgs> = {
  name: 'attach',
  describe: "Attach this terminal's input and output to a running detached container",
  usage: '$0 attach [options] CONTAINER',
  options: {
    'detach-keys': { type: 'string', requiresArg: true, describe: 'the keys that detach, leaving the container running (default ctrl-p,ctrl-q)' },
    'no-stdin': { type: 'boolean', default: false, describe: 'do not attach stdin' },
    'sig-proxy': { type: 'boolean', default: true, describe: 'pass signals to the container (without a terminal)' },
  },
  async execute(argv) {
    const [reference, ...extra] = argv._.map(String);
    if (reference === undefined || extra.length > 0) throw new UsageError('"tsrun attach" requires exactly one container');
    const detachKeys = await detachKeysOf(argv);
    const { attachContainer } = await import('../../runtime/attach');
    let attachment;
    try {
      attachment = await attachContainer(reference, location(argv));
    } catch (err) {
      process.exitCode = reportError(err, argv.debug, 1);
      return;
    }
    const { followAttachment } = await import('../attach-session');
    process.exitCode = await followAttachment(attachment, { stdin: !argv['no-stdin'], detachKeys, sigProxy: argv['sig-proxy'], kill: await signalsTo(reference, argv) });
  },
};

async function detachKeysOf(argv: { 'detach-keys'?: string }): Promise<Buffer> {
  const { DEFAULT_DETACH_KEYS, parseDetachKeys } = await import('../../runtime/detach-keys');
  return parseDetachKeys(argv['detach-keys'] ?? DEFAULT_DETACH_KEYS);
}

/** --sig-proxy's way to the container. */
async function signalsTo(reference: string, argv: GlobalArgs): Promise<(signal: NodeJS.Signals) => void> {
  const { killContainer } = await detached();
  return (signal) => {
    try {
      killContainer(reference, signal, location(argv));
    } catch {
      // It has exited meanwhile: the attachment ends with it.
    }
  };
}

export const topCommand: CliCommand = {
  name: 'top',
  describe: 'Display the running processes of a container',
  usage: '$0 top CONTAINER',
  options: {},
  async execute(argv) {
    const [reference, ...extra] = argv._.map(String);
    if (reference === undefined || extra.length > 0) throw new UsageError('"tsrun top" requires exactly one container');
    const { containerProcesses } = await import('../../runtime/exec');
    const { table } = await import('../format');
    const rows = containerProcesses(reference, location(argv)).map((p) => [String(p.uid), String(p.pid), String(p.ppid), p.command]);
    process.stdout.write(table(['UID', 'PID', 'PPID', 'CMD'], rows));
  },
};
