import fs = require('node:fs');
import os = require('node:os');
import path = require('node:path');
import type { Readable } from 'node:stream';
import { BuildError, NotFoundError, TsrunError, ValidationError, syscallErrorFrom } from '../errors';
import { Logger, silentLogger } from '../logger';
import { DEFAULT_PATH } from '../oci/defaults';
import { ImageConfigChanges, parseChanges } from '../oci/image-changes';
import type { ContainerConfig, HealthConfig, HistoryEntry, ImageConfig } from '../oci/image-spec';
import { formatPlatform, hostPlatform, parsePlatform, platformMatches } from '../oci/platform';
import type { RegistryOptions } from '../registry/client';
import { pullIfMissing } from '../registry/pull';
import { storeRoot } from '../runtime/image-container';
import { removeContainer } from '../runtime/containers';
import { run } from '../runtime/run';
import { diffLayer } from '../storage/diff';
import { overlayRoot } from '../storage/container-layers';
import { Image, Store } from '../storage/store';
import { BuildCache } from './cache';
import { streamedContext } from './context-stream';
import { parseChmod, planCopy, resolveOwner } from './copy';
import { IgnoreRules } from './dockerignore';
import { Dockerfile, Instruction, parseDockerfile, parseInstruction } from './dockerfile';
import { LayeredTree } from './layered-tree';
import { expandWord, expandWords, parseKeyValues } from './shell-words';
import { SourceFs, contextSource, matchSources, treeSource } from './sources';

export interface BuildOptions {
  /**
   * The build context: the directory COPY and ADD read from; or a stream
   * of a context archive (tar, compressed or not) or of a Dockerfile
   * alone, as `docker build -` reads.
   */
  context: string | Readable;
  /** The Dockerfile (default `<context>/Dockerfile`; relative to the context). */
  dockerfile?: string;
  /** The Dockerfile's text, instead of a file (`docker build -f -`). */
  dockerfileText?: string;
  /** `name[:tag]`s for the result (`-t`, repeatable). */
  tags?: string[];
  /** `--build-arg`: values for the Dockerfile's ARGs. */
  buildArgs?: Record<string, string>;
  /** Build up to this stage (its `AS` name or index) instead of the last one. */
  target?: string;
  /** Build every step, reusing nothing; the results still go into the cache. */
  noCache?: boolean;
  /** The network of RUN steps: `host` (default: a step needs no address of its own, and skips a CNI ADD/DEL) or `none`. */
  network?: 'none' | 'host';
  /** The image store (default /var/lib/tsrun, or $TSRUN_ROOT). */
  root?: string;
  stateDir?: string;
  /** Told about each step: started, cached, its output, done. */
  onProgress?: (event: BuildEvent) => void;
  /** Aborting kills the running step and fails the build. */
  signal?: AbortSignal;
  /** How base images (FROM, COPY --from) the store lacks are pulled: credentials, insecure registries. */
  registry?: RegistryOptions;
  logger?: Logger;
}

/** What a build reports as it goes. `step` numbers the steps of the whole Dockerfile from 1. */
export type BuildEvent =
  | { type: 'step'; step: number; total: number; stage: string; instruction: string; line: number }
  | { type: 'cached'; step: number }
  | { type: 'output'; step: number; stream: 'stdout' | 'stderr'; data: string }
  | { type: 'done'; step: number; image?: string }
  | { type: 'warning'; message: string }
  | { type: 'image'; id: string; tags: string[] };

export interface BuildStep {
  /** The stage's name, or `stage-<index>`. */
  stage: string;
  line: number;
  /** The instruction as written. */
  instruction: string;
  /** Whether the step was taken from the cache (RUN, COPY, ADD) rather than run. */
  cached: boolean;
  /** Whether the step made a layer. */
  layer: boolean;
}

export interface BuildResult {
  image: Image;
  steps: BuildStep[];
}

const DEFAULT_SHELL = ['/bin/sh', '-c'];
/** Arguments that need no ARG to be passed to RUN, as in Docker. */
const PREDEFINED_ARGS = ['HTTP_PROXY', 'http_proxy', 'HTTPS_PROXY', 'https_proxy', 'FTP_PROXY', 'ftp_proxy', 'NO_PROXY', 'no_proxy', 'ALL_PROXY', 'all_proxy'];
const STAGE_NAME = /^[a-z][a-z0-9_.-]*$/i;

/** One stage as it is being built. */
interface Stage {
  /** Its `AS` name (lowercased), or its index for a stage without one: what --from and --target match. */
  name: string;
  /** The name, or `stage-<index>`: what the progress and BuildStep show. */
  label: string;
  index: number;
  /** The last image in the store with this stage's layers: its base, or its last RUN/COPY/ADD; null for scratch with no layer yet. */
  image: Image | null;
  /** The config as the steps so far made it (its rootfs is `image`'s). */
  config: ImageConfig;
  /** Whether `config` changed since `image` was stored. */
  dirty: boolean;
  /** The cache key of the last step. */
  key: string;
  /** ARGs declared in the stage, with their values. */
  args: Map<string, string | undefined>;
  /** A CMD was given in this stage (an ENTRYPOINT then keeps it). */
  cmdSet: boolean;
}

