import type { CliCommand, GlobalArgs } from '../command';
import { UsageError, eachReported } from '../fail';
import { table } from '../format';

const manage = (): Promise<typeof import('../../network/manage')> => import('../../network/manage');

interface CreateArgs extends GlobalArgs {
  subnet?: string;
  driver: string;
}

export const networkCreateCommand: CliCommand<CreateArgs> = {
  name: 'network create',
  describe: 'Create a network (a CNI bridge network whose containers reach each other by name)',
  usage: '$0 network create [--subnet CIDR] NAME',
  options: {
    subnet: { type: 'string', requiresArg: true, describe: 'IPv4 subnet, e.g. 10.90.0.0/24 (default: the next free /24 of 10.89.0.0/16)' },
    driver: { alias: 'd', type: 'string', choices: ['bridge'], default: 'bridge', describe: 'network driver' },
  },
  async execute(argv) {
    const names = argv._.map(String);
    if (names.length !== 1) throw new UsageError('"tsrun network create" requires exactly one name');
    const network = await (await manage()).createNetwork(names[0], { root: argv.root, subnet: argv.subnet, logger: argv.logger });
    process.stdout.write(`${network.Id}\n`);
  },
};

interface LsArgs extends GlobalArgs {
  quiet: boolean;
}

export const networkLsCommand: CliCommand<LsArgs> = {
  name: 'network ls',
  describe: 'List networks',
  usage: '$0 network ls [-q]',
  options: { quiet: { alias: 'q', type: 'boolean', default: false, describe: 'only display network ids' } },
  async execute(argv) {
    const list = await (await manage()).listNetworks({ root: argv.root, logger: argv.logger });
    if (argv.quiet) process.stdout.write(list.map((n) => `${n.Id.slice(0, 12)}\n`).join(''));
    else process.stdout.write(table(['NETWORK ID', 'NAME', 'DRIVER', 'SUBNET'], list.map((n) => [n.Id.slice(0, 12), n.Name, n.Driver, n.IPAM.Config[0].Subnet])));
  },
};

export const networkInspectCommand: CliCommand = {
  name: 'network inspect',
  describe: 'Display detailed information on one or more networks',
  usage: '$0 network inspect NETWORK [NETWORK...]',
  options: {},
  async execute(argv) {
    const names = argv._.map(String);
    if (names.length === 0) throw new UsageError('"tsrun network inspect" requires at least one network');
    const { inspectNetwork } = await manage();
    const found = await eachReported(names, argv.debug, (name) => inspectNetwork(name, { root: argv.root, logger: argv.logger }));
    process.stdout.write(`${JSON.stringify(found, null, 4)}\n`);
  },
};

export const networkRmCommand: CliCommand = {
  name: 'network rm',
  describe: 'Remove one or more networks',
  usage: '$0 network rm NETWORK [NETWORK...]',
  options: {},
  async execute(argv) {
    const names = argv._.map(String);
    if (names.length === 0) throw new UsageError('"tsrun network rm" requires at least one network');
    const { removeNetwork } = await manage();
    await eachReported(names, argv.debug, async (name) => {
      await removeNetwork(name, { root: argv.root, logger: argv.logger });
      process.stdout.write(`${name}\n`);
    });
  },
};

export const networkCheckCommand: CliCommand = {
  name: 'network check',
  describe: "Run CNI CHECK on running containers' networks: each plugin verifies that what its ADD set up is still there",
  usage: '$0 network check CONTAINER [CONTAINER...]',
  options: {},
  async execute(argv) {
    const references = argv._.map(String);
    if (references.length === 0) throw new UsageError('"tsrun network check" requires at least one container');
    const { checkContainerNetwork } = await manage();
    await eachReported(references, argv.debug, async (reference) => {
      await checkContainerNetwork(reference, { root: argv.root, stateDir: argv.state, logger: argv.logger });
      process.stdout.write(`${reference}\n`);
    });
  },
};
