import yargs from 'yargs/yargs';
import { ValidationError } from '../../src/errors';
import { RESOURCE_OPTIONS, ResourceArgs, nameTheFlag, resourceOptions } from '../../src/cli/resource-flags';
import { resourcesFromOptions } from '../../src/linux/cgroups';

const HOST = { cpus: [0, 1, 2, 3], mems: [0] };

function parse(args: string[]): ResourceArgs {
  return yargs(args).options(RESOURCE_OPTIONS).parserConfiguration({ 'boolean-negation': false }).strictOptions().parseSync() as ResourceArgs;
}

describe('the limit flags of run and update', () => {
  test("Docker's names and short forms become the library's options, values untouched", () => {
    const argv = parse([
      '-m', '512m', '--memory-swap', '1g', '--memory-reservation', '256m', '--cpus', '1.5', '-c', '512',
      '--cpuset-cpus', '0-1', '--cpuset-mems', '0', '--pids-limit', '100', '--blkio-weight', '300',
    ]);
    expect(resourceOptions(argv)).toEqual({
      memory: '512m',
      memorySwap: '1g',
      memoryReservation: '256m',
      cpus: '1.5',
      cpuShares: '512',
      cpusetCpus: '0-1',
      cpusetMems: '0',
      pidsLimit: '100',
      blkioWeight: '300',
    });
    expect(resourceOptions(parse(['--cpu-period', '50000', '--cpu-quota', '25000']))).toEqual({ cpuPeriod: '50000', cpuQuota: '25000' });
    expect(resourceOptions(parse([]))).toEqual({});
  });

  test('-1 is a value, not a flag', () => {
    expect(resourceOptions(parse(['--memory-swap', '-1', '--cpu-quota', '-1', '--pids-limit', '-1']))).toEqual({ memorySwap: '-1', cpuQuota: '-1', pidsLimit: '-1' });
  });

  test("a ValidationError about a limit names the flag as typed; others pass through", () => {
    const error = (options: Parameters<typeof resourcesFromOptions>[0]): unknown => {
      try {
        resourcesFromOptions(options, { host: HOST });
      } catch (err) {
        return nameTheFlag(err);
      }
      throw new Error('no error');
    };
    expect(error({ memory: '1k' })).toMatchObject({ field: '--memory', message: '--memory: 1 KiB is below the minimum of 6 MiB a container needs' });
    expect(error({ cpusetCpus: '7' })).toMatchObject({ field: '--cpuset-cpus', message: '--cpuset-cpus: CPUs 7 are not available on this host (online: 0-3)' });
    expect(error({ memory: '16m', memorySwap: '8m' })).toMatchObject({ field: '--memory-swap' });
    expect(error({ pidsLimit: 'x' })).toBeInstanceOf(ValidationError);
    expect(nameTheFlag(new ValidationError('env[2]', '"=x" is not KEY=VALUE'))).toMatchObject({ field: '--env', message: '--env: "=x" is not KEY=VALUE' });
    expect(nameTheFlag(new ValidationError('cwd', '"x" must be an absolute path'))).toMatchObject({ field: '--workdir' });
    const other = new ValidationError('rootfs', 'bad');
    expect(nameTheFlag(other)).toBe(other);
    const plain = new Error('memory: not a validation error');
    expect(nameTheFlag(plain)).toBe(plain);
  });
});