/**
 * Builds an image from a Dockerfile, as `docker build` does. Each RUN runs
 * in a container on the stage's image so far and its writable layer is
 * committed; each COPY and ADD writes a layer of the files; every other
 * instruction changes the config only (with a history entry marked
 * empty_layer). Steps are cached (see cache.ts).
 *
 * @example
 * const { image } = await build({ context: '.', tags: ['app:1'] });
 */
export async function build(options: BuildOptions): Promise<BuildResult> {
  if (typeof options.context === 'string') return buildInDirectory({ ...options, context: options.context });
  const streamed = await streamedContext(options.context, options.logger);
  try {
    return await buildInDirectory({ ...options, context: streamed.dir, dockerfileText: options.dockerfileText ?? streamed.dockerfileText });
  } finally {
    streamed.remove();
  }
}

async function buildInDirectory(options: BuildOptions & { context: string }): Promise<BuildResult> {
  const logger = options.logger ?? silentLogger;
  const root = storeRoot(options);
  const contextDir = path.resolve(options.context);
  if (!statOrNull(contextDir)?.isDirectory()) throw new BuildError(`the build context ${contextDir} is not a directory`);
  const dockerfilePath = path.resolve(contextDir, options.dockerfile ?? defaultDockerfile(contextDir));
  const fileLabel = options.dockerfileText === undefined ? path.basename(dockerfilePath) : 'Dockerfile';
  let text = options.dockerfileText;
  try {
    text ??= fs.readFileSync(dockerfilePath, 'utf8');
  } catch (err) {
    throw new BuildError(`cannot read the Dockerfile ${dockerfilePath}`, undefined, undefined, { cause: syscallErrorFrom('build', err) });
  }
  const dockerfile = parseDockerfile(text, fileLabel);
  // A `<Dockerfile>.dockerignore` beside the Dockerfile wins over the context's, as in BuildKit.
  const ignoreFile = [...(options.dockerfileText === undefined ? [`${dockerfilePath}.dockerignore`] : []), path.join(contextDir, '.dockerignore')].find((f) => fs.existsSync(f));
  const ignoreText = ignoreFile === undefined ? null : readOrNull(ignoreFile);
  const ignore = ignoreText === null ? IgnoreRules.none() : IgnoreRules.parse(ignoreText, path.basename(ignoreFile as string));
  const builder = new Builder(options, dockerfile, fileLabel, Store.open(root, logger), root, contextSource(contextDir, ignore), logger);
  dockerfile.warnings.forEach((message) => builder.emit({ type: 'warning', message }));
  return builder.run();
}

class Builder {
  private readonly cache: BuildCache;
  private readonly stages: Stage[] = [];
  private readonly globalArgs = new Map<string, string | undefined>();
  private readonly usedArgs = new Set<string>();
  private readonly steps: BuildStep[] = [];
  private stepNumber = 0;
  private totalSteps: number;

  constructor(
    private readonly options: BuildOptions,
    private readonly dockerfile: Dockerfile,
    private readonly file: string,
    private readonly store: Store,
    private readonly root: string,
    private readonly context: SourceFs,
    private readonly logger: Logger,
  ) {
    this.cache = new BuildCache(root);
    this.totalSteps = dockerfile.instructions.length;
    // Docker's automatic platform ARGs: in scope for FROM, and in a stage once declared.
    const platform = hostPlatform();
    for (const side of ['BUILD', 'TARGET']) {
      this.globalArgs.set(`${side}PLATFORM`, formatPlatform(platform));
      this.globalArgs.set(`${side}OS`, platform.os);
      this.globalArgs.set(`${side}ARCH`, platform.architecture);
      this.globalArgs.set(`${side}VARIANT`, platform.variant ?? '');
    }
  }

  emit(event: BuildEvent): void {
    this.options.onProgress?.(event);
  }

  private fail(instruction: Instruction, message: string, cause?: unknown): BuildError {
    return new BuildError(message, this.file, instruction.line, cause === undefined ? undefined : { cause });
  }

