import type { Options } from 'yargs';
import { ValidationError } from '../errors';
import type { ResourceOptions } from '../linux/cgroups/resources';

/**
 * Docker's limit flags, shared by `run` and `update`. The values stay
 * strings: the library parses them ("512m", "1.5", "-1") and names the
 * flag in its errors.
 */
export const RESOURCE_OPTIONS = {
  memory: { alias: 'm', type: 'string', requiresArg: true, describe: 'memory limit (bytes, or with a unit: 512m, 1g)' },
  'memory-swap': { type: 'string', requiresArg: true, describe: 'memory plus swap limit; -1 for unlimited swap (default: twice --memory)' },
  'memory-reservation': { type: 'string', requiresArg: true, describe: 'memory soft limit' },
  cpus: { type: 'string', requiresArg: true, describe: 'number of CPUs (1.5: a quota of 150 ms per 100 ms)' },
  'cpu-period': { type: 'string', requiresArg: true, describe: 'CPU CFS period in microseconds' },
  'cpu-quota': { type: 'string', requiresArg: true, describe: 'CPU CFS quota in microseconds per period' },
  'cpu-shares': { alias: 'c', type: 'string', requiresArg: true, describe: 'CPU shares (relative weight, default 1024)' },
  'cpuset-cpus': { type: 'string', requiresArg: true, describe: 'CPUs the container may use (0-3, 0,1)' },
  'cpuset-mems': { type: 'string', requiresArg: true, describe: 'memory nodes the container may use (0-3, 0,1)' },
  'pids-limit': { type: 'string', requiresArg: true, describe: 'process limit; -1 for unlimited' },
  'blkio-weight': { type: 'string', requiresArg: true, describe: 'block I/O weight (10-1000), where the kernel has it' },
} satisfies Record<string, Options>;

type ResourceFlag = keyof typeof RESOURCE_OPTIONS;
export type ResourceArgs = { [flag in ResourceFlag]?: string };

/** The library's name of each flag's value (ResourceOptions). */
const OPTION_OF_FLAG: Record<ResourceFlag, keyof ResourceOptions> = {
  memory: 'memory',
  'memory-swap': 'memorySwap',
  'memory-reservation': 'memoryReservation',
  cpus: 'cpus',
  'cpu-period': 'cpuPeriod',
  'cpu-quota': 'cpuQuota',
  'cpu-shares': 'cpuShares',
  'cpuset-cpus': 'cpusetCpus',
  'cpuset-mems': 'cpusetMems',
  'pids-limit': 'pidsLimit',
  'blkio-weight': 'blkioWeight',
};

/** The limit flags given on the command line, as the library takes them. */
export function resourceOptions(argv: ResourceArgs): ResourceOptions {
  const options: ResourceOptions = {};
  for (const [flag, option] of Object.entries(OPTION_OF_FLAG) as [ResourceFlag, keyof ResourceOptions][]) {
    const value = argv[flag];
    if (value !== undefined) options[option] = value;
  }
  return options;
}

const FLAG_OF_OPTION = new Map<string, string>([
  ...Object.entries(OPTION_OF_FLAG).map(([flag, option]): [string, string] => [option, `--${flag}`]),
  ['cwd', '--workdir'],
  ['name', '--name'],
  ['hostname', '--hostname'],
]);

/** A ValidationError about an option names the flag the user typed (--cpuset-cpus, --env), not the library's option (cpusetCpus, env[2]). */
export function nameTheFlag(err: unknown): unknown {
  if (!(err instanceof ValidationError)) return err;
  const flag = /^env\[\d+\]$/.test(err.field) ? '--env' : FLAG_OF_OPTION.get(err.field);
  const prefix = `${err.field}: `;
  if (flag === undefined || !err.message.startsWith(prefix)) return err;
  return new ValidationError(flag, err.message.slice(prefix.length));
}
