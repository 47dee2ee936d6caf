import type { Options } from 'yargs';
import type { RegistryOptions } from '../../registry/client';
import type { PullOptions, PullResult } from '../../registry/pull';
import type { Store } from '../../storage/store';
import type { CliCommand, GlobalArgs } from '../command';
import { UsageError } from '../fail';
import { openStore, reporting } from './images';

const INSECURE_OPTION: Options = {
  type: 'string',
  array: true,
  default: [] as string[],
  requiresArg: true,
  describe: 'registry (host[:port] or CIDR) to reach over plain HTTP or unverified TLS; loopback registries always may',
};

interface RegistryArgs extends GlobalArgs {
  'insecure-registry': string[];
}

function registryOptions(argv: RegistryArgs): RegistryOptions {
  return { configDir: argv.config, insecureRegistries: argv['insecure-registry'], logger: argv.logger };
}

interface PullArgs extends RegistryArgs {
  platform?: string;
  quiet: boolean;
}

export const pullCommand: CliCommand<PullArgs> = {
  name: 'pull',
  describe: 'Download an image from a registry',
  usage: '$0 pull [options] NAME[:TAG|@DIGEST]',
  options: {
    platform: { type: 'string', requiresArg: true, describe: 'os/arch[/variant] of the image to pull from a multi-platform index (default: this host)' },
    quiet: { alias: 'q', type: 'boolean', default: false, describe: 'print only the image reference' },
    'insecure-registry': INSECURE_OPTION,
  },
  async execute(argv) {
    await reporting(argv, async () => {
      const [reference, ...extra] = argv._.map(String);
      if (reference === undefined || extra.length > 0) throw new UsageError('"tsrun pull" requires exactly one image reference');
      const store = await openStore(argv);
      const result = await pullWithProgress(store, reference, argv.quiet ? undefined : process.stdout, { ...registryOptions(argv), platform: argv.platform });
      process.stdout.write(`${result.reference}\n`);
    });
  },
};

/** A pull as `docker pull` shows it on `out` (nothing when undefined): the layers' progress, then the digest and status. */
async function pullWithProgress(store: Store, reference: string, out: NodeJS.WriteStream | undefined, options: PullOptions): Promise<PullResult> {
  const [{ pullImage }, { parseRemoteReference, familiarRemote }, { progressRenderer }] = await Promise.all([import('../../registry/pull'), import('../../registry/reference'), import('../progress')]);
  const remote = parseRemoteReference(reference);
  if (out) {
    if (remote.digest === undefined && !/:[^/]*$/.test(reference.split('@')[0])) out.write(`Using default tag: ${remote.tag}\n`);
    out.write(`${remote.digest ?? remote.tag}: Pulling from ${remote.repository}\n`);
  }
  const progress = out ? progressRenderer(out) : undefined;
  try {
    const result = await pullImage(store, reference, { ...options, onProgress: (p) => progress?.update(p) });
    progress?.finish();
    out?.write(`Digest: ${result.digest}\nStatus: ${result.upToDate ? 'Image is up to date' : 'Downloaded newer image'} for ${familiarRemote(remote)}\n`);
    return result;
  } finally {
    progress?.finish();
  }
}

export type PullPolicy = 'missing' | 'always' | 'never';

/**
 * `docker run --pull`: with "missing", an image the store lacks is pulled
 * after "Unable to find image ... locally"; with "always", it is pulled
 * every time. Everything goes to stderr, as stdout is the container's.
 */
export async function pullForRun(argv: GlobalArgs, image: string, policy: PullPolicy, platform: string | undefined): Promise<void> {
  if (policy === 'never') return;
  const [{ localImage }, { parseRemoteReference, familiarRemote }] = await Promise.all([import('../../registry/pull'), import('../../registry/reference')]);
  const store = await openStore(argv);
  if (policy === 'missing') {
    if (localImage(store, image)) return;
    process.stderr.write(`Unable to find image '${familiarRemote(parseRemoteReference(image))}' locally\n`);
  }
  await pullWithProgress(store, image, process.stderr, { configDir: argv.config, insecureRegistries: [], logger: argv.logger, platform });
}

