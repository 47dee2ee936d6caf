import fs = require('node:fs');
import path = require('node:path');
import { ValidationError } from '../errors';
import type { Logger } from '../logger';
import { MNT_DETACH, MS } from '../linux/mounts';
import { ProcessIdentity, isRunning, ownIdentity, processStartTime } from '../linux/proc';
import { loadNative } from '../native';
import { LOCAL_HOSTS, containerResolvConf } from '../storage/init-layer';
import { writeFileAtomic } from '../util/atomic-file';
import { withFileLock } from '../util/file-lock';
import { listDir, readJsonOrNull } from '../util/json-files';
import { CniResult, NetworkConfigList, RuntimeTarget, addNetworkList, checkNetworkList, deleteNetworkList } from './cni';
import { DEFAULT_NETWORK, NetworkStore } from './networks';
import type { PortMapping } from './ports';

const IFNAME = 'eth0';

/** What a container asks of its network (`--network NAME -p ... --dns ... --add-host ...`). */
export interface NetworkRequest {
  network: string;
  publish?: PortMapping[];
  dns?: string[];
  dnsSearch?: string[];
  /** `name:ip`, as `--add-host`. */
  addHosts?: string[];
}

/**
 * `<root>/networks/attachments/<container-id>.json`: the configuration
 * and result of a container's ADD, which its DEL must be given (the CNI
 * spec's cache), and what the name resolution of its network needs.
 * Written before the ADD, so that a tsrun killed during it leaves
 * something for the next one to clean up.
 */
export interface AttachmentRecord {
  containerId: string;
  containerName: string;
  hostname: string;
  network: string;
  ifName: string;
  /** A bind mount of the container's network namespace, so that DEL can still enter it after the container has exited. */
  netns: string;
  config: NetworkConfigList;
  runtimeConfig: { portMappings: PortMapping[] };
  /** The container's /etc/hosts and /etc/resolv.conf (in its -init layer), rewritten from the result. */
  hostsFile: string;
  resolvConfFile: string;
  addHosts: [string, string][];
  dns: string[];
  dnsSearch: string[];
  /** The tsrun process that attached it, and the container's init once started: when both are gone, the attachment is left over. */
  owner: ProcessIdentity;
  pid?: number;
  pidStartTime?: number;
  result?: CniResult;
}

export function parseAddHost(value: string): [string, string] {
  const at = value.indexOf(':');
  const [name, ip] = at < 0 ? [value, ''] : [value.slice(0, at), value.slice(at + 1)];
  if (!/^[a-zA-Z0-9]([a-zA-Z0-9.-]*[a-zA-Z0-9])?$/.test(name) || !/^((\d{1,3}\.){3}\d{1,3}|[0-9a-fA-F:]*:[0-9a-fA-F:.]*)$/.test(ip)) {
    throw new ValidationError('add-host', `${JSON.stringify(value)} is not HOST:IP`);
  }
  return [name, ip];
}

function attachmentsDir(root: string): string {
  return path.join(root, 'networks', 'attachments');
}

function recordFile(root: string, containerId: string): string {
  return path.join(attachmentsDir(root), `${containerId}.json`);
}

function save(root: string, record: AttachmentRecord): void {
  fs.mkdirSync(attachmentsDir(root), { recursive: true, mode: 0o700 });
  writeFileAtomic(recordFile(root, record.containerId), `${JSON.stringify(record, null, 2)}\n`, { durable: false });
}

/** Every attachment; one removed by its owner while we list is left out. */
export function listAttachments(root: string): AttachmentRecord[] {
  return listDir(attachmentsDir(root))
    .filter((e) => e.endsWith('.json'))
    .map((e) => readJsonOrNull<AttachmentRecord>(path.join(attachmentsDir(root), e)))
    .filter((r): r is AttachmentRecord => r !== null);
}

export function findAttachment(root: string, containerId: string): AttachmentRecord | null {
  return readJsonOrNull<AttachmentRecord>(recordFile(root, containerId));
}

/** The container's IPv4 address on its network, without the prefix length. */
export function attachmentAddress(record: AttachmentRecord): string | undefined {
  return record.result?.ips?.find((ip) => ip.address.includes('.'))?.address.split('/')[0];
}