  async run(): Promise<BuildResult> {
    const { instructions } = this.dockerfile;
    const firstFrom = instructions.findIndex((i) => i.name === 'FROM');
    if (firstFrom === -1) throw new BuildError('no FROM instruction: a Dockerfile must start its first stage with FROM', this.file, instructions[0]?.line ?? 1);
    for (const instruction of instructions.slice(0, firstFrom)) {
      if (instruction.name !== 'ARG') throw this.fail(instruction, `${instruction.name} before the first FROM: only ARG may come before it`);
      this.step(instruction, 'global');
      this.declareArgs(instruction, null);
      this.done();
    }
    const target = this.options.target;
    if (target !== undefined) {
      const froms = instructions.flatMap((instruction, i) => (instruction.name === 'FROM' ? [{ instruction, i }] : []));
      const at = froms.findIndex((f, n) => declaredStageName(f.instruction) === target.toLowerCase() || String(n) === target);
      if (at === -1) throw new BuildError(`target stage ${JSON.stringify(target)} could not be found`, this.file);
      // The steps of the stages after the target are not built: the progress counts up to it.
      this.totalSteps = at + 1 < froms.length ? froms[at + 1].i : instructions.length;
    }
    let stage: Stage | undefined;
    for (const instruction of instructions.slice(firstFrom)) {
      if (instruction.name === 'FROM') {
        if (stage && this.isTarget(stage)) break;
        stage = await this.from(instruction);
        continue;
      }
      await this.dispatch(stage as Stage, instruction);
    }
    const final = stage as Stage;
    const image = await this.finish(final);
    const unused = Object.keys(this.options.buildArgs ?? {}).filter((name) => !this.usedArgs.has(name) && !PREDEFINED_ARGS.includes(name));
    if (unused.length > 0) this.emit({ type: 'warning', message: `one or more build-args [${unused.join(' ')}] were not consumed` });
    this.emit({ type: 'image', id: image.id, tags: image.repoTags });
    return { image, steps: this.steps };
  }

  private isTarget(stage: Stage): boolean {
    const target = this.options.target;
    return target !== undefined && (stage.name === target.toLowerCase() || String(stage.index) === target);
  }

  private step(instruction: Instruction, stage: string): number {
    this.stepNumber++;
    this.emit({ type: 'step', step: this.stepNumber, total: this.totalSteps, stage, instruction: instruction.original, line: instruction.line });
    return this.stepNumber;
  }

  private done(image?: string): void {
    this.emit({ type: 'done', step: this.stepNumber, image });
  }

  private record(stage: Stage, instruction: Instruction, cached: boolean, layer: boolean): void {
    this.steps.push({ stage: stage.label, line: instruction.line, instruction: instruction.original, cached, layer });
    this.logger.debug({ stage: stage.label, line: instruction.line, instruction: instruction.name, cached, layer, image: stage.image?.id }, 'build step done');
  }

  /** Variables for expansion: the stage's ENV over its ARGs (global ARGs only in FROM). */
  private lookup(stage: Stage | null): (name: string) => string | undefined {
    if (stage === null) return (name) => this.globalArgs.get(name);
    const env = envMap(stage.config.config?.Env ?? []);
    // RUN steps get the default PATH when the image has none, so `ENV PATH=$PATH:/x` must see it too.
    return (name) => env.get(name) ?? stage.args.get(name) ?? (name === 'PATH' ? DEFAULT_PATH : undefined);
  }

  private async from(instruction: Instruction): Promise<Stage> {
    const index = this.stages.length;
    const label = declaredStageName(instruction) ?? `stage-${index}`;
    const stepNumber = this.step(instruction, label);
    const words = this.atLine(instruction, () => expandWords(instruction.args, this.lookup(null), this.dockerfile.escape));
    if (words.length !== 1 && !(words.length === 3 && words[1].toLowerCase() === 'as')) {
      throw this.fail(instruction, `FROM requires either one or three arguments (FROM IMAGE [AS NAME]), got ${JSON.stringify(instruction.args)}`);
    }
    const [reference] = words;
    const name = words.length === 3 ? words[2].toLowerCase() : String(index);
    if (words.length === 3 && !STAGE_NAME.test(words[2])) throw this.fail(instruction, `invalid stage name ${JSON.stringify(words[2])}: it must start with a letter and hold only letters, digits, _, . and -`);
    if (this.stages.some((s) => s.name === name)) throw this.fail(instruction, `duplicate stage name ${JSON.stringify(name)}`);
    const platform = instruction.flags.platform?.[0];
    if (platform !== undefined) {
      const wanted = this.atLine(instruction, () => parsePlatform(expandWord(platform, this.lookup(null), this.dockerfile.escape)));
      if (!platformMatches(wanted, hostPlatform())) throw this.fail(instruction, `--platform=${formatPlatform(wanted)}: only this host's platform (${formatPlatform(hostPlatform())}) can be built, RUN steps run here`);
    }
    const stage: Stage = { name, label, index, image: null, config: scratchConfig(), dirty: false, key: BuildCache.key('', 'scratch'), args: new Map(), cmdSet: false };
    const previous = this.stages.find((s) => s.name === reference.toLowerCase());
    if (previous) {
      Object.assign(stage, { image: previous.image, config: structuredClone(previous.config), dirty: previous.dirty, key: previous.key });
    } else if (reference.toLowerCase() !== 'scratch') {
      let image: Image;
      try {
        image = await this.pull(reference);
      } catch (err) {
        throw this.fail(instruction, `FROM ${reference}: ${err instanceof Error ? err.message : String(err)}`, err);
      }
      Object.assign(stage, { image, config: structuredClone(image.config), key: BuildCache.key('', image.id) });
    }
    this.stages.push(stage);
    this.record(stage, instruction, false, false);
    this.emit({ type: 'done', step: stepNumber, image: stage.image?.id });
    const triggers = stage.config.config?.OnBuild ?? [];
    if (!previous && triggers.length > 0) {
      // The base's ONBUILD triggers run now, in this stage, and are not inherited further.
      (stage.config.config as ContainerConfig).OnBuild = null;
      stage.dirty = true;
      for (const trigger of triggers) await this.dispatch(stage, parseInstruction(trigger, this.file, instruction.line), true);
    }
    return stage;
  }

