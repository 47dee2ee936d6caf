import { createHash } from 'node:crypto';
import fs = require('node:fs');
import path = require('node:path');
import { NotFoundError, SyscallError, ValidationError, syscallErrorFrom } from '../errors';
import { loadNative } from '../native';
import type { IdMapping } from '../oci/runtime-spec';
import { serializePlan } from '../runtime/plan';
import { withFileLock } from '../util/file-lock';
import { splitDev } from './devices';
import { isMapped, writeIdMaps } from './idmap';
import { CLONE_NEW } from './namespaces';
import { MNT_DETACH } from './mounts';

/** The user dockerd creates for `--userns-remap default`. */
export const DEFAULT_REMAP_USER = 'dockremap';
/** The size of the range dockerd gives it, and where it starts looking. */
const DEFAULT_RANGE_SIZE = 65536;
const FIRST_SUBORDINATE_ID = 100000;

export interface SubIdFiles {
  subuid: string;
  subgid: string;
  /** The host's users and groups, to look a name up by number or a number by name. */
  passwd?: string;
  group?: string;
}

export const HOST_SUBID_FILES: SubIdFiles = { subuid: '/etc/subuid', subgid: '/etc/subgid', passwd: '/etc/passwd', group: '/etc/group' };

interface SubIdRange {
  owner: string;
  start: number;
  count: number;
}

