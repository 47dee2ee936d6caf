import { ValidationError } from '../../errors';
import { SUPPORTED_INSTRUCTIONS } from '../../oci/image-changes';
import type { Store } from '../../storage/store';
import type { CliCommand, GlobalArgs } from '../command';
import { confirm } from '../prompt';
import { UsageError, reportError } from '../fail';
import { humanDuration, humanSize, table } from '../format';

/** Loaded when a command runs, so that `tsrun run` never pays for the image store's modules. */
export async function openStore(argv: GlobalArgs): Promise<Store> {
  const { Store } = await import('../../storage/store');
  return Store.open(argv.root, argv.logger);
}

/**
 * Docker's exit codes: 125 when the command line itself is wrong (usage,
 * an invalid reference), 1 when the store refuses (no such image, a
 * conflict, bad content).
 */
function exitCodeFor(err: unknown): number {
  return err instanceof ValidationError ? 125 : 1;
}

/**
 * Runs a command's body, reporting a failure on one line with the exit
 * code above. Usage errors go on to the dispatcher, which adds the
 * pointer to --help.
 */
export async function reporting(argv: GlobalArgs, body: () => Promise<void>): Promise<void> {
  try {
    await body();
  } catch (err) {
    if (err instanceof UsageError) throw err;
    process.exitCode = reportError(err, argv.debug, exitCodeFor(err));
  }
}

function shortId(id: string): string {
  return id.replace(/^sha256:/, '').slice(0, 12);
}

interface ImportArgs extends GlobalArgs {
  /** A string, or an array when -c is repeated (see the option's comment). */
  change: string[];
  message?: string;
}

export const importCommand: CliCommand<ImportArgs> = {
  name: 'image import',
  describe: 'Import a root filesystem tarball as an image',
  usage: '$0 image import [options] FILE|- REPOSITORY[:TAG]',
  options: {
    change: { alias: 'c', type: 'string', array: true, default: [] as string[], requiresArg: true, describe: `apply a Dockerfile instruction (${SUPPORTED_INSTRUCTIONS.join(', ')})` },
    message: { alias: 'm', type: 'string', requiresArg: true, describe: 'commit message for the imported image' },
  },
  async execute(argv) {
    await reporting(argv, async () => {
      const [file, reference, ...extra] = argv._.map(String);
      if (file === undefined || reference === undefined || extra.length > 0) throw new UsageError('"tsrun image import" requires a file (or - for stdin) and an image name');
      const store = await openStore(argv);
      const image = await store.importRootfs(file === '-' ? process.stdin : file, reference, { changes: argv.change, message: argv.message });
      process.stdout.write(`${image.id}\n`);
    });
  },
};

interface LoadArgs extends GlobalArgs {
  input?: string;
  quiet: boolean;
}

export const loadCommand: CliCommand<LoadArgs> = {
  name: 'load',
  describe: 'Load images from a docker save or OCI archive (or an OCI layout directory)',
  usage: '$0 load [options]',
  options: {
    input: { alias: 'i', type: 'string', requiresArg: true, describe: 'read from this archive file or OCI layout directory instead of stdin' },
    quiet: { alias: 'q', type: 'boolean', default: false, describe: 'accepted for docker compatibility (there is no progress output)' },
  },
  async execute(argv) {
    await reporting(argv, async () => {
      if (argv._.length > 0) throw new UsageError('"tsrun load" takes no arguments (use -i FILE)');
      if (argv.input === undefined && process.stdin.isTTY) throw new UsageError('requested load from stdin, but stdin is a terminal: use -i FILE or redirect');
      const store = await openStore(argv);
      const images = await store.load(argv.input ?? process.stdin);
      for (const image of images) {
        const lines = image.repoTags.length > 0 ? image.repoTags.map((t) => `Loaded image: ${t}`) : [`Loaded image ID: ${image.id}`];
        process.stdout.write(lines.map((l) => `${l}\n`).join(''));
      }
    });
  },
};

interface SaveArgs extends GlobalArgs {
  output?: string;
}

export const saveCommand: CliCommand<SaveArgs> = {
  name: 'save',
  describe: 'Save images to an OCI archive that docker load and podman load also read',
  usage: '$0 save [options] IMAGE [IMAGE...]',
  options: { output: { alias: 'o', type: 'string', requiresArg: true, describe: 'write to this file instead of stdout' } },
  async execute(argv) {
    await reporting(argv, async () => {
      const references = argv._.map(String);
      if (references.length === 0) throw new UsageError('"tsrun save" requires at least one image');
      if (argv.output === undefined && process.stdout.isTTY) throw new UsageError('cowardly refusing to save to a terminal: use the -o flag or redirect');
      const store = await openStore(argv);
      await store.save(references, argv.output ?? process.stdout);
    });
  },
};

interface ImagesArgs extends GlobalArgs {
  quiet: boolean;
  format?: 'table' | 'json';
  'no-trunc': boolean;
  all: boolean;
}

