import fs = require('node:fs');
import path = require('node:path');
import { ConflictError, NotFoundError, ValidationError } from '../errors';
import { writeFileAtomic } from '../util/atomic-file';
import { listDir, readJsonOrNull } from '../util/json-files';

/** What `<root>/volumes/<name>/volume.json` holds; the data is in `<root>/volumes/<name>/_data`. */
export interface VolumeRecord {
  Name: string;
  Driver: 'local';
  Mountpoint: string;
  CreatedAt: string;
  Labels: Record<string, string>;
  /** An anonymous volume (`-v /data`) goes with the container that made it when that one is removed with --rm. */
  Anonymous?: boolean;
}

const NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

export function validateVolumeName(name: string): void {
  if (!NAME.test(name) || name.length > 255) {
    throw new ValidationError('volume', `invalid volume name ${JSON.stringify(name)}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed`);
  }
}

/**
 * Named volumes of a store, as Docker's `local` driver keeps them: a
 * directory per volume, created on first use when not made beforehand.
 * Callers hold the store lock for create and remove.
 */
export class VolumeStore {
  readonly dir: string;

  constructor(storeRoot: string) {
    this.dir = path.join(storeRoot, 'volumes');
  }

  private recordFile(name: string): string {
    return path.join(this.dir, name, 'volume.json');
  }

  dataDir(name: string): string {
    return path.join(this.dir, name, '_data');
  }

  /** Creates the volume, or returns the existing one of that name (as `docker volume create` does). */
  create(name: string, options: { labels?: Record<string, string>; anonymous?: boolean } = {}): VolumeRecord {
    validateVolumeName(name);
    const existing = this.get(name);
    if (existing) return existing;
    fs.mkdirSync(this.dir, { recursive: true, mode: 0o701 });
    const staging = fs.mkdtempSync(path.join(this.dir, `.${name}-`));
    const record: VolumeRecord = {
      Name: name,
      Driver: 'local',
      Mountpoint: this.dataDir(name),
      CreatedAt: new Date().toISOString(),
      Labels: options.labels ?? {},
      ...(options.anonymous ? { Anonymous: true } : {}),
    };
    try {
      fs.mkdirSync(path.join(staging, '_data'), { mode: 0o755 });
      writeFileAtomic(path.join(staging, 'volume.json'), `${JSON.stringify(record, null, 2)}\n`, { durable: true });
      fs.renameSync(staging, path.join(this.dir, name));
    } catch (err) {
      fs.rmSync(staging, { recursive: true, force: true });
      const code = (err as NodeJS.ErrnoException).code;
      // Made by a concurrent run meanwhile: that one is the volume.
      if ((code === 'ENOTEMPTY' || code === 'EEXIST') && this.get(name)) return this.get(name) as VolumeRecord;
      throw err;
    }
    return record;
  }

  get(name: string): VolumeRecord | null {
    return readJsonOrNull<VolumeRecord>(this.recordFile(name));
  }

  inspect(name: string): VolumeRecord {
    const record = this.get(name);
    if (!record) throw new NotFoundError('volume', name, `No such volume: ${name}`);
    return record;
  }

  list(): VolumeRecord[] {
    return listDir(this.dir)
      .filter((e) => NAME.test(e))
      .map((e) => this.get(e))
      .filter((r): r is VolumeRecord => r !== null)
      .sort((a, b) => a.Name.localeCompare(b.Name));
  }

  /** `users` are the containers that still name the volume; a volume in use is kept unless `force`. */
  remove(name: string, users: string[], force = false): void {
    this.inspect(name);
    if (users.length > 0 && !force) {
      throw new ConflictError(`remove ${name}: volume is in use by container ${users.map((u) => u.slice(0, 12)).join(', ')}`);
    }
    // Renamed first, so that a half-removed volume is never taken for a live one.
    const doomed = path.join(this.dir, `.${name}-removing-${process.pid}`);
    fs.renameSync(path.join(this.dir, name), doomed);
    fs.rmSync(doomed, { recursive: true, force: true });
  }

  /** True once the volume has been given the image's content (or was used without any). */
  isPopulated(name: string): boolean {
    return fs.existsSync(path.join(this.dir, name, 'populated'));
  }

  markPopulated(name: string): void {
    fs.writeFileSync(path.join(this.dir, name, 'populated'), '');
  }
}