  /** Runs `body`, turning a BuildError without a line (from word expansion) into one naming the instruction. */
  private atLine<T>(instruction: Instruction, body: () => T): T {
    try {
      return body();
    } catch (err) {
      if (err instanceof BuildError && err.line === undefined) throw this.fail(instruction, err.message);
      if (err instanceof TsrunError && !(err instanceof BuildError)) throw this.fail(instruction, err.message, err);
      throw err;
    }
  }

  private async dispatch(stage: Stage, instruction: Instruction, trigger = false): Promise<void> {
    if (this.options.signal?.aborted) throw this.fail(instruction, 'the build was cancelled', this.options.signal.reason);
    if (!trigger) this.step(instruction, stage.label);
    switch (instruction.name) {
      case 'RUN':
        await this.runStep(stage, instruction);
        return;
      case 'COPY':
      case 'ADD':
        await this.copyStep(stage, instruction);
        return;
      default:
        this.atLine(instruction, () => this.metadataStep(stage, instruction));
        this.record(stage, instruction, false, false);
        this.done();
    }
  }

  private declareArgs(instruction: Instruction, stage: Stage | null): [string, string | undefined][] {
    const pairs = this.atLine(instruction, () => parseKeyValues(instruction.args, this.lookup(stage), this.dockerfile.escape, { valueOptional: true }));
    if (pairs.length === 0) throw this.fail(instruction, 'ARG requires at least one argument');
    const given = this.options.buildArgs ?? {};
    return pairs.map(([name, fallback]) => {
      const value = Object.hasOwn(given, name) ? given[name] : (fallback ?? this.globalArgs.get(name));
      if (Object.hasOwn(given, name)) this.usedArgs.add(name);
      if (stage) stage.args.set(name, value);
      else this.globalArgs.set(name, value);
      return [name, value];
    });
  }

