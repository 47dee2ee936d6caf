import { spawnSync } from 'node:child_process';
import fs = require('node:fs');
import path = require('node:path');
import { ConflictError, NotFoundError } from '../errors';
import { Logger, silentLogger } from '../logger';
import { withFileLock } from '../util/file-lock';
import { attachmentAddress, checkAttachment, findAttachment, listAttachments, removeLeftoverAttachments } from './attachments';
import { DEFAULT_NETWORK, Network, NetworkStore } from './networks';

export interface NetworkLocation {
  /** The image store the networks belong to (default /var/lib/tsrun, or $TSRUN_ROOT). */
  root?: string;
  logger?: Logger;
}

/** What `network inspect` shows, in Docker's shape. */
export interface NetworkInspect {
  Name: string;
  Id: string;
  Created: string;
  Driver: 'bridge';
  IPAM: { Driver: 'host-local'; Config: { Subnet: string; Gateway: string }[] };
  /** The bridge interface on the host. */
  Bridge: string;
  /** The CNI configuration list. */
  ConfigFile: string;
  Containers: Record<string, { Name: string; IPv4Address: string }>;
}

function rootOf(location: NetworkLocation): string {
  return path.resolve(location.root ?? process.env.TSRUN_ROOT ?? '/var/lib/tsrun');
}

async function withNetworks<T>(location: NetworkLocation, body: (networks: NetworkStore, root: string) => T): Promise<T> {
  const root = rootOf(location);
  const networks = new NetworkStore(root);
  fs.mkdirSync(networks.dir, { recursive: true, mode: 0o700 });
  return withFileLock(networks.lockFile, 'exclusive', () => body(networks, root));
}

function inspectOf(network: Network, root: string): NetworkInspect {
  const containers = listAttachments(root).filter((a) => a.network === network.name && a.result);
  return {
    Name: network.name,
    Id: network.info.id,
    Created: network.info.created,
    Driver: 'bridge',
    IPAM: { Driver: 'host-local', Config: [{ Subnet: network.info.subnet, Gateway: network.info.gateway }] },
    Bridge: network.info.bridge,
    ConfigFile: network.file,
    Containers: Object.fromEntries(containers.map((a) => [a.containerId, { Name: a.containerName, IPv4Address: attachmentAddress(a) ?? '' }])),
  };
}

/** A user network: its own bridge and /24 (or `subnet`); its containers find each other by name. */
export function createNetwork(name: string, options: NetworkLocation & { subnet?: string } = {}): Promise<NetworkInspect> {
  return withNetworks(options, (networks, root) => inspectOf(networks.create(name, { subnet: options.subnet }), root));
}

/** Every network, the default one included (made here if it does not exist yet, as Docker always has `bridge`). */
export function listNetworks(options: NetworkLocation = {}): Promise<NetworkInspect[]> {
  return withNetworks(options, (networks, root) => {
    networks.find(DEFAULT_NETWORK);
    return networks.list().map((n) => inspectOf(n, root));
  });
}

export function inspectNetwork(name: string, options: NetworkLocation = {}): Promise<NetworkInspect> {
  return withNetworks(options, (networks, root) => inspectOf(networks.find(name), root));
}

/**
 * Removes a network that no container is attached to (after the
 * attachments of killed tsrun processes are cleaned up), with its
 * address allocations and its bridge.
 */
export async function removeNetwork(name: string, options: NetworkLocation = {}): Promise<void> {
  const root = rootOf(options);
  await removeLeftoverAttachments(root, options.logger ?? silentLogger);
  await withNetworks(options, (networks) => {
    if (name === DEFAULT_NETWORK) throw new ConflictError(`${name} is the default network and cannot be removed`);
    const users = listAttachments(root).filter((a) => a.network === name);
    if (users.length > 0) throw new ConflictError(`network ${name} has active endpoints: ${users.map((u) => u.containerName).join(', ')}`);
    const network = networks.remove(name);
    // The bridge plugin creates the bridge and never deletes it; it goes with its network, as Docker's does.
    const deleted = spawnSync('ip', ['link', 'delete', network.info.bridge, 'type', 'bridge'], { encoding: 'utf8' });
    if (deleted.status !== 0 && !/Cannot find device/.test(deleted.stderr)) {
      (options.logger ?? silentLogger).warn({ bridge: network.info.bridge, stderr: deleted.stderr.trim() }, 'could not delete the bridge');
    }
  });
}

/** CNI CHECK of a running container's network (by container name or id); throws the plugin's complaint. */
export async function checkContainerNetwork(reference: string, options: NetworkLocation & { stateDir?: string } = {}): Promise<void> {
  const { findContainer, summaryOf } = await import('../runtime/containers');
  const summary = summaryOf(findContainer(reference, options));
  const record = findAttachment(rootOf(options), summary.id);
  if (!record || summary.status !== 'running') throw new NotFoundError('network attachment', reference, `container ${reference} is not running on a CNI network`);
  checkAttachment(record);
}
