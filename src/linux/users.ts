import { NotFoundError, ValidationError } from '../errors';
import { readFileInRoot } from './path-in-root';

export interface PasswdEntry {
  name: string;
  uid: number;
  gid: number;
  home: string;
  shell: string;
}

export interface GroupEntry {
  name: string;
  gid: number;
  members: string[];
}

export interface ResolvedUser {
  uid: number;
  gid: number;
  additionalGids: number[];
  home: string;
}

const NUMERIC = /^\d+$/;
const MAX_ID = 0xfffffffe;

function parseId(text: string): number | undefined {
  if (!NUMERIC.test(text)) return undefined;
  const id = Number(text);
  return id <= MAX_ID ? id : undefined;
}

export function parsePasswd(text: string): PasswdEntry[] {
  const entries: PasswdEntry[] = [];
  for (const line of text.split('\n')) {
    if (line.trim() === '' || line.startsWith('#')) continue;
    const [name, , uid, gid, , home, shell] = line.split(':');
    const u = parseId(uid ?? '');
    const g = parseId(gid ?? '');
    if (!name || u === undefined || g === undefined) continue;
    entries.push({ name, uid: u, gid: g, home: home || '/', shell: shell ?? '' });
  }
  return entries;
}

export function parseGroup(text: string): GroupEntry[] {
  const entries: GroupEntry[] = [];
  for (const line of text.split('\n')) {
    if (line.trim() === '' || line.startsWith('#')) continue;
    const [name, , gid, members] = line.split(':');
    const g = parseId(gid ?? '');
    if (!name || g === undefined) continue;
    entries.push({ name, gid: g, members: (members ?? '').split(',').map((m) => m.trim()).filter(Boolean) });
  }
  return entries;
}

/**
 * Resolves Docker's `--user` (`name|uid[:group|gid]`) against the root
 * filesystem's /etc/passwd and /etc/group, as Docker and runc do: a numeric
 * uid need not exist (its gid is then 0 and home is /), a name must; the
 * supplementary groups are the groups that list the user as a member.
 */
export function resolveUser(root: string, spec: string | undefined): ResolvedUser {
  const text = (spec ?? '').trim();
  const [userPart, groupPart, ...extra] = text === '' ? ['0'] : text.split(':');
  if (extra.length > 0 || userPart === '' || groupPart === '') {
    throw new ValidationError('user', `${JSON.stringify(spec)} is not of the form name|uid[:group|gid]`);
  }
  const passwd = parsePasswd(readFileInRoot(root, '/etc/passwd') ?? '');
  const uidNumber = parseId(userPart);
  const entry = uidNumber !== undefined ? passwd.find((p) => p.uid === uidNumber) : passwd.find((p) => p.name === userPart);
  if (uidNumber === undefined && NUMERIC.test(userPart)) throw new ValidationError('user', `uid ${userPart} is out of range`);
  if (uidNumber === undefined && !entry) {
    throw new NotFoundError('user', userPart, `unable to find user ${userPart}: no matching entries in passwd file`);
  }

  const groups = parseGroup(readFileInRoot(root, '/etc/group') ?? '');
  let gid = entry?.gid ?? 0;
  if (groupPart !== undefined) {
    const gidNumber = parseId(groupPart);
    if (gidNumber !== undefined) {
      gid = gidNumber;
    } else if (NUMERIC.test(groupPart)) {
      throw new ValidationError('user', `gid ${groupPart} is out of range`);
    } else {
      const group = groups.find((g) => g.name === groupPart);
      if (!group) throw new NotFoundError('group', groupPart, `unable to find group ${groupPart}: no matching entries in group file`);
      gid = group.gid;
    }
  }
  const additional = entry ? groups.filter((g) => g.members.includes(entry.name)).map((g) => g.gid) : [];
  return {
    uid: uidNumber ?? (entry as PasswdEntry).uid,
    gid,
    additionalGids: [...new Set(additional)].filter((g) => g !== gid),
    home: entry?.home ?? '/',
  };
}
