import fs = require('node:fs');
import path = require('node:path');
import { ConflictError, ValidationError } from '../errors';
import type { ProcessIdentity } from '../linux/proc';
import type { LinuxResources } from '../oci/runtime-spec';
import { writeFileAtomic } from '../util/atomic-file';
import { listDir } from '../util/json-files';
import { randomHex } from '../util/random';
import type { PrivilegeOptions } from './options';

export type ContainerStatus = 'creating' | 'created' | 'running' | 'stopped';

/** What /run/tsrun/<id>/state.json holds: the OCI state plus tsrun's own. */
export interface ContainerState {
  ociVersion: string;
  id: string;
  name: string;
  status: ContainerStatus;
  pid: number;
  /** The init's start time (see linux/proc.ts), which tells a live init from a reused pid. */
  pidStartTime?: number;
  /** The process that started the container and records its exit; while it lives, the container is looked after. */
  owner?: ProcessIdentity;
  bundle: string;
  rootfs: string;
  created: string;
  startedAt?: string;
  finishedAt?: string;
  exitCode?: number;
  /** Whether the OOM killer ended the container (recorded at exit). */
  oomKilled?: boolean;
  command: string[];
  /** The limits asked for at run, as `tsrun update` last changed them. */
  resources?: LinuxResources;
  /** Remove the container once it exits (`run --rm`). */
  autoRemove?: boolean;
  /** What exec gives the container's new processes. */
  privileges?: PrivilegeOptions;
}

const NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

export function newContainerId(): string {
  return randomHex(32);
}

export function validateName(name: string): void {
  if (!NAME.test(name) || name.length > 128) {
    throw new ValidationError('name', `invalid container name ${JSON.stringify(name)}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed`);
  }
}

function unlinkIfPresent(file: string): void {
  try {
    fs.unlinkSync(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}

/** A container's state directory holds only files: one unlink each, where rmSync would walk it. */
function removeFlatDir(dir: string): void {
  for (const entry of listDir(dir)) unlinkIfPresent(path.join(dir, entry));
  try {
    fs.rmdirSync(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}

/**
 * The runtime state directory (default /run/tsrun): one directory per
 * container, and `names/<name>` symlinks whose atomic creation is what
 * makes a name unique across concurrent tsrun processes.
 */
export class StateStore {
  constructor(readonly root: string) {}

  containerDir(id: string): string {
    return path.join(this.root, id);
  }

  /** Reserves `name` for `id` and creates the container's directory. */
  create(state: ContainerState): void {
    const nameLink = path.join(this.root, 'names', state.name);
    try {
      this.linkName(state.id, nameLink);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const holder = path.basename(fs.readlinkSync(nameLink));
      if (fs.existsSync(this.containerDir(holder))) {
        throw new ConflictError(`the container name "${state.name}" is already in use by container ${holder}; remove that container to reuse the name`);
      }
      // The holder is gone (a crash between the two steps): take the name over.
      unlinkIfPresent(nameLink);
      fs.symlinkSync(`../${state.id}`, nameLink);
    }
    try {
      fs.mkdirSync(this.containerDir(state.id), { mode: 0o700 });
      this.save(state);
    } catch (err) {
      unlinkIfPresent(nameLink);
      throw err;
    }
  }

  /** The directory of names is made when the first link finds it missing, not checked at every start. */
  private linkName(id: string, nameLink: string): void {
    try {
      fs.symlinkSync(`../${id}`, nameLink);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      fs.mkdirSync(path.dirname(nameLink), { recursive: true, mode: 0o700 });
      fs.symlinkSync(`../${id}`, nameLink);
    }
  }

  save(state: ContainerState): void {
    writeFileAtomic(path.join(this.containerDir(state.id), 'state.json'), `${JSON.stringify(state, null, 2)}\n`, { durable: false });
  }

  /** Every container with state here; ones being removed right now are skipped. */
  list(): ContainerState[] {
    let entries: string[];
    try {
      entries = fs.readdirSync(this.root);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
    const states: ContainerState[] = [];
    for (const entry of entries.filter((e) => /^[0-9a-f]{64}$/.test(e))) {
      try {
        states.push(this.load(entry));
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      }
    }
    return states;
  }

  load(id: string): ContainerState {
    return JSON.parse(fs.readFileSync(path.join(this.containerDir(id), 'state.json'), 'utf8')) as ContainerState;
  }

  remove(state: Pick<ContainerState, 'id' | 'name'>): void {
    const nameLink = path.join(this.root, 'names', state.name);
    try {
      if (path.basename(fs.readlinkSync(nameLink)) === state.id) unlinkIfPresent(nameLink);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    removeFlatDir(this.containerDir(state.id));
  }
}
