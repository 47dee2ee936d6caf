import fs = require('node:fs');
import path = require('node:path');
import yargs from 'yargs/yargs';
import type { Argv } from 'yargs';
import { TsrunError, ValidationError } from '../../errors';
import type { Logger } from '../../logger';
import type { Spec } from '../../oci/runtime-spec';
import { PARSER_CONFIGURATION } from '../argv';
import { describeError } from '../fail';
import { table } from '../format';
import { createLogger } from '../logging';
import { isSteadyStateRun } from '../../util/one-time-work';
import { type NativeBinding, adoptNative } from '../../native';

/** tsrun-oci's version, and the runtime-spec versions it reads. */
const VERSION = '0.1.0';

/** Loaded when a command runs: `state` and `kill` should not pay for the spawn path. */
const runtime = (): Promise<typeof import('../../runtime/oci-runtime')> => import('../../runtime/oci-runtime');

interface Global {
  root: string;
  log?: string;
  'log-format': 'json' | 'text';
  debug: boolean;
  logger: Logger;
  _: (string | number)[];
}

/**
 * An error the way runc reports it: on stderr, and as a JSON (or text)
 * line in --log, where conmon and containerd's shim read it back.
 */
function reportError(argv: Partial<Global>, err: unknown): void {
  const msg = describeError(err);
  process.stderr.write(`tsrun-oci: ${msg}\n`);
  if (argv.debug && err instanceof Error && err.stack) process.stderr.write(`${err.stack}\n`);
  if (!argv.log) return;
  const time = new Date().toISOString();
  const line = argv['log-format'] === 'json' ? JSON.stringify({ level: 'error', msg, time }) : `time="${time}" level=error msg=${JSON.stringify(msg)}`;
  try {
    fs.appendFileSync(argv.log, `${line}\n`);
  } catch {
    // The log is the engine's; stderr already has the error.
  }
}

function one(argv: Global, what: string): string {
  const id = (argv as unknown as { ID?: string | number }).ID;
  if (id === undefined || id === '') throw new ValidationError('arguments', `"${what}" requires a container id`);
  return String(id);
}

function options(argv: Global): { root: string; logger: Logger } {
  return { root: argv.root, logger: argv.logger };
}

/** `exec`'s process: --process FILE (config.json's process), else the container's own with the command line's overrides. */
function execProcessFrom(argv: Global & ExecFlags, bundleProcess: Spec['process'] | undefined, args: string[]): Spec['process'] {
  if (argv.process) {
    const proc = JSON.parse(fs.readFileSync(argv.process, 'utf8')) as Spec['process'];
    if (!Array.isArray(proc.args) || proc.args.length === 0) throw new ValidationError('process.args', 'must be a non-empty list');
    proc.env ??= [];
    proc.cwd ??= '/';
    proc.user ??= { uid: 0, gid: 0 };
    return proc;
  }
  if (args.length === 0) throw new ValidationError('arguments', '"exec" requires a command (or --process)');
  const base = bundleProcess ?? { args, env: [], cwd: '/', user: { uid: 0, gid: 0 } };
  const [uid, gid] = (argv.user ?? '').split(':');
  return {
    ...base,
    args,
    env: [...base.env, ...argv.env],
    cwd: argv.cwd ?? base.cwd,
    user: argv.user ? { uid: Number(uid), gid: gid === undefined ? 0 : Number(gid), additionalGids: argv['additional-gids'].map(Number) } : base.user,
    terminal: argv.tty,
  };
}

interface ExecFlags {
  process?: string;
  tty: boolean;
  detach: boolean;
  'pid-file'?: string;
  cwd?: string;
  env: string[];
  user?: string;
  'additional-gids': string[];
}

async function writePidFile(file: string | undefined, pid: number): Promise<void> {
  if (!file) return;
  const { writeFileAtomic } = await import('../../util/atomic-file');
  writeFileAtomic(path.resolve(file), String(pid), { durable: false });
}