/** `name:start:count` lines (see subuid(5)); comments and malformed lines are skipped. */
export function parseSubIds(text: string): SubIdRange[] {
  const ranges: SubIdRange[] = [];
  for (const line of text.split('\n')) {
    const m = /^([^:#\s][^:]*):(\d+):(\d+)\s*$/.exec(line);
    if (m && Number(m[3]) > 0) ranges.push({ owner: m[1], start: Number(m[2]), count: Number(m[3]) });
  }
  return ranges;
}

function readOptional(file: string | undefined): string {
  if (!file) return '';
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return '';
    throw syscallErrorFrom('userns-remap', err);
  }
}

/** The names a user or group is known by: the name and its number, either way round. */
function aliases(db: string | undefined, who: string): string[] {
  for (const line of readOptional(db).split('\n')) {
    const [name, , id] = line.split(':');
    if (name === who || id === who) return [name, id];
  }
  return [who];
}

/**
 * Container id -> host id maps from the owner's ranges, in file order,
 * end to end from container id 0 (as dockerd does).
 */
function mappingsFor(ranges: SubIdRange[], owners: string[]): IdMapping[] {
  let next = 0;
  return ranges
    .filter((r) => owners.includes(r.owner))
    .map((r) => {
      const m = { containerID: next, hostID: r.start, size: r.count };
      next += r.count;
      return m;
    });
}

/**
 * For `default`, dockerd gives the dockremap user 65536 ids after the
 * highest range in use, when it has none yet; tsrun does the same, under
 * a lock, in both files.
 */
async function ensureDefaultRanges(files: SubIdFiles): Promise<void> {
  await withFileLock(`${files.subuid}.tsrun-lock`, 'exclusive', () => {
    const texts = [readOptional(files.subuid), readOptional(files.subgid)];
    if (texts.every((t) => parseSubIds(t).some((r) => r.owner === DEFAULT_REMAP_USER))) return;
    const end = Math.max(FIRST_SUBORDINATE_ID, ...texts.flatMap((t) => parseSubIds(t).map((r) => r.start + r.count)));
    [files.subuid, files.subgid].forEach((file, i) => {
      if (parseSubIds(texts[i]).some((r) => r.owner === DEFAULT_REMAP_USER)) return;
      const prefix = texts[i] === '' || texts[i].endsWith('\n') ? '' : '\n';
      fs.appendFileSync(file, `${prefix}${DEFAULT_REMAP_USER}:${end}:${DEFAULT_RANGE_SIZE}\n`, { mode: 0o644 });
    });
  });
}

/**
 * The id maps of `docker run --userns-remap default|USER[:GROUP]`: the
 * user's ranges in /etc/subuid and the group's (default: the user's name)
 * in /etc/subgid, so that root in the container is an unprivileged host id.
 */
export async function remapMappings(remap: string, files: SubIdFiles = HOST_SUBID_FILES): Promise<{ uid: IdMapping[]; gid: IdMapping[] }> {
  if (!remap || remap.includes('\n')) throw new ValidationError('usernsRemap', 'is empty');
  if (remap === 'default') await ensureDefaultRanges(files);
  const [user, group = user] = remap === 'default' ? [DEFAULT_REMAP_USER] : remap.split(':');
  const uid = mappingsFor(parseSubIds(readOptional(files.subuid)), aliases(files.passwd, user));
  const gid = mappingsFor(parseSubIds(readOptional(files.subgid)), aliases(files.group, group));
  if (uid.length === 0) throw new NotFoundError('subordinate uid range', user, `usernsRemap: ${user} has no range in ${files.subuid} (add a line such as "${user}:100000:65536")`);
  if (gid.length === 0) throw new NotFoundError('subordinate gid range', group, `usernsRemap: ${group} has no range in ${files.subgid} (add a line such as "${group}:100000:65536")`);
  return { uid, gid };
}

/** The host id that container id `id` maps to. */
export function hostIdOf(mappings: readonly IdMapping[], id: number): number {
  const m = mappings.find((r) => id >= r.containerID && id < r.containerID + r.size);
  if (!m) throw new ValidationError('idMappings', `id ${id} is not mapped`);
  return m.hostID + (id - m.containerID);
}

const SYNC_TIMEOUT_MS = 10_000;

/**
 * An fd of a new user namespace with these maps. Its only process (a
 * child cloned into it, stopped on the sync channel before it could run
 * anything) is killed once the maps are written: the fd alone keeps the
 * namespace, which is all an idmapped mount needs.
 */
export function userNamespaceFd(uid: readonly IdMapping[], gid: readonly IdMapping[]): number {
  const native = loadNative();
  const plan = serializePlan([
    { op: 'SyncSignal', args: [1], phase: 'user namespace' },
    { op: 'SyncWait', phase: 'user namespace' },
    { op: 'Exec', lists: [['/'], ['/'], []], phase: 'user namespace' },
  ]);
  const [parentEnd, childEnd] = native.socketPair();
  let child: { pid: number; pidfd: number; errorFd: number } | undefined;
  try {
    child = native.spawn(plan, { cloneFlags: CLONE_NEW.user, mode: 'fork', syncFd: childEnd, parentSyncFd: parentEnd });
    fs.closeSync(childEnd);
    if (native.syncWait(parentEnd, SYNC_TIMEOUT_MS) !== 1) throw new SyscallError('user namespace', 'sync read', 71 /* EPROTO */, undefined, 'the helper process did not reach its sync point');
    writeIdMaps(child.pid, uid, gid);
    return fs.openSync(`/proc/${child.pid}/ns/user`, 'r');
  } finally {
    if (child) {
      native.pidfdSendSignal(child.pidfd, 9);
      native.waitExit(child.pidfd, true);
      fs.closeSync(child.pidfd);
      fs.closeSync(child.errorFd);
    } else {
      fs.closeSync(childEnd);
    }
    fs.closeSync(parentEnd);
  }
}

/**
 * Idmapped binds of `sources` under `dir` (0, 1, 2...), with the ids of a
 * user namespace that has these maps: files of host root show as the
 * container's root. Returns the mount points; detachIdmapped undoes it.
 */
export function idmappedBinds(sources: readonly string[], dir: string, uid: readonly IdMapping[], gid: readonly IdMapping[]): string[] {
  if (!isMapped(uid, 0) || !isMapped(gid, 0)) throw new ValidationError('idMappings', 'uid 0 and gid 0 must be mapped');
  const native = loadNative();
  const usernsFd = userNamespaceFd(uid, gid);
  const targets: string[] = [];
  try {
    sources.forEach((source, i) => {
      const target = path.join(dir, String(i));
      fs.mkdirSync(target, { recursive: true, mode: 0o700 });
      targets.push(target);
      native.idmapBind(source, target, usernsFd);
    });
    return targets;
  } catch (err) {
    detachIdmapped(targets);
    throw syscallErrorFrom('userns-remap', err, 'idmapped mounts need kernel 5.12+ and a filesystem that supports them');
  } finally {
    fs.closeSync(usernsFd);
  }
}

/** Detaches the binds and removes their mount points, and then `dir` that held them. */
export function detachIdmapped(targets: readonly string[]): void {
  for (const target of targets) {
    try {
      loadNative().umount2(target, MNT_DETACH);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EINVAL' && (err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    removeEmptyDir(target);
  }
  if (targets.length > 0) removeEmptyDir(path.dirname(targets[0]));
}

/** rmdir: never recursive, since a mount that failed to detach must not be emptied. */
function removeEmptyDir(dir: string): void {
  try {
    fs.rmdirSync(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}

/** The host id of a container id, or the id itself where the maps leave it out (it shows as nobody). */
function shiftId(mappings: readonly IdMapping[], id: number): number {
  const m = mappings.find((r) => id >= r.containerID && id < r.containerID + r.size);
  return m ? m.hostID + (id - m.containerID) : id;
}

/**
 * A copy of the tree `src` at `dst` with every owner shifted through the
 * maps, for filesystems that cannot take idmapped mounts: files, links,
 * device nodes (overlay whiteouts), fifos, hard links, extended attributes
 * (trusted.overlay.opaque), modes (set after the chown, which clears
 * set-id bits) and times are kept.
 */
export function shiftedCopy(src: string, dst: string, uid: readonly IdMapping[], gid: readonly IdMapping[]): void {
  const native = loadNative();
  const hardLinks = new Map<string, string>();
  const copy = (from: string, to: string): void => {
    const st = fs.lstatSync(from, { bigint: true });
    const mode = Number(st.mode & 0o7777n);
    const key = `${st.dev}:${st.ino}`;
    if (!st.isDirectory() && st.nlink > 1n && hardLinks.has(key)) {
      fs.linkSync(hardLinks.get(key) as string, to);
      return;
    }
    if (st.isDirectory()) {
      fs.mkdirSync(to, { mode: 0o700 });
      for (const entry of fs.readdirSync(from)) copy(path.join(from, entry), path.join(to, entry));
    } else if (st.isFile()) {
      fs.copyFileSync(from, to, fs.constants.COPYFILE_FICLONE);
    } else if (st.isSymbolicLink()) {
      fs.symlinkSync(fs.readlinkSync(from), to);
    } else if (st.isCharacterDevice() || st.isBlockDevice() || st.isFIFO()) {
      const { major, minor } = splitDev(st.rdev);
      native.mknod(to, Number(st.mode), major, minor);
    } else {
      // A socket is not content: nothing listens on it in a copy.
      return;
    }
    if (st.nlink > 1n && !st.isDirectory()) hardLinks.set(key, to);
    for (const name of native.llistxattr(from)) {
      const value = native.lgetxattr(from, name);
      if (value) native.lsetxattr(to, name, value, 0);
    }
    fs.lchownSync(to, shiftId(uid, Number(st.uid)), shiftId(gid, Number(st.gid)));
    if (!st.isSymbolicLink()) fs.chmodSync(to, mode);
    fs.lutimesSync(to, st.atime, st.mtime);
  };
  copy(src, dst);
}

/**
 * The shifted copy of layer directory `diff` for these maps, made once and
 * kept beside it (`<layer>/remap-<maps>`), so that it goes when the layer
 * does. Made under a temporary name and renamed into place: a concurrent
 * start that made it first wins, and its copy is used.
 */
export function cachedShiftedCopy(diff: string, uid: readonly IdMapping[], gid: readonly IdMapping[]): string {
  const key = createHash('sha256').update(JSON.stringify([uid, gid])).digest('hex').slice(0, 16);
  const target = path.join(path.dirname(diff), `remap-${key}`);
  if (fs.existsSync(target)) return target;
  const staging = `${target}.tmp-${process.pid}-${Date.now()}`;
  try {
    shiftedCopy(diff, staging, uid, gid);
    fs.renameSync(staging, target);
  } catch (err) {
    fs.rmSync(staging, { recursive: true, force: true });
    const code = (err as NodeJS.ErrnoException).code;
    if ((code !== 'ENOTEMPTY' && code !== 'EEXIST') || !fs.existsSync(target)) throw syscallErrorFrom('userns-remap', err, `copying ${diff} with shifted owners`);
  }
  return target;
}
