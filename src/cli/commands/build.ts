import path = require('node:path');
import type { CliCommand, GlobalArgs } from '../command';
import { UsageError } from '../fail';
import { reporting } from './images';

interface BuildArgs extends GlobalArgs {
  tag: string[];
  file?: string;
  'build-arg': string[];
  target?: string;
  'no-cache': boolean;
  progress: 'auto' | 'plain' | 'tty';
  quiet: boolean;
  network: 'default' | 'host' | 'none';
  'insecure-registry': string[];
}

/** `KEY=VALUE`, or `KEY` alone for the value of the variable in tsrun's own environment (as docker build). */
function parseBuildArgs(values: string[]): Record<string, string> {
  const args: Record<string, string> = {};
  for (const value of values) {
    const eq = value.indexOf('=');
    if (eq === 0) throw new UsageError(`--build-arg ${JSON.stringify(value)}: the name is empty`);
    if (eq > 0) args[value.slice(0, eq)] = value.slice(eq + 1);
    else if (process.env[value] !== undefined) args[value] = process.env[value] as string;
  }
  return args;
}

async function readStdin(): Promise<string> {
  if (process.stdin.isTTY) throw new UsageError('-f -: the Dockerfile is read from stdin, but stdin is a terminal');
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

export const buildCommand: CliCommand<BuildArgs> = {
  name: 'build',
  describe: 'Build an image from a Dockerfile',
  usage: '$0 build [options] CONTEXT|-',
  options: {
    tag: { alias: 't', type: 'string', array: true, default: [] as string[], requiresArg: true, describe: 'name[:tag] for the image (repeatable)' },
    file: { alias: 'f', type: 'string', requiresArg: true, describe: 'the Dockerfile (default: CONTEXT/Dockerfile; - for stdin)' },
    'build-arg': { type: 'string', array: true, default: [] as string[], requiresArg: true, describe: 'KEY=VALUE for an ARG (repeatable)' },
    target: { type: 'string', requiresArg: true, describe: 'build up to this stage' },
    'no-cache': { type: 'boolean', default: false, describe: 'do not use the build cache' },
    progress: { type: 'string', choices: ['auto', 'plain', 'tty'], default: 'auto', describe: 'progress output: plain (lines), tty (redrawn in place), auto (tty on a terminal)' },
    quiet: { alias: 'q', type: 'boolean', default: false, describe: 'print only the image id' },
    'insecure-registry': { type: 'string', array: true, default: [] as string[], requiresArg: true, describe: 'registry (host[:port] or CIDR) to pull base images from over plain HTTP or unverified TLS' },
    network: { type: 'string', choices: ['default', 'host', 'none'], default: 'default', describe: "RUN steps' network (default: the host's; tsrun has no bridge network yet)" },
  },
  async execute(argv) {
    await reporting(argv, async () => {
      const [context, ...extra] = argv._.map(String);
      if (context === undefined || extra.length > 0) throw new UsageError('"tsrun build" requires exactly one argument: the build context directory (or - for an archive or a Dockerfile on stdin)');
      if (context === '-' && argv.file === '-') throw new UsageError('stdin can hold the context or the Dockerfile, not both');
      if (context === '-' && process.stdin.isTTY) throw new UsageError('the build context is read from stdin, but stdin is a terminal');
      const [{ build }, { buildRenderer }] = await Promise.all([import('../../build/builder'), import('../build-progress')]);
      const mode = argv.progress === 'auto' ? (process.stderr.isTTY ? 'tty' : 'plain') : argv.progress;
      const renderer = argv.quiet ? undefined : buildRenderer(mode, process.stderr);
      let failed = true;
      // Ctrl-C kills the running step and removes its container, rather than leaving it behind.
      const cancel = new AbortController();
      const onSignal = (): void => cancel.abort(new Error('interrupted'));
      process.once('SIGINT', onSignal).once('SIGTERM', onSignal);
      try {
        const result = await build({
          context: context === '-' ? process.stdin : context,
          // With the context on stdin, -f names a file in it.
          dockerfile: argv.file === undefined || argv.file === '-' ? undefined : context === '-' ? argv.file : path.resolve(argv.file),
          dockerfileText: argv.file === '-' ? await readStdin() : undefined,
          tags: argv.tag,
          buildArgs: parseBuildArgs(argv['build-arg']),
          target: argv.target,
          noCache: argv['no-cache'],
          network: argv.network === 'none' ? 'none' : 'host',
          root: argv.root,
          stateDir: argv.state,
          logger: argv.logger,
          onProgress: (event) => renderer?.update(event),
          signal: cancel.signal,
          registry: { configDir: argv.config, insecureRegistries: argv['insecure-registry'] },
        });
        failed = false;
        if (argv.quiet) process.stdout.write(`${result.image.id}\n`);
      } finally {
        process.off('SIGINT', onSignal).off('SIGTERM', onSignal);
        renderer?.finish(failed);
      }
    });
  },
};