const CREATE_OPTIONS = {
  bundle: { alias: 'b', type: 'string', default: '.', describe: 'the bundle directory (config.json and the root filesystem)' },
  'pid-file': { type: 'string', requiresArg: true, describe: 'write the init\'s pid to this file' },
  'console-socket': { type: 'string', requiresArg: true, describe: 'unix socket to receive the pty master (process.terminal)' },
  'no-pivot': { type: 'boolean', default: false, describe: 'MS_MOVE + chroot instead of pivot_root' },
  'no-new-keyring': { type: 'boolean', default: false, describe: 'accepted: tsrun-oci makes no session keyring' },
  'preserve-fds': { type: 'number', default: 0, describe: 'extra fds after 2 to pass to the init' },
} as const;

function parser(args: string[]): Argv<Global> {
  const cli = yargs(args)
    .scriptName('tsrun-oci')
    .usage('$0 [global options] COMMAND [options] ID\n\nAn OCI runtime with runc\'s command line.')
    .options({
      root: { type: 'string', default: '/run/tsrun-oci', describe: 'state directory' },
      log: { type: 'string', requiresArg: true, describe: 'log file (errors and warnings)' },
      'log-format': { type: 'string', choices: ['json', 'text'], default: 'text' },
      debug: { type: 'boolean', default: false },
      'systemd-cgroup': { type: 'boolean', default: false, describe: 'accepted; cgroupfs is used' },
      rootless: { type: 'string', describe: 'accepted; tsrun-oci runs as root' },
      criu: { type: 'string', describe: 'accepted; checkpoints are not supported' },
    })
    .middleware((argv) => {
      // Without --log, stderr is the container's too (create hands it on): only errors go there.
      const level = argv.debug ? 'debug' : argv.log ? 'warn' : 'error';
      argv.logger = createLogger(level, argv['log-format'] as 'json' | 'text', argv.log as string | undefined);
    })
    .command('create ID', 'create a container from a bundle; it waits for "start"', CREATE_OPTIONS, async (argv) => {
      const { ociCreate } = await runtime();
      const g = argv as unknown as Global;
      await ociCreate(one(g, 'create'), { ...options(g), bundle: argv.bundle, pidFile: argv['pid-file'], noPivot: argv['no-pivot'], consoleSocket: argv['console-socket'] });
    })
    .command('start ID', 'start a created container', {}, async (argv) => {
      await (await runtime()).ociStart(one(argv as unknown as Global, 'start'), options(argv as unknown as Global));
    })
    .command('state ID', 'print the state of a container as JSON', {}, async (argv) => {
      const state = (await runtime()).ociState(one(argv as unknown as Global, 'state'), options(argv as unknown as Global));
      process.stdout.write(`${JSON.stringify(state, null, 2)}\n`);
    })
    .command('kill ID [SIGNAL]', 'send a signal (default SIGTERM) to the container\'s init', { all: { alias: 'a', type: 'boolean', default: false, describe: 'to every process of the container' } }, async (argv) => {
      const g = argv as unknown as Global;
      await (await runtime()).ociKill(one(g, 'kill'), argv.SIGNAL === undefined ? 'SIGTERM' : String(argv.SIGNAL), { ...options(g), all: argv.all });
    })
    .command('delete ID', 'delete a stopped container (--force: any)', { force: { alias: 'f', type: 'boolean', default: false, describe: 'kill the container first' } }, async (argv) => {
      await (await runtime()).ociDelete(one(argv as unknown as Global, 'delete'), { ...options(argv as unknown as Global), force: argv.force });
    })
    .command(
      'run ID',
      'create and start a container, and wait for it unless --detach',
      { ...CREATE_OPTIONS, detach: { alias: 'd', type: 'boolean', default: false }, keep: { type: 'boolean', default: false, describe: 'do not delete the container after it exits' } },
      async (argv) => {
        const g = argv as unknown as Global;
        const id = one(g, 'run');
        const { ociCreate, ociStart, ociDelete } = await runtime();
        const spawned = await ociCreate(id, { ...options(g), bundle: argv.bundle, pidFile: argv['pid-file'], noPivot: argv['no-pivot'], consoleSocket: argv['console-socket'] });
        const native = (await import('../../native')).loadNative();
        try {
          await ociStart(id, options(g));
        } catch (err) {
          await ociDelete(id, { ...options(g), force: true });
          throw err;
        }
        if (argv.detach) {
          fs.closeSync(spawned.pidfd);
          return;
        }
        const forward = (signal: NodeJS.Signals): void => {
          try {
            native.pidfdSendSignal(spawned.pidfd, (require('node:os') as typeof import('node:os')).constants.signals[signal]);
          } catch {
            // Gone already.
          }
        };
        const signals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2'];
        signals.forEach((s) => process.on(s, forward));
        const status = await new Promise<{ exitCode: number | null; signal: number | null }>((resolve) => {
          new native.ExitWatcher(spawned.pidfd, (s) => resolve('error' in s ? { exitCode: 255, signal: null } : s));
        });
        signals.forEach((s) => process.off(s, forward));
        fs.closeSync(spawned.pidfd);
        if (!argv.keep) await ociDelete(id, { ...options(g), force: true });
        process.exitCode = status.signal !== null ? 128 + status.signal : (status.exitCode ?? 0);
      },
    )
    .command(
      'exec ID [COMMAND...]',
      'run a process in a running container',
      {
        process: { alias: 'p', type: 'string', requiresArg: true, describe: 'process.json (config.json\'s process) to run' },
        tty: { alias: 't', type: 'boolean', default: false },
        'console-socket': { type: 'string', requiresArg: true },
        detach: { alias: 'd', type: 'boolean', default: false },
        'pid-file': { type: 'string', requiresArg: true },
        cwd: { type: 'string', requiresArg: true },
        env: { alias: 'e', type: 'string', array: true, default: [] as string[], requiresArg: true },
        user: { alias: 'u', type: 'string', requiresArg: true, describe: 'UID[:GID]' },
        'additional-gids': { alias: 'g', type: 'string', array: true, default: [] as string[], requiresArg: true },
        'no-new-privs': { type: 'boolean', default: false },
        'preserve-fds': { type: 'number', default: 0 },
        cap: { alias: 'c', type: 'string', array: true, default: [] as string[] },
        'process-label': { type: 'string' },
        apparmor: { type: 'string' },
        cgroup: { type: 'string' },
      },
      async (argv) => {
        const g = argv as unknown as Global & ExecFlags;
        const id = one(g, 'exec');
        const args = [...((argv.COMMAND as (string | number)[] | undefined) ?? []), ...((argv as { '--'?: string[] })['--'] ?? [])].map(String);
        const { ociExec, ociExecDetached, ociState } = await runtime();
        const { loadBundleConfig, checkCapabilities } = await import('../../oci/config');
        let bundleProcess: Spec['process'] | undefined;
        try {
          bundleProcess = loadBundleConfig(ociState(id, options(g)).bundle).process;
        } catch (err) {
          g.logger.debug({ err }, 'exec: the bundle\'s process is not readable; using defaults');
        }
        const proc = execProcessFrom(g, bundleProcess, args);
        checkCapabilities(proc.capabilities);
        if (argv['no-new-privs']) proc.noNewPrivileges = true;
        if (argv.detach) {
          await writePidFile(argv['pid-file'], ociExecDetached(id, proc, { ...options(g), consoleSocket: argv['console-socket'] }));
          return;
        }
        if (proc.terminal) throw new ValidationError('process.terminal', 'exec with a terminal needs --detach and --console-socket');
        const child = ociExec(id, proc, { ...options(g), stdio: 'inherit' });
        await writePidFile(argv['pid-file'], child.pid);
        process.exitCode = (await child.wait()).exitCode;
      },
    )
    .command('ps ID', 'list the processes of a container', { format: { alias: 'f', type: 'string', choices: ['table', 'json'], default: 'table' } }, async (argv) => {
      const pids = (await runtime()).ociPids(one(argv as unknown as Global, 'ps'), options(argv as unknown as Global));
      if (argv.format === 'json') {
        process.stdout.write(`${JSON.stringify(pids)}\n`);
        return;
      }
      const rows = pids.map((pid) => {
        let cmd = '';
        try {
          cmd = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean).join(' ');
        } catch {
          cmd = '';
        }
        return [String(pid), cmd];
      });
      process.stdout.write(table(['PID', 'CMD'], rows));
    })
    .command(
      'list',
      'list containers',
      { format: { alias: 'f', type: 'string', choices: ['table', 'json'], default: 'table' }, quiet: { alias: 'q', type: 'boolean', default: false } },
      async (argv) => {
        const list = (await runtime()).ociList(options(argv as unknown as Global));
        if (argv.quiet) process.stdout.write(list.map((c) => `${c.id}\n`).join(''));
        else if (argv.format === 'json') process.stdout.write(`${JSON.stringify(list)}\n`);
        else process.stdout.write(table(['ID', 'PID', 'STATUS', 'BUNDLE', 'CREATED'], list.map((c) => [c.id, String(c.pid ?? 0), c.status, c.bundle, c.created])));
      },
    )
    .command('pause ID', 'freeze every process of a container', {}, async (argv) => {
      await (await runtime()).ociPause(one(argv as unknown as Global, 'pause'), options(argv as unknown as Global));
    })
    .command('resume ID', 'thaw a paused container', {}, async (argv) => {
      (await runtime()).ociResume(one(argv as unknown as Global, 'resume'), options(argv as unknown as Global));
    })
    .command('features', 'print what this runtime supports, as JSON', {}, async () => {
      const { features } = await import('../../runtime/oci-features');
      process.stdout.write(`${JSON.stringify(features(), null, 2)}\n`);
    })
    .command('spec', 'write a config.json template', { bundle: { alias: 'b', type: 'string', default: '.' }, rootless: { type: 'boolean', default: false } }, async (argv) => {
      const { specTemplate } = await import('../../oci/config');
      const file = path.join(argv.bundle, 'config.json');
      if (fs.existsSync(file)) throw new TsrunError(`File ${file} exists. Remove it first`, 'EEXIST');
      fs.writeFileSync(file, `${JSON.stringify(specTemplate(), null, '\t')}\n`, { flag: 'wx' });
    })
    .demandCommand(1, 'tsrun-oci needs a command')
    .strict()
    .parserConfiguration({ ...PARSER_CONFIGURATION, 'populate--': true })
    .version(`tsrun-oci version ${VERSION}\nspec: 1.3.0`)
    .fail((msg, err) => {
      throw err ?? new ValidationError('arguments', msg);
    });
  return cli as unknown as Argv<Global>;
}