  /** An instruction that changes only the config. */
  private metadataStep(stage: Stage, instruction: Instruction): void {
    const lookup = this.lookup(stage);
    const escape = this.dockerfile.escape;
    const config: ContainerConfig = (stage.config.config ??= {});
    const shell = config.Shell ?? DEFAULT_SHELL;
    let summary: string;
    switch (instruction.name) {
      case 'ENV': {
        const pairs = parseKeyValues(instruction.args, lookup, escape) as [string, string][];
        if (pairs.length === 0) throw this.fail(instruction, 'ENV requires at least one argument');
        const env = envMap(config.Env ?? []);
        for (const [key, value] of pairs) env.set(key, value);
        config.Env = [...env].map(([k, v]) => `${k}=${v}`);
        summary = `ENV ${pairs.map(([k, v]) => `${k}=${v}`).join(' ')}`;
        break;
      }
      case 'ARG': {
        const pairs = this.declareArgs(instruction, stage);
        summary = `ARG ${pairs.map(([k, v]) => (v === undefined ? k : `${k}=${v}`)).join(' ')}`;
        break;
      }
      case 'LABEL': {
        const pairs = parseKeyValues(instruction.args, lookup, escape) as [string, string][];
        if (pairs.length === 0) throw this.fail(instruction, 'LABEL requires at least one argument');
        config.Labels = { ...config.Labels, ...Object.fromEntries(pairs) };
        summary = `LABEL ${pairs.map(([k, v]) => `${k}=${v}`).join(' ')}`;
        break;
      }
      case 'WORKDIR': {
        const dir = expandWord(instruction.args, lookup, escape).trim();
        if (dir === '') throw this.fail(instruction, 'WORKDIR requires a path');
        config.WorkingDir = path.posix.resolve(config.WorkingDir || '/', dir);
        stage.config.history?.push(this.history(shell, `WORKDIR ${config.WorkingDir}`, ' '));
        stage.dirty = true;
        return;
      }
      case 'USER': {
        const user = expandWord(instruction.args, lookup, escape).trim();
        if (user === '') throw this.fail(instruction, 'USER requires a user');
        config.User = user;
        summary = `USER ${user}`;
        break;
      }
      case 'CMD':
      case 'ENTRYPOINT': {
        const command = instruction.json ?? (instruction.args === '' ? [] : [...shell, instruction.args]);
        if (instruction.name === 'CMD') {
          config.Cmd = command;
          stage.cmdSet = true;
        } else {
          config.Entrypoint = command;
          if (!stage.cmdSet) config.Cmd = null;
        }
        summary = `${instruction.name} ${goList(command)}`;
        break;
      }
      case 'EXPOSE': {
        const ports = expandWords(instruction.args, lookup, escape);
        const parsed = configChange(`EXPOSE ${ports.join(' ')}`).exposedPorts ?? [];
        config.ExposedPorts = { ...config.ExposedPorts, ...Object.fromEntries(parsed.map((p) => [p, {}])) };
        summary = `EXPOSE ${parsed.join(' ')}`;
        break;
      }
      case 'VOLUME': {
        const volumes = instruction.json ?? expandWords(instruction.args, lookup, escape);
        if (volumes.length === 0 || volumes.some((v) => v.trim() === '')) throw this.fail(instruction, 'VOLUME requires at least one non-empty path');
        config.Volumes = { ...config.Volumes, ...Object.fromEntries(volumes.map((v) => [v, {}])) };
        summary = `VOLUME ${goList(volumes)}`;
        break;
      }
      case 'STOPSIGNAL': {
        const signal = expandWord(instruction.args, lookup, escape).trim();
        config.StopSignal = configChange(`STOPSIGNAL ${signal}`).stopSignal;
        summary = `STOPSIGNAL ${signal}`;
        break;
      }
      case 'HEALTHCHECK':
        config.Healthcheck = this.healthcheck(instruction);
        summary = `HEALTHCHECK ${instruction.args}`;
        break;
      case 'ONBUILD':
        config.OnBuild = [...(config.OnBuild ?? []), (instruction.trigger as Instruction).original];
        summary = `ONBUILD ${(instruction.trigger as Instruction).original}`;
        break;
      case 'SHELL':
        if (instruction.json === null || instruction.json.length === 0) throw this.fail(instruction, 'SHELL requires the arguments to be in JSON form: SHELL ["executable", "parameters"]');
        config.Shell = instruction.json;
        summary = `SHELL ${goList(instruction.json)}`;
        break;
      case 'MAINTAINER':
        stage.config.author = expandWord(instruction.args, lookup, escape);
        summary = `MAINTAINER ${stage.config.author}`;
        break;
      default:
        throw this.fail(instruction, `${instruction.name} is not allowed here`);
    }
    stage.config.history = [...(stage.config.history ?? []), this.history(shell, summary, '  ')];
    stage.dirty = true;
  }

  /** Docker's history entry for a step that makes no layer: `/bin/sh -c #(nop)  CMD ["sh"]`. */
  private history(shell: string[], summary: string, gap: string): HistoryEntry {
    return { created: new Date().toISOString(), created_by: `${shell.join(' ')} #(nop)${gap}${summary}`, empty_layer: true };
  }

  private healthcheck(instruction: Instruction): HealthConfig {
    const match = /^(\S+)\s*([\s\S]*)$/.exec(instruction.args);
    const kind = match?.[1].toUpperCase();
    if (kind === 'NONE') {
      if (match?.[2] !== '' || Object.keys(instruction.flags).length > 0) throw this.fail(instruction, 'HEALTHCHECK NONE takes no other arguments');
      return { Test: ['NONE'] };
    }
    if (kind !== 'CMD' || !match?.[2]) throw this.fail(instruction, 'HEALTHCHECK requires NONE or CMD followed by a command');
    const rest = match[2].trim();
    const json = parseInstruction(`CMD ${rest}`, this.file, instruction.line).json;
    const health: HealthConfig = { Test: json ? ['CMD', ...json] : ['CMD-SHELL', rest] };
    const durations: [string, keyof HealthConfig][] = [['interval', 'Interval'], ['timeout', 'Timeout'], ['start-period', 'StartPeriod'], ['start-interval', 'StartInterval']];
    for (const [flag, field] of durations) {
      const value = instruction.flags[flag]?.[0];
      if (value !== undefined) (health[field] as number) = parseDuration(value, flag, (m) => this.fail(instruction, m));
    }
    const retries = instruction.flags.retries?.[0];
    if (retries !== undefined) {
      if (!/^\d+$/.test(retries) || Number(retries) < 1) throw this.fail(instruction, `--retries=${retries}: must be a positive integer`);
      health.Retries = Number(retries);
    }
    return health;
  }

  /** Reuses the image a step made before, when the cache has it and the store still does. */
  private cached(key: string): Image | undefined {
    if (this.options.noCache) return undefined;
    const id = this.cache.get(key);
    if (id === undefined) return undefined;
    try {
      return this.store.resolve(id);
    } catch (err) {
      if (err instanceof NotFoundError) return undefined;
      throw err;
    }
  }

