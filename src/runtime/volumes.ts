import fs = require('node:fs');
import path = require('node:path');
import { ValidationError, syscallErrorFrom } from '../errors';
import { resolveInRoot } from '../linux/path-in-root';
import type { Mount } from '../oci/runtime-spec';
import { ContainerStore } from '../storage/containers';
import { VolumeRecord, VolumeStore } from '../storage/volumes';
import { withFileLock } from '../util/file-lock';
import { randomHex } from '../util/random';
import { treeSize } from '../util/tree-size';

export type Propagation = 'shared' | 'slave' | 'private' | 'rshared' | 'rslave' | 'rprivate';

const PROPAGATIONS: readonly Propagation[] = ['shared', 'slave', 'private', 'rshared', 'rslave', 'rprivate'];

/** A mount asked for with `-v` or `--mount`. */
export interface VolumeMount {
  type: 'bind' | 'volume' | 'tmpfs';
  /** bind: an absolute host path; volume: a volume name (absent: a new anonymous volume); tmpfs: unused. */
  source?: string;
  /** Absolute path in the container, resolved inside its root (a symlink there cannot lead out). */
  target: string;
  readOnly?: boolean;
  /** bind only; default rprivate, as Docker. */
  propagation?: Propagation;
  /** bind: create a missing source directory (what `-v` does; `--mount` refuses). */
  createSource?: boolean;
  /** volume: do not copy the image's content into a new volume. */
  noCopy?: boolean;
  /** tmpfs: size in bytes and mode. */
  tmpfsSize?: number;
  tmpfsMode?: number;
  /** Further mount(8) options (tmpfs: `noexec`, `size=64m`...). */
  options?: string[];
}

function splitOptions(text: string): string[] {
  return text.split(',').filter((o) => o !== '');
}

/** `-v [SOURCE:]TARGET[:OPTIONS]`: an absolute SOURCE is a host path, any other a volume name; none makes an anonymous volume. */
export function parseVolumeFlag(value: string): VolumeMount {
  const parts = value.split(':');
  if (parts.length > 3 || parts.some((p, i) => p === '' && !(i === 2 && parts.length === 3))) {
    throw new ValidationError('volume', `invalid volume specification ${JSON.stringify(value)} (SOURCE:TARGET[:OPTIONS])`);
  }
  const [first, second, third] = parts;
  const [source, target, optionText] = parts.length === 1 ? [undefined, first, ''] : [first, second, third ?? ''];
  const mount: VolumeMount = { type: source?.startsWith('/') ? 'bind' : 'volume', source, target };
  if (mount.type === 'bind') mount.createSource = true;
  for (const option of splitOptions(optionText)) {
    if (option === 'ro' || option === 'readonly') mount.readOnly = true;
    else if (option === 'rw') mount.readOnly = false;
    else if ((PROPAGATIONS as readonly string[]).includes(option)) {
      if (mount.type !== 'bind') throw new ValidationError('volume', `${JSON.stringify(value)}: propagation ${option} applies to bind mounts only`);
      mount.propagation = option as Propagation;
    } else if (option === 'nocopy') mount.noCopy = true;
    else if (option === 'z' || option === 'Z') continue; // SELinux relabelling: no SELinux here, as Docker without it.
    else throw new ValidationError('volume', `${JSON.stringify(value)}: unknown option ${JSON.stringify(option)} (ro, rw, nocopy, z, Z, [r]shared, [r]slave, [r]private)`);
  }
  return checkMount(mount, 'volume');
}