/**
 * /etc/hosts: localhost, the container itself, then (on a user network,
 * as Docker's embedded DNS would answer) every other container of the
 * network by name, then --add-host entries.
 */
function hostsContent(self: AttachmentRecord, members: AttachmentRecord[]): string {
  const lines = [...LOCAL_HOSTS];
  const own = attachmentAddress(self);
  const names = (r: AttachmentRecord): string => [...new Set([r.hostname, r.containerName])].join(' ');
  if (own) lines.push(`${own}\t${names(self)}`);
  if (self.network !== DEFAULT_NETWORK) {
    for (const member of members) {
      const address = attachmentAddress(member);
      if (member.containerId !== self.containerId && address) lines.push(`${address}\t${names(member)}`);
    }
  }
  for (const [name, ip] of self.addHosts) lines.push(`${ip}\t${name}`);
  return `${lines.join('\n')}\n`;
}

function resolvConfContent(record: AttachmentRecord): string {
  const host = containerResolvConf(readOr('/etc/resolv.conf', ''));
  if (record.dns.length === 0 && record.dnsSearch.length === 0) return host;
  const kept = host.split('\n').filter((line) => {
    if (record.dns.length > 0 && /^\s*nameserver\s/.test(line)) return false;
    if (record.dnsSearch.length > 0 && /^\s*(search|domain)\s/.test(line)) return false;
    return line.trim() !== '';
  });
  const extra = [...record.dns.map((ns) => `nameserver ${ns}`), ...(record.dnsSearch.length > 0 ? [`search ${record.dnsSearch.join(' ')}`] : [])];
  return `${[...extra, ...kept].join('\n')}\n`;
}

function readOr(file: string, fallback: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return fallback;
  }
}

/**
 * In place (same inode): the file sits in a lower layer of a mounted
 * overlay, which reads through to it. A running container may be reading
 * it, so an unchanged file is left alone, and a changed one is never
 * empty in between (overwritten, then cut to length).
 */
function rewrite(file: string, content: string): void {
  const data = Buffer.from(content);
  const fd = fs.openSync(file, 'r+');
  try {
    const current = fs.readFileSync(fd);
    if (current.equals(data)) return;
    fs.writeSync(fd, data, 0, data.length, 0);
    fs.ftruncateSync(fd, data.length);
  } finally {
    fs.closeSync(fd);
  }
}

function members(root: string, network: string): AttachmentRecord[] {
  return listAttachments(root)
    .filter((r) => r.network === network && r.result)
    .sort((a, b) => a.containerName.localeCompare(b.containerName));
}

async function refreshNetworkHosts(root: string, network: string, logger: Logger): Promise<void> {
  if (network === DEFAULT_NETWORK) return;
  await withFileLock(new NetworkStore(root).lockFile, 'exclusive', () => {
    const all = members(root, network);
    for (const member of all) {
      try {
        rewrite(member.hostsFile, hostsContent(member, all));
      } catch (err) {
        logger.warn({ err, container: member.containerId }, 'could not update the hosts file of a container');
      }
    }
  });
}

function isMountPoint(file: string): boolean {
  try {
    return fs.statSync(file).dev !== fs.statSync(path.dirname(file)).dev;
  } catch {
    return false;
  }
}

function target(record: AttachmentRecord, netns: string): RuntimeTarget {
  return { containerId: record.containerId, netns, ifName: record.ifName, runtimeConfig: record.runtimeConfig };
}

/**
 * CNI DEL with the cached result, inside the container's namespace while
 * its bind mount holds it (the bridge plugin removes the masquerade rule
 * only then), then the mount, the record and the container's name in the
 * network's other hosts files.
 */
export async function detachRecord(root: string, record: AttachmentRecord, logger: Logger): Promise<void> {
  const held = isMountPoint(record.netns);
  try {
    deleteNetworkList(record.config, target(record, held ? record.netns : ''), record.result);
    // Only once DEL went through: a record left behind is retried by the next cleanup.
    fs.rmSync(recordFile(root, record.containerId), { force: true });
  } finally {
    if (held) loadNative().umount2(record.netns, MNT_DETACH);
    fs.rmSync(record.netns, { force: true });
  }
  await refreshNetworkHosts(root, record.network, logger);
}

