import fs = require('node:fs');
import path = require('node:path');

export interface InitLayerOptions {
  hostname: string;
  /** `host` copies the host's hosts and resolv.conf as they are; a bridge network rewrites them once the container has its address (networkFiles). */
  network: string;
  /** The host's files, for tests. */
  hostResolvConf?: string;
  hostHosts?: string;
}

/** Docker's fallback when the host has only loopback resolvers, which a container cannot reach. */
const FALLBACK_NAMESERVERS = ['8.8.8.8', '8.8.4.4', '2001:4860:4860::8888', '2001:4860:4860::8844'];

export const LOCAL_HOSTS = [
  '127.0.0.1\tlocalhost',
  '::1\tlocalhost ip6-localhost ip6-loopback',
  'fe00::0\tip6-localnet',
  'ff00::0\tip6-mcastprefix',
  'ff02::1\tip6-allnodes',
  'ff02::2\tip6-allrouters',
];

function isLoopbackNameserver(line: string): boolean {
  const match = /^\s*nameserver\s+(\S+)/.exec(line);
  if (!match) return false;
  const address = match[1].replace(/%.*$/, '');
  return address.startsWith('127.') || address === '::1' || address === '0:0:0:0:0:0:0:1';
}

/**
 * The host's resolv.conf without loopback nameservers (a resolver on the
 * host's 127.0.0.53 is not reachable from another network namespace);
 * when none is left, public ones, as Docker does.
 */
export function containerResolvConf(hostContent: string): string {
  const lines = hostContent.split('\n').filter((line) => !isLoopbackNameserver(line));
  while (lines.length && lines[lines.length - 1].trim() === '') lines.pop();
  if (!lines.some((line) => /^\s*nameserver\s/.test(line))) lines.push(...FALLBACK_NAMESERVERS.map((ns) => `nameserver ${ns}`));
  return `${lines.join('\n')}\n`;
}

function readOr(file: string, fallback: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return fallback;
  }
}

/**
 * Fills a container's `-init` layer: the files each container gets of its
 * own (hostname, hosts, resolv.conf) and the mount points the runtime
 * needs whatever the image has. It sits between the image and the
 * container's writable layer, so `commit` never picks these files up.
 */
export function writeInitLayer(dir: string, options: InitLayerOptions): void {
  for (const sub of ['etc', 'dev', 'dev/pts', 'dev/shm', 'proc', 'sys']) fs.mkdirSync(path.join(dir, sub), { mode: 0o755, recursive: true });
  fs.writeFileSync(path.join(dir, 'etc', 'hostname'), `${options.hostname}\n`, { mode: 0o644 });
  writeNetworkFiles(networkFiles(dir), options.network, options);
  fs.symlinkSync('/proc/mounts', path.join(dir, 'etc', 'mtab'));
}

/** hosts and resolv.conf before any network result: the host's with `host`, else localhost and the host's reachable nameservers. */
export function writeNetworkFiles(files: { hosts: string; resolvConf: string }, network: string, host: Pick<InitLayerOptions, 'hostResolvConf' | 'hostHosts'> = {}): void {
  const resolv = readOr(host.hostResolvConf ?? '/etc/resolv.conf', '');
  const localHosts = `${LOCAL_HOSTS.join('\n')}\n`;
  const hosts = network === 'host' ? readOr(host.hostHosts ?? '/etc/hosts', localHosts) : localHosts;
  fs.writeFileSync(files.hosts, hosts, { mode: 0o644 });
  fs.writeFileSync(files.resolvConf, network === 'host' ? resolv : containerResolvConf(resolv), { mode: 0o644 });
}

/** The files of the init layer that a network attachment fills in. */
export function networkFiles(dir: string): { hosts: string; resolvConf: string } {
  return { hosts: path.join(dir, 'etc', 'hosts'), resolvConf: path.join(dir, 'etc', 'resolv.conf') };
}
