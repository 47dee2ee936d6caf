import type { ContainerStats } from '../../runtime/container-resources';
import type { CliCommand, GlobalArgs } from '../command';
import { UsageError, commandExitCode, reportError } from '../fail';
import { binarySize, humanSize, table } from '../format';
import { RESOURCE_OPTIONS, ResourceArgs, nameTheFlag, resourceOptions } from '../resource-flags';

/** Loaded when a command runs, so that `tsrun run` never pays for it. */
const resources = (): Promise<typeof import('../../runtime/container-resources')> => import('../../runtime/container-resources');

function location(argv: GlobalArgs): { root: string; stateDir: string; logger: GlobalArgs['logger'] } {
  return { root: argv.root, stateDir: argv.state, logger: argv.logger };
}

const percent = (value: number): string => `${value.toFixed(2)}%`;

/** One row's cells as `docker stats` prints them. */
function statsCells(row: ContainerStats, noTrunc: boolean): { id: string; cpu: string; memory: string; memoryPercent: string; blockIO: string; pids: string } {
  return {
    id: noTrunc ? row.id : row.id.slice(0, 12),
    cpu: percent(row.cpuPercent),
    memory: `${binarySize(row.memoryUsage)} / ${binarySize(row.memoryLimit)}`,
    memoryPercent: percent(row.memoryPercent),
    blockIO: `${humanSize(row.blockRead)} / ${humanSize(row.blockWrite)}`,
    pids: String(row.pids),
  };
}

interface StatsArgs extends GlobalArgs {
  'no-stream': boolean;
  'no-trunc': boolean;
  format?: 'table' | 'json';
}

export const statsCommand: CliCommand<StatsArgs> = {
  name: 'stats',
  describe: "Display a live stream of containers' resource usage statistics",
  usage: '$0 stats [options] [CONTAINER...]',
  options: {
    'no-stream': { type: 'boolean', default: false, describe: 'print one sample and exit' },
    'no-trunc': { type: 'boolean', default: false, describe: 'do not truncate output' },
    format: { type: 'string', choices: ['table', 'json'], describe: 'output format' },
  },
  async execute(argv) {
    const references = argv._.map(String);
    const noTrunc = argv['no-trunc'];
    // Like docker stats: each round replaces the last on a terminal.
    const clear = !argv['no-stream'] && argv.format !== 'json' && process.stdout.isTTY === true;
    try {
      const { streamContainerStats } = await resources();
      for await (const rows of streamContainerStats(references, location(argv))) {
        let text: string;
        if (argv.format === 'json') {
          text = rows
            .map((row) => {
              const c = statsCells(row, noTrunc);
              return `${JSON.stringify({ BlockIO: c.blockIO, CPUPerc: c.cpu, Container: c.id, ID: c.id, MemPerc: c.memoryPercent, MemUsage: c.memory, Name: row.name, PIDs: c.pids })}\n`;
            })
            .join('');
        } else {
          const cells = rows.map((row) => statsCells(row, noTrunc)).map((c, i) => [c.id, rows[i].name, c.cpu, c.memory, c.memoryPercent, c.blockIO, c.pids]);
          text = table(['CONTAINER ID', 'NAME', 'CPU %', 'MEM USAGE / LIMIT', 'MEM %', 'BLOCK I/O', 'PIDS'], cells);
        }
        process.stdout.write(clear ? `\x1b[2J\x1b[H${text}` : text);
        if (argv['no-stream']) break;
      }
    } catch (err) {
      process.exitCode = reportError(err, argv.debug, commandExitCode(err));
    }
  },
};

type UpdateArgs = GlobalArgs & ResourceArgs;

export const updateCommand: CliCommand<UpdateArgs> = {
  name: 'update',
  describe: 'Update the resource limits of one or more running containers',
  usage: '$0 update [options] CONTAINER [CONTAINER...]',
  options: RESOURCE_OPTIONS,
  async execute(argv) {
    const references = argv._.map(String);
    if (references.length === 0) throw new UsageError('"tsrun update" requires at least one container');
    const limits = resourceOptions(argv);
    if (Object.keys(limits).length === 0) throw new UsageError(`"tsrun update" requires at least one limit (${Object.keys(RESOURCE_OPTIONS).map((flag) => `--${flag}`).join(', ')})`);
    const { updateContainer } = await resources();
    // Like docker update: each is tried, each failure reported, and the exit code says whether all went.
    for (const reference of references) {
      try {
        const { warnings } = updateContainer(reference, limits, location(argv));
        for (const warning of warnings) process.stderr.write(`WARNING: ${warning}\n`);
        process.stdout.write(`${reference}\n`);
      } catch (err) {
        process.exitCode = reportError(nameTheFlag(err), argv.debug, commandExitCode(err));
      }
    }
  },
};