/** CNI CHECK: each plugin confirms that the container's network is still as its ADD left it; throws the first complaint. */
export function checkAttachment(record: AttachmentRecord): void {
  if (!record.result) throw new ValidationError('network', `container ${record.containerName} has no network result to check`);
  checkNetworkList(record.config, target(record, record.netns), record.result);
}

/** A container's place on a network, from before its process starts until after it exits. */
export class NetworkAttachment {
  private attached = false;

  private constructor(
    private readonly root: string,
    readonly record: AttachmentRecord,
    private readonly logger: Logger,
  ) {}

  /** Finds the network (the default one is created on first use) and checks the request; nothing is set up yet. */
  static async prepare(
    root: string,
    stateDir: string,
    container: { id: string; name: string; hostname: string; hostsFile: string; resolvConfFile: string },
    request: NetworkRequest,
    logger: Logger,
  ): Promise<NetworkAttachment> {
    const networks = new NetworkStore(root);
    fs.mkdirSync(networks.dir, { recursive: true, mode: 0o700 });
    const network = await withFileLock(networks.lockFile, 'exclusive', () => networks.find(request.network));
    const record: AttachmentRecord = {
      containerId: container.id,
      containerName: container.name,
      hostname: container.hostname,
      network: network.name,
      ifName: IFNAME,
      netns: path.join(stateDir, 'netns', container.id),
      config: network.config,
      runtimeConfig: { portMappings: request.publish ?? [] },
      hostsFile: container.hostsFile,
      resolvConfFile: container.resolvConfFile,
      addHosts: (request.addHosts ?? []).map(parseAddHost),
      dns: request.dns ?? [],
      dnsSearch: request.dnsSearch ?? [],
      owner: ownIdentity(),
    };
    return new NetworkAttachment(root, record, logger);
  }

  /**
   * Runs while the child waits at its sync point (so synchronously): holds
   * its network namespace with a bind mount, runs the ADD, writes the
   * container's hosts and resolv.conf from the result.
   */
  attach(pid: number): void {
    const { record } = this;
    fs.mkdirSync(path.dirname(record.netns), { recursive: true, mode: 0o700 });
    fs.writeFileSync(record.netns, '', { mode: 0o600 });
    loadNative().mount(`/proc/${pid}/ns/net`, record.netns, null, MS.BIND, null);
    this.attached = true;
    save(this.root, record);
    record.result = addNetworkList(record.config, target(record, record.netns));
    save(this.root, record);
    rewrite(record.hostsFile, hostsContent(record, members(this.root, record.network)));
    rewrite(record.resolvConfFile, resolvConfContent(record));
  }

  /** Records the container's init, and tells the network's other containers its name. */
  async started(pid: number): Promise<void> {
    if (!this.attached) return;
    Object.assign(this.record, { pid, pidStartTime: processStartTime(pid) ?? undefined });
    save(this.root, this.record);
    await refreshNetworkHosts(this.root, this.record.network, this.logger);
  }

  async detach(): Promise<void> {
    if (!this.attached) return;
    this.attached = false;
    await detachRecord(this.root, this.record, this.logger);
  }
}

/**
 * Attachments whose tsrun and container are both gone (tsrun was killed):
 * their DEL never ran. Runs it now, so that no address, port mapping or
 * iptables rule stays behind.
 */
export async function removeLeftoverAttachments(root: string, logger: Logger): Promise<{ removed: string[]; failed: { id: string; error: unknown }[] }> {
  const removed: string[] = [];
  const failed: { id: string; error: unknown }[] = [];
  for (const record of listAttachments(root)) {
    if (isRunning(record.owner.pid, record.owner.startTime)) continue;
    if (record.pid !== undefined && isRunning(record.pid, record.pidStartTime)) continue;
    try {
      await detachRecord(root, record, logger);
      removed.push(record.containerId);
    } catch (error) {
      failed.push({ id: record.containerId, error });
    }
  }
  return { removed, failed };
}
