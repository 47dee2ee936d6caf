import type { CliCommand, GlobalArgs } from '../command';
import { UsageError, reportError } from '../fail';
import { humanSize, table } from '../format';
import { confirm } from '../prompt';

interface SystemPruneArgs extends GlobalArgs {
  all: boolean;
  force: boolean;
  volumes: boolean;
}

export const systemPruneCommand: CliCommand<SystemPruneArgs> = {
  name: 'system prune',
  describe: 'Remove stopped containers, dangling images, and what killed tsrun processes left behind',
  usage: '$0 system prune [-a] [-f] [--volumes]',
  options: {
    all: { alias: 'a', type: 'boolean', default: false, describe: 'remove every image no container uses, not only dangling ones (with --volumes: named volumes too)' },
    volumes: { type: 'boolean', default: false, describe: 'also remove volumes no container uses' },
    force: { alias: 'f', type: 'boolean', default: false, describe: 'do not prompt for confirmation' },
  },
  async execute(argv) {
    if (argv._.length > 0) throw new UsageError('"tsrun system prune" takes no arguments');
    const images = argv.all ? 'all images without at least one container associated to them' : 'all dangling images';
    const volumes = argv.volumes ? `  - all ${argv.all ? '' : 'anonymous '}volumes not used by at least one container\n` : '';
    const warning = `WARNING! This will remove:\n  - all stopped containers\n${volumes}  - ${images}\n  - what killed tsrun processes left (cgroups, mounts, network attachments, staging)\n\nAre you sure you want to continue? [y/N] `;
    if (!argv.force && !(await confirm(warning))) return;
    const { pruneSystem } = await import('../../runtime/system');
    const result = await pruneSystem({ root: argv.root, stateDir: argv.state, logger: argv.logger, all: argv.all, volumes: argv.volumes });
    const section = (title: string, lines: string[]): string => (lines.length > 0 ? `${title}:\n${lines.map((l) => `${l}\n`).join('')}\n` : '');
    process.stdout.write(
      section('Deleted Containers', result.containers) +
        section('Deleted cgroups', result.cgroups) +
        section('Detached from their networks', result.networks) +
        section('Deleted Volumes', result.volumes) +
        section('Deleted Images', result.images.map((id) => `deleted: ${id}`)) +
        `Total reclaimed space: ${humanSize(result.reclaimedBytes)}\n`,
    );
    for (const { what, error } of result.failed) process.exitCode = reportError(new Error(what, { cause: error }), argv.debug, 1);
  },
};

export const systemDfCommand: CliCommand = {
  name: 'system df',
  describe: 'Show the disk space images and containers use',
  usage: '$0 system df',
  options: {},
  async execute(argv) {
    if (argv._.length > 0) throw new UsageError('"tsrun system df" takes no arguments');
    const { diskUsage } = await import('../../runtime/system');
    const usage = await diskUsage({ root: argv.root, stateDir: argv.state, logger: argv.logger });
    const row = (type: string, u: { total: number; active: number; size: number; reclaimable: number }): string[] => [
      type,
      String(u.total),
      String(u.active),
      humanSize(u.size),
      `${humanSize(u.reclaimable)}${u.size > 0 ? ` (${Math.round((100 * u.reclaimable) / u.size)}%)` : ''}`,
    ];
    process.stdout.write(table(['TYPE', 'TOTAL', 'ACTIVE', 'SIZE', 'RECLAIMABLE'], [row('Images', usage.images), row('Containers', usage.containers), row('Local Volumes', usage.volumes)]));
  },
};

interface SystemCheckArgs extends GlobalArgs {
  content: boolean;
  repair: boolean;
}

export const systemCheckCommand: CliCommand<SystemCheckArgs> = {
  name: 'system check',
  describe: 'Check the image store: every reference resolves, every layer is whole, nothing is orphaned',
  usage: '$0 system check [--content] [--repair]',
  options: {
    content: { type: 'boolean', default: false, describe: 'also hash every blob and compare every layer\'s files with its blob (reads the whole store)' },
    repair: { type: 'boolean', default: false, describe: 'remove what is damaged or unused; images with a damaged part go (pull or load them again)' },
  },
  async execute(argv) {
    if (argv._.length > 0) throw new UsageError('"tsrun system check" takes no arguments');
    const { checkSystem } = await import('../../runtime/system');
    try {
      const { problems, checked } = await checkSystem({ root: argv.root, logger: argv.logger, content: argv.content, repair: argv.repair });
      for (const p of problems) process.stdout.write(`${p.kind} ${p.subject}: ${p.message}${p.repaired ? ' (repaired)' : ''}\n`);
      const left = problems.filter((p) => !p.repaired).length;
      const summary = `${checked.images} images, ${checked.layers} layers, ${checked.blobs} blobs, ${checked.containers} containers`;
      if (problems.length === 0) process.stdout.write(`store OK: ${summary}\n`);
      else process.stdout.write(`${problems.length} problem${problems.length === 1 ? '' : 's'} in ${summary}${argv.repair ? `; ${problems.length - left} repaired` : '; run with --repair to fix them'}\n`);
      if (left > 0) process.exitCode = 1;
    } catch (err) {
      process.exitCode = reportError(err, argv.debug, 1);
    }
  },
};