function parseSize(field: string, text: string): number {
  const match = /^(\d+)([bkmg]?)$/i.exec(text);
  if (!match) throw new ValidationError(field, `${JSON.stringify(text)} is not a size (such as 64m)`);
  const unit = { '': 1, b: 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[match[2].toLowerCase()] as number;
  return Number(match[1]) * unit;
}

/** `--mount type=bind|volume|tmpfs,source=...,target=...[,readonly][,bind-propagation=...]...`. */
export function parseMountFlag(value: string): VolumeMount {
  const fields = new Map<string, string>();
  for (const item of splitOptions(value)) {
    const eq = item.indexOf('=');
    fields.set((eq < 0 ? item : item.slice(0, eq)).toLowerCase(), eq < 0 ? 'true' : item.slice(eq + 1));
  }
  const type = fields.get('type') ?? 'volume';
  if (type !== 'bind' && type !== 'volume' && type !== 'tmpfs') throw new ValidationError('mount', `type ${JSON.stringify(type)} is not bind, volume or tmpfs`);
  const target = fields.get('target') ?? fields.get('destination') ?? fields.get('dst');
  if (!target) throw new ValidationError('mount', `${JSON.stringify(value)}: target is required`);
  const mount: VolumeMount = { type, target, source: fields.get('source') ?? fields.get('src') };
  const flag = (name: string): boolean | undefined => {
    const text = fields.get(name);
    if (text === undefined) return undefined;
    if (text === 'true' || text === '1') return true;
    if (text === 'false' || text === '0') return false;
    throw new ValidationError('mount', `${name}=${text}: not a boolean`);
  };
  mount.readOnly = flag('readonly') ?? flag('ro');
  const known = new Set(['type', 'target', 'destination', 'dst', 'source', 'src', 'readonly', 'ro']);
  for (const [key, text] of fields) {
    if (known.has(key)) continue;
    if (key === 'bind-propagation' && type === 'bind') {
      if (!(PROPAGATIONS as readonly string[]).includes(text)) throw new ValidationError('mount', `bind-propagation=${text}: not one of ${PROPAGATIONS.join(', ')}`);
      mount.propagation = text as Propagation;
    } else if (key === 'volume-nocopy' && type === 'volume') mount.noCopy = flag(key);
    else if (key === 'tmpfs-size' && type === 'tmpfs') mount.tmpfsSize = parseSize('mount.tmpfs-size', text);
    else if (key === 'tmpfs-mode' && type === 'tmpfs') {
      if (!/^[0-7]{1,4}$/.test(text)) throw new ValidationError('mount', `tmpfs-mode=${text}: not an octal mode`);
      mount.tmpfsMode = parseInt(text, 8);
    } else throw new ValidationError('mount', `unknown option ${JSON.stringify(key)} for type=${type}`);
  }
  if (type === 'tmpfs') mount.options = ['nosuid', 'nodev'];
  return checkMount(mount, 'mount');
}

function checkMount(mount: VolumeMount, field: string): VolumeMount {
  if (!mount.target.startsWith('/')) throw new ValidationError(field, `the target ${JSON.stringify(mount.target)} must be an absolute path`);
  if (path.posix.normalize(mount.target) === '/') throw new ValidationError(field, 'the target cannot be /');
  if (mount.type === 'bind' && !mount.source?.startsWith('/')) throw new ValidationError(field, `the bind source ${JSON.stringify(mount.source ?? '')} must be an absolute path`);
  if (mount.type === 'tmpfs' && mount.source) throw new ValidationError(field, 'a tmpfs mount has no source');
  return mount;
}

/**
 * The propagation the container's root needs: rshared when a mount is to
 * share with the host both ways, rslave when one only receives, else
 * rprivate (Docker's choices).
 */
export function rootPropagationFor(mounts: readonly VolumeMount[]): 'rprivate' | 'rslave' | 'rshared' {
  if (mounts.some((m) => m.propagation?.endsWith('shared'))) return 'rshared';
  return mounts.some((m) => m.propagation?.endsWith('slave')) ? 'rslave' : 'rprivate';
}

export interface ResolvedMounts {
  mounts: Mount[];
  /** Anonymous volumes made for this container, removed with it under --rm. */
  anonymous: string[];
  /** Named volumes the container uses (for `volume rm`'s in-use check). */
  volumes: string[];
}

function checkBindSource(mount: VolumeMount, index: number): string {
  const source = path.resolve(mount.source as string);
  try {
    fs.statSync(source);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw syscallErrorFrom(`mounts[${index}]`, err, 'bind source');
    if (!mount.createSource) throw new ValidationError(`mounts[${index}].source`, `bind source path does not exist: ${source}`);
    fs.mkdirSync(source, { recursive: true, mode: 0o755 });
  }
  return source;
}

/**
 * Docker's copy-up: a volume that was never used takes the content the
 * image has at the target (ownership, modes and links kept), so that a
 * volume on /var/lib/x starts with what the image put there.
 */
function populateVolume(volumes: VolumeStore, name: string, rootfs: string, target: string): void {
  const data = volumes.dataDir(name);
  if (!volumes.isPopulated(name) && fs.readdirSync(data).length === 0) {
    const from = resolveInRoot(rootfs, target);
    if (fs.existsSync(from) && fs.statSync(from).isDirectory()) {
      // Loaded here: child_process would weigh on every run's start, and only a first use of a volume copies.
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const { execFileSync } = require('node:child_process') as typeof import('node:child_process');
      execFileSync('cp', ['-a', '--', `${from}/.`, data], { stdio: ['ignore', 'ignore', 'pipe'] });
    }
  }
  volumes.markPopulated(name);
}

/** The OCI mounts for `mounts`; volumes are created on first use. The caller holds the store lock. */
export function resolveMounts(mounts: readonly VolumeMount[], rootfs: string, storeRoot: string): ResolvedMounts {
  const volumes = new VolumeStore(storeRoot);
  const result: ResolvedMounts = { mounts: [], anonymous: [], volumes: [] };
  const seen = new Set<string>();
  mounts.forEach((mount, i) => {
    const destination = path.posix.normalize(mount.target);
    if (seen.has(destination)) throw new ValidationError(`mounts[${i}].target`, `duplicate mount point: ${destination}`);
    seen.add(destination);
    const access = mount.readOnly ? 'ro' : 'rw';
    if (mount.type === 'tmpfs') {
      const sized = [...(mount.tmpfsSize !== undefined ? [`size=${mount.tmpfsSize}`] : []), ...(mount.tmpfsMode !== undefined ? [`mode=${mount.tmpfsMode.toString(8)}`] : [])];
      result.mounts.push({ destination, type: 'tmpfs', source: 'tmpfs', options: [...(mount.options ?? []), ...sized, access] });
      return;
    }
    let source: string;
    if (mount.type === 'bind') {
      source = checkBindSource(mount, i);
    } else {
      const name = mount.source ?? randomHex(32);
      volumes.create(name, { anonymous: mount.source === undefined });
      if (mount.source === undefined) result.anonymous.push(name);
      result.volumes.push(name);
      if (!mount.noCopy) populateVolume(volumes, name, rootfs, destination);
      source = volumes.dataDir(name);
    }
    result.mounts.push({ destination, type: 'bind', source, options: ['rbind', access, mount.propagation ?? 'rprivate'] });
  });
  return result;
}

/** Where the volume commands find the store: `root` or $TSRUN_ROOT or /var/lib/tsrun. */
export interface VolumeLocation {
  root?: string;
}

async function withVolumes<T>(location: VolumeLocation, body: (volumes: VolumeStore, root: string) => T): Promise<T> {
  const { storeLockFile, storeRoot } = await import('./image-container');
  const root = storeRoot(location);
  fs.mkdirSync(root, { recursive: true, mode: 0o700 });
  return withFileLock(storeLockFile(root), 'exclusive', () => body(new VolumeStore(root), root));
}

export function createVolume(name: string, options: VolumeLocation & { labels?: Record<string, string> } = {}): Promise<VolumeRecord> {
  return withVolumes(options, (volumes) => volumes.create(name, { labels: options.labels }));
}

export function listVolumes(options: VolumeLocation = {}): Promise<VolumeRecord[]> {
  return withVolumes(options, (volumes) => volumes.list());
}

export function inspectVolume(name: string, options: VolumeLocation = {}): Promise<VolumeRecord> {
  return withVolumes(options, (volumes) => volumes.inspect(name));
}

/** The containers (running or not) that name each volume. */
function volumeUsers(root: string): Map<string, string[]> {
  const users = new Map<string, string[]>();
  for (const record of new ContainerStore(root).list()) {
    for (const name of record.hostConfig.volumes ?? []) users.set(name, [...(users.get(name) ?? []), record.id]);
  }
  return users;
}

/** Refuses a volume that a container (running or not) still names, unless `force`. */
export function removeVolume(name: string, options: VolumeLocation & { force?: boolean } = {}): Promise<void> {
  return withVolumes(options, (volumes, root) => volumes.remove(name, volumeUsers(root).get(name) ?? [], options.force));
}

export interface VolumeUsage {
  total: number;
  /** Named by a container. */
  active: number;
  size: number;
  reclaimable: number;
}

/** `docker volume prune`: the anonymous volumes no container names (`all`: named ones too); their names and the bytes freed. */
export function pruneVolumes(options: VolumeLocation & { all?: boolean } = {}): Promise<{ removed: string[]; reclaimedBytes: number }> {
  return withVolumes(options, (volumes, root) => {
    const users = volumeUsers(root);
    const removed: string[] = [];
    let reclaimedBytes = 0;
    for (const volume of volumes.list()) {
      if (users.has(volume.Name) || !(volume.Anonymous || options.all)) continue;
      reclaimedBytes += treeSize(volumes.dataDir(volume.Name));
      volumes.remove(volume.Name, []);
      removed.push(volume.Name);
    }
    return { removed, reclaimedBytes };
  });
}

/** The Local Volumes row of `system df`. */
export function volumeUsage(options: VolumeLocation = {}): Promise<VolumeUsage> {
  return withVolumes(options, (volumes, root) => {
    const users = volumeUsers(root);
    const usage: VolumeUsage = { total: 0, active: 0, size: 0, reclaimable: 0 };
    for (const volume of volumes.list()) {
      const size = treeSize(volumes.dataDir(volume.Name));
      usage.total++;
      usage.size += size;
      if (users.has(volume.Name)) usage.active++;
      else usage.reclaimable += size;
    }
    return usage;
  });
}
