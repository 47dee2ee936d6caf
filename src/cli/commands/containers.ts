import { NotFoundError } from '../../errors';
import type { ContainerSummary } from '../../runtime/containers';
import type { CliCommand, GlobalArgs } from '../command';
import { UsageError, commandExitCode, reportError } from '../fail';
import { humanDuration, table } from '../format';

/** Loaded when a command runs, so that `tsrun run` never pays for the image store's modules. */
const containers = (): Promise<typeof import('../../runtime/containers')> => import('../../runtime/containers');

function location(argv: GlobalArgs): { root: string; stateDir: string; logger: GlobalArgs['logger'] } {
  return { root: argv.root, stateDir: argv.state, logger: argv.logger };
}

/**
 * Cleans up after tsrun processes that were killed mid-run, on the way
 * (see removeLeftoverContainerCgroups); a failure there must not stop the listing.
 */
async function removeLeftovers(argv: GlobalArgs): Promise<void> {
  try {
    const { removeLeftoverContainerCgroups } = await import('../../runtime/container-resources');
    const { removed } = await removeLeftoverContainerCgroups(location(argv));
    for (const id of removed) argv.logger.info({ id }, 'removed the cgroup of a container whose tsrun died');
    const { removeLeftoverAttachments } = await import('../../network/attachments');
    const networks = await removeLeftoverAttachments(argv.root, argv.logger);
    for (const id of networks.removed) argv.logger.info({ id }, 'detached a container whose tsrun died from its network');
  } catch (err) {
    argv.logger.warn({ err }, 'looking for leftover cgroups failed');
  }
}

function statusText(c: ContainerSummary, now: number): string {
  if (c.status === 'running') return `Up ${humanDuration(now - Date.parse(c.startedAt ?? c.created))}`;
  if (c.status === 'created') return 'Created';
  return `Exited (${c.exitCode ?? -1}) ${humanDuration(now - Date.parse(c.finishedAt ?? c.created))} ago`;
}

function commandText(args: string[]): string {
  const text = JSON.stringify(args.join(' '));
  return text.length > 22 ? `${text.slice(0, 20)}…"` : text;
}

interface PsArgs extends GlobalArgs {
  all: boolean;
  quiet: boolean;
  'no-trunc': boolean;
  format?: string;
}

export const psCommand: CliCommand<PsArgs> = {
  name: 'ps',
  describe: 'List containers',
  usage: '$0 ps [options]',
  options: {
    all: { alias: 'a', type: 'boolean', default: false, describe: 'show all containers (default: running only)' },
    quiet: { alias: 'q', type: 'boolean', default: false, describe: 'only display container ids' },
    'no-trunc': { type: 'boolean', default: false, describe: 'do not truncate output' },
    format: { type: 'string', choices: ['table', 'json'], describe: 'output format' },
  },
  async execute(argv) {
    const { listContainers } = await containers();
    await removeLeftovers(argv);
    const list = listContainers(location(argv)).filter((c) => argv.all || c.status === 'running');
    const id = (c: ContainerSummary): string => (argv['no-trunc'] ? c.id : c.id.slice(0, 12));
    if (argv.quiet) {
      process.stdout.write(list.map((c) => `${id(c)}\n`).join(''));
    } else if (argv.format === 'json') {
      process.stdout.write(list.map((c) => `${JSON.stringify(c)}\n`).join(''));
    } else {
      const now = Date.now();
      const rows = list.map((c) => [
        id(c),
        c.image,
        argv['no-trunc'] ? JSON.stringify(c.command.join(' ')) : commandText(c.command),
        `${humanDuration(now - Date.parse(c.created))} ago`,
        statusText(c, now),
        c.name,
      ]);
      process.stdout.write(table(['CONTAINER ID', 'IMAGE', 'COMMAND', 'CREATED', 'STATUS', 'NAMES'], rows));
    }
  },
};

interface RmArgs extends GlobalArgs {
  force: boolean;
  volumes: boolean;
}