  /** Moves the stage onto `image`, which a step made or the cache gave. */
  private advance(stage: Stage, instruction: Instruction, key: string, image: Image, cached: boolean): void {
    Object.assign(stage, { image, config: structuredClone(image.config), dirty: false, key });
    if (cached) this.emit({ type: 'cached', step: this.stepNumber });
    this.record(stage, instruction, cached, true);
    this.done(image.id);
  }

  /** The config of the image a step makes: the stage's, with the new diff IDs and history entry. */
  private nextConfig(stage: Stage, createdBy: string): (diffIDs: string[], created: string) => ImageConfig {
    return (diffIDs, created) => ({
      ...structuredClone(stage.config),
      created,
      rootfs: { type: 'layers', diff_ids: diffIDs },
      history: [...(stage.config.history ?? []), { created, created_by: createdBy }],
    });
  }

  /** The key of a step: the stage's key so far, every config change since its image, and the step itself. */
  private stepKey(stage: Stage, step: string): string {
    return BuildCache.key(stage.key, `${JSON.stringify(stage.dirty ? { ...stage.config, created: undefined, history: (stage.config.history ?? []).map((h) => h.created_by) } : null)}\n${step}`);
  }

  private async runStep(stage: Stage, instruction: Instruction): Promise<void> {
    const flags = instruction.flags;
    if (flags.mount) throw this.fail(instruction, 'RUN --mount is not supported by tsrun build');
    if (flags.security && flags.security[0] !== 'sandbox') throw this.fail(instruction, `RUN --security=${flags.security[0]} is not supported`);
    const network = flags.network?.[0] ?? 'default';
    if (!['default', 'none', 'host'].includes(network)) throw this.fail(instruction, `RUN --network=${network}: use default, none or host`);
    if (instruction.args === '') throw this.fail(instruction, 'RUN requires a command');
    const config = stage.config.config ?? {};
    const shell = config.Shell ?? DEFAULT_SHELL;
    const command = instruction.json ?? [...shell, withHeredocs(instruction)];
    // ARG values are in the step's environment (ENV wins) and in its history, as Docker does.
    const env = envMap(config.Env ?? []);
    const argEnv = [...stage.args].filter(([name, value]) => value !== undefined && !env.has(name)).map(([name, value]) => `${name}=${value}`);
    for (const name of PREDEFINED_ARGS) {
      const value = this.options.buildArgs?.[name];
      if (value !== undefined && !stage.args.has(name)) argEnv.push(`${name}=${value}`);
    }
    const createdBy = argEnv.length > 0 ? `|${argEnv.length} ${argEnv.join(' ')} ${command.join(' ')}` : command.join(' ');
    const key = this.stepKey(stage, `RUN ${JSON.stringify({ command, argEnv, network })}`);
    const hit = this.cached(key);
    if (hit) return this.advance(stage, instruction, key, hit, true);
    if (stage.image === null) throw this.fail(instruction, 'RUN needs a root filesystem: this stage is FROM scratch and has nothing in it yet');

    let container;
    try {
      container = await run({
        image: stage.image!.id,
        root: this.root,
        stateDir: this.options.stateDir,
        args: command,
        entrypoint: [],
        env: [...(config.Env ?? []), ...argEnv],
        cwd: config.WorkingDir || '/',
        user: config.User || '0',
        network: network === 'none' ? 'none' : network === 'host' ? 'host' : (this.options.network ?? 'host'),
        stdio: ['ignore', 'pipe', 'pipe'],
        signal: this.options.signal,
        logger: this.logger,
      });
    } catch (err) {
      throw this.fail(instruction, `RUN could not start: ${err instanceof Error ? err.message : String(err)}`, err);
    }
    let image: Image;
    try {
      const step = this.stepNumber;
      container.stdout?.setEncoding('utf8').on('data', (data: string) => this.emit({ type: 'output', step, stream: 'stdout', data }));
      container.stderr?.setEncoding('utf8').on('data', (data: string) => this.emit({ type: 'output', step, stream: 'stderr', data }));
      const result = await container.wait();
      if (this.options.signal?.aborted) throw this.fail(instruction, 'the build was cancelled', this.options.signal.reason);
      if (result.exitCode !== 0) throw this.fail(instruction, `The command '${command.join(' ')}' returned a non-zero code: ${result.exitCode}`);
      image = await this.store.createImage(stage.image, diffLayer(path.join(overlayRoot(this.root), container.id, 'diff')), this.nextConfig(stage, createdBy));
    } finally {
      await removeContainer(container.id, { root: this.root, stateDir: this.options.stateDir, force: true, logger: this.logger });
    }
    this.cache.set(key, image.id);
    this.advance(stage, instruction, key, image, false);
  }