interface PushArgs extends RegistryArgs {
  quiet: boolean;
}

export const pushCommand: CliCommand<PushArgs> = {
  name: 'push',
  describe: 'Upload an image to a registry',
  usage: '$0 push [options] NAME[:TAG]',
  options: {
    quiet: { alias: 'q', type: 'boolean', default: false, describe: 'print only the image reference' },
    'insecure-registry': INSECURE_OPTION,
  },
  async execute(argv) {
    await reporting(argv, async () => {
      const [reference, ...extra] = argv._.map(String);
      if (reference === undefined || extra.length > 0) throw new UsageError('"tsrun push" requires exactly one image reference');
      const [{ pushImage }, { parseRemoteReference, formatRemote }, { progressRenderer }] = await Promise.all([import('../../registry/push'), import('../../registry/reference'), import('../progress')]);
      const remote = parseRemoteReference(reference);
      const progress = argv.quiet ? undefined : progressRenderer(process.stdout);
      if (!argv.quiet) process.stdout.write(`The push refers to repository [${formatRemote(remote).replace(/[:@][^/]*$/, '')}]\n`);
      const store = await openStore(argv);
      try {
        const result = await pushImage(store, reference, { ...registryOptions(argv), onProgress: (p) => progress?.update(p) });
        progress?.finish();
        process.stdout.write(argv.quiet ? `${result.reference}\n` : `${result.tag}: digest: ${result.digest} size: ${result.size}\n`);
      } finally {
        progress?.finish();
      }
    });
  },
};

interface LoginArgs extends RegistryArgs {
  username?: string;
  password?: string;
  'password-stdin': boolean;
}

export const loginCommand: CliCommand<LoginArgs> = {
  name: 'login',
  describe: 'Log in to a registry (credentials go to Docker\'s config.json)',
  usage: '$0 login [options] [SERVER]',
  options: {
    username: { alias: 'u', type: 'string', requiresArg: true, describe: 'username' },
    password: { alias: 'p', type: 'string', requiresArg: true, describe: 'password (prefer --password-stdin)' },
    'password-stdin': { type: 'boolean', default: false, describe: 'read the password from stdin' },
    'insecure-registry': INSECURE_OPTION,
  },
  async execute(argv) {
    await reporting(argv, async () => {
      const [server = 'docker.io', ...extra] = argv._.map(String);
      if (extra.length > 0) throw new UsageError('"tsrun login" takes at most one server');
      if (argv.password !== undefined && argv['password-stdin']) throw new UsageError('--password and --password-stdin are mutually exclusive');
      const { prompt, readStdin } = await import('../prompt');
      let { username, password } = argv;
      if (argv['password-stdin']) {
        if (username === undefined) throw new UsageError('Must provide --username with --password-stdin');
        password = await readStdin();
      } else if (password !== undefined) {
        process.stderr.write('WARNING! Using --password via the CLI is insecure. Use --password-stdin.\n');
      }
      username ??= await prompt('Username: ', { hidden: false });
      password ??= await prompt('Password: ', { hidden: true });
      if (username === '' || password === '') throw new UsageError('Error: Non-null Username and Password Required');
      const { login } = await import('../../registry/login');
      await login(server, { username, password }, registryOptions(argv));
      process.stdout.write('Login Succeeded\n');
    });
  },
};

export const logoutCommand: CliCommand = {
  name: 'logout',
  describe: 'Remove the credentials stored for a registry',
  usage: '$0 logout [SERVER]',
  options: {},
  async execute(argv) {
    await reporting(argv, async () => {
      const [server = 'docker.io', ...extra] = argv._.map(String);
      if (extra.length > 0) throw new UsageError('"tsrun logout" takes at most one server');
      const { logout } = await import('../../registry/login');
      const result = logout(server, { configDir: argv.config, logger: argv.logger });
      process.stdout.write(result.removed ? `Removing login credentials for ${result.server}\n` : `Not logged in to ${result.server}\n`);
    });
  },
};
