import type { CliCommand, GlobalArgs } from '../command';
import { UsageError, eachReported } from '../fail';
import { humanSize, table } from '../format';
import { confirm } from '../prompt';

const volumes = (): Promise<typeof import('../../runtime/volumes')> => import('../../runtime/volumes');

interface CreateArgs extends GlobalArgs {
  label: string[];
}

function labels(list: string[]): Record<string, string> {
  return Object.fromEntries(list.map((l) => (l.includes('=') ? [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)] : [l, ''])));
}

export const volumeCreateCommand: CliCommand<CreateArgs> = {
  name: 'volume create',
  describe: 'Create a volume',
  usage: '$0 volume create [options] [VOLUME]',
  options: { label: { type: 'string', array: true, default: [] as string[], requiresArg: true, describe: 'set metadata on the volume (KEY=VALUE)' } },
  async execute(argv) {
    const names = argv._.map(String);
    if (names.length > 1) throw new UsageError('"tsrun volume create" takes at most one name');
    const { createVolume } = await volumes();
    const { randomHex } = await import('../../util/random');
    const record = await createVolume(names[0] ?? randomHex(32), { root: argv.root, labels: labels(argv.label) });
    process.stdout.write(`${record.Name}\n`);
  },
};

interface LsArgs extends GlobalArgs {
  quiet: boolean;
}

export const volumeLsCommand: CliCommand<LsArgs> = {
  name: 'volume ls',
  describe: 'List volumes',
  usage: '$0 volume ls [options]',
  options: { quiet: { alias: 'q', type: 'boolean', default: false, describe: 'only display volume names' } },
  async execute(argv) {
    const list = await (await volumes()).listVolumes({ root: argv.root });
    if (argv.quiet) process.stdout.write(list.map((v) => `${v.Name}\n`).join(''));
    else process.stdout.write(table(['DRIVER', 'VOLUME NAME'], list.map((v) => [v.Driver, v.Name])));
  },
};

export const volumeInspectCommand: CliCommand = {
  name: 'volume inspect',
  describe: 'Display detailed information on one or more volumes',
  usage: '$0 volume inspect VOLUME [VOLUME...]',
  options: {},
  async execute(argv) {
    const names = argv._.map(String);
    if (names.length === 0) throw new UsageError('"tsrun volume inspect" requires at least one volume');
    const { inspectVolume } = await volumes();
    const found = await eachReported(names, argv.debug, (name) => inspectVolume(name, { root: argv.root }));
    process.stdout.write(`${JSON.stringify(found, null, 4)}\n`);
  },
};

interface RmArgs extends GlobalArgs {
  force: boolean;
}

export const volumeRmCommand: CliCommand<RmArgs> = {
  name: 'volume rm',
  describe: 'Remove one or more volumes',
  usage: '$0 volume rm [options] VOLUME [VOLUME...]',
  options: { force: { alias: 'f', type: 'boolean', default: false, describe: 'remove even if a container uses it' } },
  async execute(argv) {
    const names = argv._.map(String);
    if (names.length === 0) throw new UsageError('"tsrun volume rm" requires at least one volume');
    const { removeVolume } = await volumes();
    await eachReported(names, argv.debug, async (name) => {
      await removeVolume(name, { root: argv.root, force: argv.force });
      process.stdout.write(`${name}\n`);
    });
  },
};

interface PruneArgs extends GlobalArgs {
  all: boolean;
  force: boolean;
}

export const volumePruneCommand: CliCommand<PruneArgs> = {
  name: 'volume prune',
  describe: 'Remove the volumes no container uses',
  usage: '$0 volume prune [-a] [-f]',
  options: {
    all: { alias: 'a', type: 'boolean', default: false, describe: 'named volumes too, not only anonymous ones' },
    force: { alias: 'f', type: 'boolean', default: false, describe: 'do not prompt for confirmation' },
  },
  async execute(argv) {
    if (argv._.length > 0) throw new UsageError('"tsrun volume prune" takes no arguments');
    const warning = `WARNING! This will remove ${argv.all ? 'all' : 'anonymous'} local volumes not used by at least one container.\nAre you sure you want to continue? [y/N] `;
    if (!argv.force && !(await confirm(warning))) return;
    const { pruneVolumes } = await volumes();
    const { removed, reclaimedBytes } = await pruneVolumes({ root: argv.root, all: argv.all });
    process.stdout.write(`${removed.length > 0 ? `Deleted Volumes:\n${removed.map((n) => `${n}\n`).join('')}\n` : ''}Total reclaimed space: ${humanSize(reclaimedBytes)}\n`);
  },
};