  private async copyStep(stage: Stage, instruction: Instruction): Promise<void> {
    const lookup = this.lookup(stage);
    const escape = this.dockerfile.escape;
    const name = instruction.name;
    const words = instruction.json ?? this.atLine(instruction, () => expandWords(instruction.args, lookup, escape));
    if (words.length < 2) throw this.fail(instruction, `${name} requires at least two arguments: ${name} SOURCE... DEST`);
    const sources = words.slice(0, -1);
    const workdir = stage.config.config?.WorkingDir || '/';
    const rawDest = words[words.length - 1];
    const dest = path.posix.join(path.posix.resolve(workdir, rawDest), rawDest.endsWith('/') || rawDest === '.' ? '/' : '');
    const url = sources.find((s) => /^[a-z][a-z0-9+.-]*:\/\//i.test(s) || s.startsWith('git@'));
    if (url !== undefined) {
      throw this.fail(instruction, `${name} ${url}: tsrun build does not download (the build runs offline); fetch the file into the build context and COPY it${name === 'COPY' ? ' (and COPY never takes URLs)' : ''}`);
    }
    if (instruction.flags.checksum) throw this.fail(instruction, "ADD --checksum can't be specified for non-HTTP(S) sources");
    const tree = new LayeredTree(stage.image?.layers.map((l) => l.dir) ?? []);
    const fromFlag = instruction.flags.from?.[0];
    const inline = this.atLine(instruction, () => inlineFiles(instruction, sources, lookup));
    try {
      const from = inline !== null ? inline.source : fromFlag === undefined ? this.context : await this.copySource(instruction, stage, expandWord(fromFlag, lookup, escape));
      await this.copyLayer(stage, instruction, inline?.names ?? sources, from, dest, tree);
    } finally {
      if (inline) fs.rmSync(inline.dir, { recursive: true, force: true });
    }
  }

  private async copyLayer(stage: Stage, instruction: Instruction, sources: string[], from: SourceFs, dest: string, tree: LayeredTree): Promise<void> {
    const name = instruction.name;
    const lookup = this.lookup(stage);
    const escape = this.dockerfile.escape;
    const fromFlag = instruction.flags.from?.[0];
    const owner = instruction.flags.chown?.[0];
    const chmod = instruction.flags.chmod?.[0];
    const plan = this.atLine(instruction, () =>
      planCopy(matchSources(sources, from), {
        dest,
        tree,
        owner: owner === undefined ? undefined : resolveOwner(expandWord(owner, lookup, escape), tree),
        mode: chmod === undefined ? undefined : parseChmod(expandWord(chmod, lookup, escape)),
        extractArchives: name === 'ADD',
        instruction: name,
      }),
    );
    const shell = stage.config.config?.Shell ?? DEFAULT_SHELL;
    const createdBy = `${shell.join(' ')} #(nop) ${name} ${plan.summary} in ${dest} `;
    const key = this.stepKey(stage, `${name} ${JSON.stringify({ from: fromFlag === undefined ? null : from.label, sources, dest, owner, chmod, content: plan.contentHash })}`);
    const hit = this.cached(key);
    if (hit) return this.advance(stage, instruction, key, hit, true);
    const image = await this.store.createImage(stage.image, plan.tar(), this.nextConfig(stage, createdBy));
    this.cache.set(key, image.id);
    this.advance(stage, instruction, key, image, false);
  }

  /** `--from=`: an earlier stage (by name or index) or an image. */
  private async copySource(instruction: Instruction, stage: Stage, from: string): Promise<SourceFs> {
    const earlier = this.stages.find((s) => s.index < stage.index && (s.name === from.toLowerCase() || String(s.index) === from));
    if (earlier) return treeSource(new LayeredTree(earlier.image?.layers.map((l) => l.dir) ?? []), `stage ${earlier.name}`);
    if (from.toLowerCase() === stage.name || /^\d+$/.test(from)) throw this.fail(instruction, `--from=${from}: a stage can only copy from a stage before it`);
    let image: Image;
    try {
      image = await this.pull(from);
    } catch (err) {
      throw this.fail(instruction, `--from=${from}: ${err instanceof Error ? err.message : String(err)}`, err);
    }
    return treeSource(new LayeredTree(image.layers.map((l) => l.dir)), `image ${from}`);
  }

  /** The image `reference` names, pulled first when the store lacks it (as docker build does), which the step's output says. */
  private pull(reference: string): Promise<Image> {
    const step = this.stepNumber;
    return pullIfMissing(this.store, reference, {
      logger: this.logger,
      ...this.options.registry,
      signal: this.options.signal,
      onMissing: () => this.emit({ type: 'output', step, stream: 'stderr', data: `Unable to find image '${reference}' locally: pulling it\n` }),
    });
  }

  /** The stage's image: its last one, or a new one with the config changes made after it. */
  private async finish(stage: Stage): Promise<Image> {
    let image = stage.image;
    if (image === null || stage.dirty) {
      const key = this.stepKey(stage, 'END');
      image = this.cached(key) ?? (await this.store.createImage(stage.image, null, this.nextConfigWithoutEntry(stage)));
      this.cache.set(key, image.id);
    }
    for (const tag of this.options.tags ?? []) await this.store.tag(image.id, tag);
    return this.store.resolve(image.id);
  }

  private nextConfigWithoutEntry(stage: Stage): (diffIDs: string[], created: string) => ImageConfig {
    return (diffIDs, created) => ({ ...structuredClone(stage.config), created, rootfs: { type: 'layers', diff_ids: diffIDs } });
  }
}

/**
 * A shell-form RUN with here-documents: a RUN that is only `<<EOF` runs
 * the document as its script; otherwise the shell gets the command
 * followed by the documents, as it would read them from a script.
 */
function withHeredocs(instruction: Instruction): string {
  const heredocs = instruction.heredocs ?? [];
  if (heredocs.length === 0) return instruction.args;
  if (heredocs.length === 1 && /^<<-?(?:"[^"]*"|'[^']*'|\S+)$/.test(instruction.args.trim())) return heredocs[0].content;
  return `${instruction.args}\n${heredocs.map((h) => h.raw).join('\n')}`;
}

/**
 * COPY <<EOF /dest: the documents become files (variables expanded unless
 * the delimiter is quoted) in a temporary directory that is the source.
 * Null when no source is a document.
 */
function inlineFiles(instruction: Instruction, sources: string[], lookup: (name: string) => string | undefined): { dir: string; source: SourceFs; names: string[] } | null {
  const names = sources.map((s) => /^<<-?(.+)$/.exec(s)?.[1]);
  if (names.every((n) => n === undefined)) return null;
  if (names.some((n) => n === undefined)) throw new BuildError(`${instruction.name} cannot mix here-documents and other sources`);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsrun-heredoc-'));
  for (const name of names as string[]) {
    const heredoc = instruction.heredocs?.find((h) => h.name === name);
    if (!heredoc || name.includes('/')) {
      fs.rmSync(dir, { recursive: true, force: true });
      throw new BuildError(`<<${name}: no here-document of that name follows the ${instruction.name}`);
    }
    const content = heredoc.quoted ? heredoc.content : heredoc.content.replace(/\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))/g, (_, braced: string | undefined, bare: string | undefined) => lookup(braced ?? bare ?? '') ?? '');
    fs.writeFileSync(path.join(dir, name), content, { mode: 0o644 });
  }
  return { dir, source: contextSource(dir, IgnoreRules.none()), names: names as string[] };
}