/** exec's options that take a value, for finding where its command starts. */
const EXEC_VALUE_OPTIONS = new Set(['--process', '-p', '--console-socket', '--pid-file', '--cwd', '--env', '-e', '--user', '-u', '--additional-gids', '-g', '--cap', '-c', '--process-label', '--apparmor', '--cgroup', '--preserve-fds']);
const GLOBAL_VALUE_OPTIONS = new Set(['--root', '--log', '--log-format', '--rootless', '--criu']);

/**
 * `exec ID sh -c x`: everything after the id is the command, whose own
 * flags (-c here) must not be read as exec's; a `--` goes after the id.
 */
export function separateExecCommand(args: string[]): string[] {
  let i = 0;
  while (i < args.length && args[i] !== 'exec') i += args[i].startsWith('-') && !args[i].includes('=') && GLOBAL_VALUE_OPTIONS.has(args[i]) ? 2 : 1;
  if (i >= args.length) return args;
  for (let j = i + 1; j < args.length; j++) {
    const arg = args[j];
    if (arg === '--') return args;
    if (arg.startsWith('-')) {
      if (!arg.includes('=') && EXEC_VALUE_OPTIONS.has(arg)) j++;
      continue;
    }
    return [...args.slice(0, j + 1), '--', ...args.slice(j + 1)];
  }
  return args;
}

/** Entry of bin/tsrun-oci: exits 1 with the error on stderr (and in --log), as runc does. Resolves as cli/main.ts's main. */
export async function main(argv: string[], native?: NativeBinding): Promise<boolean> {
  if (native) adoptNative(native);
  const args = separateExecCommand(argv.slice(2));
  try {
    await parser(args).parseAsync();
  } catch (err) {
    // The parse may be what failed: the global flags are read here again, by hand.
    const flag = (name: string): string | undefined => {
      const at = args.indexOf(name);
      if (at >= 0) return args[at + 1];
      return args.find((a) => a.startsWith(`${name}=`))?.slice(name.length + 1);
    };
    reportError({ log: flag('--log'), 'log-format': flag('--log-format') === 'json' ? 'json' : 'text', debug: args.includes('--debug') }, err);
    process.exitCode = 1;
  }
  return isSteadyStateRun();
}
