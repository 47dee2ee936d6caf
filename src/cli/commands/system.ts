import type { CliCommand } from '../command';
import { reportError } from '../fail';

export const systemPruneCommand: CliCommand = {
  name: 'system prune',
  describe: 'Remove what killed tsrun processes left behind: the cgroups and network attachments (CNI DEL) of containers that no longer run',
  usage: '$0 system prune',
  options: {},
  async execute(argv) {
    const { removeLeftoverContainerCgroups } = await import('../../runtime/container-resources');
    const { removed, failed } = await removeLeftoverContainerCgroups({ root: argv.root, stateDir: argv.state, logger: argv.logger });
    if (removed.length > 0) process.stdout.write(`Deleted cgroups:\n${removed.map((id) => `${id}\n`).join('')}`);
    for (const { id, error } of failed) process.exitCode = reportError(new Error(`cgroup of container ${id}`, { cause: error }), argv.debug, 1);
    const { removeLeftoverAttachments } = await import('../../network/attachments');
    const networks = await removeLeftoverAttachments(argv.root, argv.logger);
    if (networks.removed.length > 0) process.stdout.write(`Detached from their networks:\n${networks.removed.map((id) => `${id}\n`).join('')}`);
    for (const { id, error } of networks.failed) process.exitCode = reportError(new Error(`network of container ${id}`, { cause: error }), argv.debug, 1);
  },
};