export const rmCommand: CliCommand<RmArgs> = {
  name: 'rm',
  describe: 'Remove one or more containers',
  usage: '$0 rm [options] CONTAINER [CONTAINER...]',
  options: {
    force: { alias: 'f', type: 'boolean', default: false, describe: 'kill a running container first' },
    volumes: { alias: 'v', type: 'boolean', default: false, describe: 'remove the anonymous volumes of the container' },
  },
  async execute(argv) {
    const references = argv._.map(String);
    if (references.length === 0) throw new UsageError('"tsrun rm" requires at least one container');
    const { removeContainer } = await containers();
    // Like docker rm: each is tried, each failure reported, and the exit code says whether all went.
    for (const reference of references) {
      try {
        await removeContainer(reference, { ...location(argv), force: argv.force, volumes: argv.volumes });
        process.stdout.write(`${reference}\n`);
      } catch (err) {
        process.exitCode = reportError(err, argv.debug, 1);
      }
    }
    // A removed container whose tsrun was killed still holds its network attachment.
    await removeLeftovers(argv);
  },
};

interface CommitArgs extends GlobalArgs {
  change: string[];
  message?: string;
  author?: string;
}

export const commitCommand: CliCommand<CommitArgs> = {
  name: 'commit',
  describe: "Create a new image from a container's changes",
  usage: '$0 commit [options] CONTAINER [REPOSITORY[:TAG]]',
  options: {
    change: { alias: 'c', type: 'string', array: true, default: [] as string[], requiresArg: true, describe: 'apply a Dockerfile instruction (CMD, ENTRYPOINT, ENV, WORKDIR, USER, EXPOSE, LABEL)' },
    message: { alias: 'm', type: 'string', requiresArg: true, describe: 'commit message' },
    author: { alias: 'a', type: 'string', requiresArg: true, describe: 'author' },
  },
  async execute(argv) {
    const [container, target, ...extra] = argv._.map(String);
    if (container === undefined || extra.length > 0) throw new UsageError('"tsrun commit" requires a container and at most one image name');
    const { commitContainer } = await containers();
    const image = await commitContainer(container, target, { ...location(argv), changes: argv.change, message: argv.message, author: argv.author });
    process.stdout.write(`${image.id}\n`);
  },
};

/** A container by that name or id, else an image (as `docker inspect`). */
async function inspectObject(reference: string, argv: GlobalArgs): Promise<unknown> {
  const { inspectContainer } = await containers();
  try {
    return inspectContainer(reference, location(argv));
  } catch (err) {
    if (!(err instanceof NotFoundError)) throw err;
  }
  const { Store } = await import('../../storage/store');
  try {
    return Store.open(argv.root, argv.logger).inspect(reference);
  } catch (err) {
    if (err instanceof NotFoundError) throw new NotFoundError('object', reference, `No such object: ${reference}`);
    throw err;
  }
}

export const inspectContainerCommand: CliCommand = {
  name: 'inspect',
  describe: 'Display detailed information on one or more containers (or images)',
  usage: '$0 inspect CONTAINER|IMAGE [CONTAINER|IMAGE...]',
  options: {},
  async execute(argv) {
    const references = argv._.map(String);
    if (references.length === 0) throw new UsageError('"tsrun inspect" requires at least one container');
    // As docker: the objects found are printed, each one not found is an error, and any error fails the command.
    const found: unknown[] = [];
    for (const reference of references) {
      try {
        found.push(await inspectObject(reference, argv));
      } catch (err) {
        process.exitCode = reportError(err, argv.debug, commandExitCode(err));
      }
    }
    process.stdout.write(`${JSON.stringify(found, null, 4)}\n`);
  },
};

export const diffCommand: CliCommand = {
  name: 'diff',
  describe: "Inspect changes to files on a container's filesystem",
  usage: '$0 diff CONTAINER',
  options: {},
  async execute(argv) {
    const [container, ...extra] = argv._.map(String);
    if (container === undefined || extra.length > 0) throw new UsageError('"tsrun diff" requires exactly one container');
    const { containerChanges } = await containers();
    process.stdout.write(containerChanges(container, location(argv)).map((c) => `${c.kind} ${c.path}\n`).join(''));
  },
};
