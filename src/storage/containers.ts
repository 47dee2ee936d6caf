import fs = require('node:fs');
import path = require('node:path');
import { ConflictError, NotFoundError, ValidationError } from '../errors';
import type { LinuxResources, Mount } from '../oci/runtime-spec';
import { writeFileAtomic } from '../util/atomic-file';
import type { PrivilegeOptions } from '../runtime/options';

export type ContainerStatus = 'created' | 'running' | 'exited';

/** What `<root>/containers/<id>/container.json` holds for a container made from an image. */
export interface ContainerRecord {
  id: string;
  name: string;
  created: string;
  /** The image as the user named it, and the id it resolved to. */
  image: string;
  imageId: string;
  /** The image's layers by diff ID, lowest first: what this container keeps alive. */
  layers: string[];
  /** The process as started (entrypoint and command already merged). */
  args: string[];
  env: string[];
  cwd: string;
  user: string;
  hostname?: string;
  hostConfig: {
    autoRemove: boolean;
    readOnly: boolean;
    network: string;
    /** Named volumes it mounts. */
    volumes?: string[];
    /** Its -v/--mount/--tmpfs mounts, as OCI mounts (a volume's source is its _data directory). */
    mounts?: Mount[];
    /** The limits asked for at run, as `tsrun update` last changed them. */
    resources?: LinuxResources;
    /** What exec gives the container's new processes. */
    privileges?: PrivilegeOptions;
  };
  state: {
    status: ContainerStatus;
    pid: number;
    /** The init's start time (see linux/proc.ts), which tells a live init from a reused pid. */
    pidStartTime?: number;
    /** The process that started the container and records its exit; while it lives, the container is looked after. */
    owner?: { pid: number; startTime: number };
    startedAt?: string;
    finishedAt?: string;
    exitCode?: number;
    /** Whether the OOM killer ended the container (recorded at exit). */
    oomKilled?: boolean;
  };
}

const NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

/**
 * The containers of a store, made from its images. Names are links,
 * `containers/names/<name> -> ../<id>`, whose atomic creation makes them
 * unique. Callers hold the store lock for create and remove, so that
 * garbage collection never sees half a container.
 */
export class ContainerStore {
  readonly dir: string;

  constructor(storeRoot: string) {
    this.dir = path.join(storeRoot, 'containers');
  }

  private recordFile(id: string): string {
    return path.join(this.dir, id, 'container.json');
  }

  private nameLink(name: string): string {
    return path.join(this.dir, 'names', name);
  }

  create(record: ContainerRecord): void {
    if (!NAME.test(record.name) || record.name.length > 128) {
      throw new ValidationError('name', `invalid container name ${JSON.stringify(record.name)}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed`);
    }
    fs.mkdirSync(path.join(this.dir, 'names'), { recursive: true, mode: 0o700 });
    try {
      fs.symlinkSync(`../${record.id}`, this.nameLink(record.name));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const holder = path.basename(fs.readlinkSync(this.nameLink(record.name)));
      throw new ConflictError(`the container name "${record.name}" is already in use by container ${holder.slice(0, 12)}; remove that container to reuse the name`);
    }
    try {
      fs.mkdirSync(path.join(this.dir, record.id), { mode: 0o700 });
      this.save(record);
    } catch (err) {
      fs.rmSync(this.nameLink(record.name), { force: true });
      fs.rmSync(path.join(this.dir, record.id), { recursive: true, force: true });
      throw err;
    }
  }

  save(record: ContainerRecord): void {
    writeFileAtomic(this.recordFile(record.id), `${JSON.stringify(record, null, 2)}\n`, { durable: true });
  }

  /** Applies `change` to the stored record and saves it. */
  update(id: string, change: (record: ContainerRecord) => void): ContainerRecord {
    const record = this.load(id);
    change(record);
    this.save(record);
    return record;
  }

  load(id: string): ContainerRecord {
    return JSON.parse(fs.readFileSync(this.recordFile(id), 'utf8')) as ContainerRecord;
  }

  list(): ContainerRecord[] {
    let entries: string[];
    try {
      entries = fs.readdirSync(this.dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
    const records: ContainerRecord[] = [];
    for (const entry of entries) {
      if (!/^[0-9a-f]{64}$/.test(entry)) continue;
      try {
        records.push(this.load(entry));
      } catch (err) {
        // Being created or removed by another process right now.
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      }
    }
    return records;
  }

  /** By name, full id or unique id prefix, as Docker resolves a container. */
  find(reference: string): ContainerRecord {
    try {
      return this.load(path.basename(fs.readlinkSync(this.nameLink(reference))));
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT' && code !== 'EINVAL' && code !== 'ENAMETOOLONG') throw err;
    }
    if (/^[0-9a-f]+$/.test(reference)) {
      const matches = this.list().filter((r) => r.id.startsWith(reference));
      if (matches.length === 1) return matches[0];
      if (matches.length > 1) throw new ConflictError(`container id prefix ${reference} is ambiguous: it matches ${matches.length} containers`);
    }
    throw new NotFoundError('container', reference, `No such container: ${reference}`);
  }

  remove(record: Pick<ContainerRecord, 'id' | 'name'>): void {
    try {
      if (path.basename(fs.readlinkSync(this.nameLink(record.name))) === record.id) fs.rmSync(this.nameLink(record.name), { force: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    fs.rmSync(path.join(this.dir, record.id), { recursive: true, force: true });
  }
}
