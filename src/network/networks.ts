import fs = require('node:fs');
import path = require('node:path');
import { ConflictError, NotFoundError, ValidationError } from '../errors';
import { writeFileAtomic } from '../util/atomic-file';
import { listDir, readJsonOrNull } from '../util/json-files';
import { randomHex } from '../util/random';
import { CNI_VERSION, NetworkConfigList } from './cni';

/** The network containers join when none is named, as Docker's `bridge`. */
export const DEFAULT_NETWORK = 'bridge';
const DEFAULT_BRIDGE = 'tsrun0';
/** User networks take the next free /24 of this /16; the default network has the first. */
const SUBNET_BASE = [10, 89];

/** Names that are network modes, not networks. */
const RESERVED = new Set(['none', 'host', 'default']);
const NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

/** What tsrun keeps beside the CNI configuration (the `tsrun` key of the conflist, which no plugin reads). */
export interface NetworkInfo {
  id: string;
  created: string;
  bridge: string;
  subnet: string;
  gateway: string;
}

export interface Network {
  name: string;
  info: NetworkInfo;
  config: NetworkConfigList;
  /** The conflist's path: what CNI tools (cnitool) can be pointed at. */
  file: string;
}

export function validateNetworkName(name: string): void {
  if (!NAME.test(name) || name.length > 64 || RESERVED.has(name) || name.includes(':')) {
    throw new ValidationError('network', `invalid network name ${JSON.stringify(name)}: [a-zA-Z0-9][a-zA-Z0-9_.-], not none, host or default`);
  }
}

function parseSubnet(subnet: string): { base: number[]; prefix: number } {
  const match = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/.exec(subnet);
  const base = match ? match.slice(1, 5).map(Number) : [];
  const prefix = match ? Number(match[5]) : -1;
  if (!match || base.some((b) => b > 255) || prefix < 8 || prefix > 30) throw new ValidationError('subnet', `${JSON.stringify(subnet)} is not an IPv4 CIDR with a prefix of 8 to 30`);
  return { base, prefix };
}

function toNumber(octets: number[]): number {
  return octets.reduce((acc, o) => acc * 256 + o, 0);
}

function toAddress(value: number): string {
  return [24, 16, 8, 0].map((shift) => Math.floor(value / 2 ** shift) % 256).join('.');
}

function overlaps(a: string, b: string): boolean {
  const [x, y] = [parseSubnet(a), parseSubnet(b)];
  const prefix = Math.min(x.prefix, y.prefix);
  const mask = (v: number): number => Math.floor(v / 2 ** (32 - prefix));
  return mask(toNumber(x.base)) === mask(toNumber(y.base));
}

/** The bridge plugin (with host-local addresses), portmap for -p, firewall so that a host whose FORWARD policy is DROP lets the traffic through. */
function configList(name: string, info: NetworkInfo, ipamDir: string): NetworkConfigList & { tsrun: NetworkInfo } {
  return {
    cniVersion: CNI_VERSION,
    name,
    tsrun: info,
    plugins: [
      {
        type: 'bridge',
        bridge: info.bridge,
        isGateway: true,
        ipMasq: true,
        hairpinMode: true,
        ipam: { type: 'host-local', ranges: [[{ subnet: info.subnet, gateway: info.gateway }]], routes: [{ dst: '0.0.0.0/0' }], dataDir: ipamDir },
      },
      { type: 'portmap', capabilities: { portMappings: true }, snat: true },
      { type: 'firewall', backend: 'iptables' },
    ],
  };
}

/**
 * The networks of a store: `<root>/networks/<name>.conflist`, a CNI
 * configuration list as any CNI tool reads it. The default one is made on
 * first use. Callers hold the networks lock to create or remove.
 */
export class NetworkStore {
  readonly dir: string;

  constructor(storeRoot: string) {
    this.dir = path.join(storeRoot, 'networks');
  }

  get lockFile(): string {
    return path.join(this.dir, 'lock');
  }

  /** host-local's allocations: one file per address, named by the address. */
  get ipamDir(): string {
    return path.join(this.dir, 'ipam');
  }

  private file(name: string): string {
    return path.join(this.dir, `${name}.conflist`);
  }

  get(name: string): Network | null {
    const stored = readJsonOrNull<NetworkConfigList & { tsrun: NetworkInfo }>(this.file(name));
    if (!stored) return null;
    const { tsrun, ...config } = stored;
    return { name, info: tsrun, config, file: this.file(name) };
  }

  find(name: string): Network {
    if (name === DEFAULT_NETWORK) return this.get(name) ?? this.create(name, {});
    const network = this.get(name);
    if (!network) throw new NotFoundError('network', name, `network ${name} not found`);
    return network;
  }

  list(): Network[] {
    return listDir(this.dir)
      .filter((e) => e.endsWith('.conflist'))
      .map((e) => this.get(e.slice(0, -'.conflist'.length)))
      .filter((n): n is Network => n !== null)
      .sort((a, b) => a.name.localeCompare(b.name));
  }

  create(name: string, options: { subnet?: string }): Network {
    if (name !== DEFAULT_NETWORK) validateNetworkName(name);
    if (this.get(name)) throw new ConflictError(`network with name ${name} already exists`);
    const taken = this.list().map((n) => n.info.subnet);
    const subnet = options.subnet ?? this.freeSubnet(name, taken);
    const { base, prefix } = parseSubnet(subnet);
    const clash = taken.find((t) => overlaps(t, subnet));
    if (clash) throw new ConflictError(`subnet ${subnet} overlaps with the subnet ${clash} of another network`);
    const network = Math.floor(toNumber(base) / 2 ** (32 - prefix)) * 2 ** (32 - prefix);
    const id = randomHex(32);
    const info: NetworkInfo = {
      id,
      created: new Date().toISOString(),
      // Interface names are at most 15 characters.
      bridge: name === DEFAULT_NETWORK ? DEFAULT_BRIDGE : `tsrun-${id.slice(0, 8)}`,
      subnet: `${toAddress(network)}/${prefix}`,
      gateway: toAddress(network + 1),
    };
    fs.mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    writeFileAtomic(this.file(name), `${JSON.stringify(configList(name, info, this.ipamDir), null, 2)}\n`, { durable: true });
    return this.get(name) as Network;
  }

  remove(name: string): Network {
    const network = this.find(name);
    fs.rmSync(this.file(name));
    fs.rmSync(path.join(this.ipamDir, name), { recursive: true, force: true });
    return network;
  }

  private freeSubnet(name: string, taken: string[]): string {
    const first = name === DEFAULT_NETWORK ? 0 : 1;
    for (let third = first; third < 256; third++) {
      const candidate = `${SUBNET_BASE[0]}.${SUBNET_BASE[1]}.${third}.0/24`;
      if (!taken.some((t) => overlaps(t, candidate))) return candidate;
    }
    throw new ConflictError(`no free /24 left in ${SUBNET_BASE.join('.')}.0.0/16: give --subnet`);
  }
}