export const imagesCommand: CliCommand<ImagesArgs> = {
  name: 'images',
  describe: 'List images',
  usage: '$0 images [options] [REPOSITORY[:TAG]]',
  options: {
    quiet: { alias: 'q', type: 'boolean', default: false, describe: 'only show image ids' },
    format: { type: 'string', choices: ['table', 'json'], describe: 'output format' },
    'no-trunc': { type: 'boolean', default: false, describe: 'do not truncate output' },
    all: { alias: 'a', type: 'boolean', default: false, describe: 'show intermediate images (build steps) too' },
  },
  async execute(argv) {
    await reporting(argv, async () => {
      const [filter, ...extra] = argv._.map(String);
      if (extra.length > 0) throw new UsageError('"tsrun images" takes at most one REPOSITORY[:TAG]');
      const store = await openStore(argv);
      const { parseImageReference } = await import('../../storage/references');
      const wanted = filter === undefined ? undefined : parseImageReference(filter);
      if (wanted !== undefined && wanted.kind !== 'tag') throw new UsageError('"tsrun images" filters by REPOSITORY[:TAG]');
      const explicitTag = filter !== undefined && /:[^/]*$/.test(filter);
      // One row per tag, as docker: an image with two tags is listed twice, an untagged one as <none>.
      const rows = store.images({ all: argv.all }).flatMap((image) =>
        (image.repoTags.length > 0 ? image.repoTags : ['<none>:<none>'])
          .map((tag) => ({ image, repository: tag.slice(0, tag.lastIndexOf(':')), tag: tag.slice(tag.lastIndexOf(':') + 1) }))
          .filter((row) => wanted === undefined || (row.repository === wanted.name && (!explicitTag || row.tag === wanted.tag))),
      );
      const id = (imageId: string): string => (argv['no-trunc'] ? imageId : shortId(imageId));
      const now = Date.now();
      if (argv.quiet) {
        process.stdout.write([...new Set(rows.map((r) => id(r.image.id)))].map((i) => `${i}\n`).join(''));
      } else if (argv.format === 'json') {
        const line = (r: (typeof rows)[number]): string =>
          JSON.stringify({
            ID: id(r.image.id),
            Repository: r.repository,
            Tag: r.tag,
            CreatedAt: r.image.created,
            CreatedSince: `${humanDuration(now - Date.parse(r.image.created))} ago`,
            Size: humanSize(r.image.size),
          });
        process.stdout.write(rows.map((r) => `${line(r)}\n`).join(''));
      } else {
        const cells = rows.map((r) => [r.repository, r.tag, id(r.image.id), `${humanDuration(now - Date.parse(r.image.created))} ago`, humanSize(r.image.size)]);
        process.stdout.write(table(['REPOSITORY', 'TAG', 'IMAGE ID', 'CREATED', 'SIZE'], cells));
      }
    });
  },
};

export const inspectCommand: CliCommand = {
  name: 'image inspect',
  describe: 'Display detailed information on one or more images',
  usage: '$0 image inspect IMAGE [IMAGE...]',
  options: {},
  async execute(argv) {
    await reporting(argv, async () => {
      const references = argv._.map(String);
      if (references.length === 0) throw new UsageError('"tsrun image inspect" requires at least one image');
      const store = await openStore(argv);
      // As docker: the images found are printed, each one not found is an error, and any error fails the command.
      const found: unknown[] = [];
      for (const reference of references) {
        try {
          found.push(store.inspect(reference));
        } catch (err) {
          process.exitCode = reportError(err, argv.debug, exitCodeFor(err));
        }
      }
      process.stdout.write(`${JSON.stringify(found, null, 4)}\n`);
    });
  },
};

export const tagCommand: CliCommand = {
  name: 'tag',
  describe: 'Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE',
  usage: '$0 tag SOURCE_IMAGE[:TAG] TARGET_IMAGE[:TAG]',
  options: {},
  async execute(argv) {
    await reporting(argv, async () => {
      const [source, target, ...extra] = argv._.map(String);
      if (source === undefined || target === undefined || extra.length > 0) throw new UsageError('"tsrun tag" requires exactly 2 arguments: SOURCE TARGET');
      await (await openStore(argv)).tag(source, target);
    });
  },
};

interface RmiArgs extends GlobalArgs {
  force: boolean;
}

export const rmiCommand: CliCommand<RmiArgs> = {
  name: 'rmi',
  describe: 'Remove one or more images',
  usage: '$0 rmi [options] IMAGE [IMAGE...]',
  options: { force: { alias: 'f', type: 'boolean', default: false, describe: 'remove the image even when containers use it or it has several tags' } },
  async execute(argv) {
    await reporting(argv, async () => {
      const references = argv._.map(String);
      if (references.length === 0) throw new UsageError('"tsrun rmi" requires at least one image');
      const store = await openStore(argv);
      // Like docker rmi: each is tried, each failure reported, and the exit code says whether all went.
      for (const reference of references) {
        try {
          const lines = await store.removeImage(reference, { force: argv.force });
          process.stdout.write(lines.map((l) => `${l}\n`).join(''));
        } catch (err) {
          process.exitCode = reportError(err, argv.debug, exitCodeFor(err));
        }
      }
    });
  },
};

interface PruneArgs extends GlobalArgs {
  force: boolean;
}

export const pruneCommand: CliCommand<PruneArgs> = {
  name: 'image prune',
  describe: 'Remove dangling images (untagged and used by no container)',
  usage: '$0 image prune [options]',
  options: { force: { alias: 'f', type: 'boolean', default: false, describe: 'do not prompt for confirmation' } },
  async execute(argv) {
    await reporting(argv, async () => {
      if (argv._.length > 0) throw new UsageError('"tsrun image prune" takes no arguments');
      if (!argv.force && !(await confirm('WARNING! This will remove all dangling images.\nAre you sure you want to continue? [y/N] '))) return;
      const { deleted, reclaimedBytes } = await (await openStore(argv)).prune();
      const listing = deleted.length > 0 ? `Deleted Images:\n${deleted.map((d) => `deleted: ${d}\n`).join('')}\n` : '';
      process.stdout.write(`${listing}Total reclaimed space: ${humanSize(reclaimedBytes)}\n`);
    });
  },
};