/** One instruction parsed as `docker commit -c` parses it, its error without the `change:` field name, which means nothing in a Dockerfile. */
function configChange(text: string): ImageConfigChanges {
  try {
    return parseChanges([text]);
  } catch (err) {
    if (err instanceof ValidationError) throw new BuildError(err.message.slice(err.field.length + 2));
    throw err;
  }
}

/** The `AS name` of a FROM, lowercased, as written (before expansion). */
function declaredStageName(from: Instruction): string | undefined {
  return /\sAS\s+(\S+)\s*$/i.exec(from.args)?.[1]?.toLowerCase();
}

function scratchConfig(): ImageConfig {
  const platform = hostPlatform();
  return { architecture: platform.architecture, os: platform.os, ...(platform.variant ? { variant: platform.variant } : {}), config: {}, rootfs: { type: 'layers', diff_ids: [] }, history: [] };
}

function envMap(env: string[]): Map<string, string> {
  return new Map(env.map((entry) => [entry.slice(0, entry.indexOf('=') === -1 ? entry.length : entry.indexOf('=')), entry.slice(entry.indexOf('=') + 1)]));
}

/** Go's %q of a []string, which Docker's history shows: `["/bin/sh" "-c" "echo hi"]`. */
function goList(list: string[]): string {
  return `[${list.map((s) => JSON.stringify(s)).join(' ')}]`;
}

/** Go durations (`30s`, `1m30s`, `500ms`) in nanoseconds. */
function parseDuration(text: string, flag: string, fail: (message: string) => Error): number {
  const units: Record<string, number> = { ns: 1, us: 1e3, '\u00b5s': 1e3, ms: 1e6, s: 1e9, m: 60e9, h: 3600e9 };
  const parts = [...text.matchAll(/(\d+(?:\.\d+)?)(ns|us|\u00b5s|ms|s|m|h)/g)];
  if (parts.length === 0 || parts.map((p) => p[0]).join('') !== text) throw fail(`--${flag}=${text}: not a duration (such as 30s, 1m30s)`);
  return Math.round(parts.reduce((sum, [, value, unit]) => sum + Number(value) * units[unit], 0));
}

/** `Dockerfile`, or `dockerfile` when only that one is there (as Docker looks for it). */
function defaultDockerfile(context: string): string {
  return !fs.existsSync(path.join(context, 'Dockerfile')) && fs.existsSync(path.join(context, 'dockerfile')) ? 'dockerfile' : 'Dockerfile';
}

function statOrNull(file: string): fs.Stats | null {
  try {
    return fs.statSync(file);
  } catch {
    return null;
  }
}

function readOrNull(file: string): string | null {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw syscallErrorFrom('build', err);
  }
}
