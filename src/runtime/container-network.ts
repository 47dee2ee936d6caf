import fs = require('node:fs');
import { ConflictError, ValidationError } from '../errors';
import type { Mount } from '../oci/runtime-spec';
import type { Logger } from '../logger';
import type { NetworkAttachment } from '../network/attachments';
import { RunOptions, networkMode, stateDirOf } from './options';

/**
 * The container's hosts and resolv.conf that a network fills in (an image
 * container's are in its -init layer; a --rootfs container's are files of
 * its state directory bound over /etc/hosts and /etc/resolv.conf: `mounts`),
 * and what `-P` publishes (an image's EXPOSE).
 */
export interface NetworkFiles {
  hosts: string;
  resolvConf: string;
  mounts: Mount[];
  exposedPorts?: Record<string, unknown> | null;
}

export interface ContainerNetwork {
  /** `container:NAME`: the network namespace to join. */
  joinPath?: string;
  /** A CNI network: attached at the child's sync point, detached when it exits. */
  attachment?: NetworkAttachment;
  /** Bind mounts of the network files, for containers without an -init layer. */
  mounts?: Mount[];
}

/**
 * Resolves the container's network before anything starts: the namespace
 * of another container, or a CNI network (the default one made on first
 * use) with its ports, DNS and extra hosts checked. Nothing exists on the
 * host until attach() runs at the child's sync point.
 */
export async function prepareContainerNetwork(
  options: RunOptions,
  container: { id: string; name: string; hostname: string },
  networkFiles: () => NetworkFiles,
  logger: Logger,
): Promise<ContainerNetwork> {
  const mode = networkMode(options.network);
  if (mode.kind !== 'cni' && ((options.publish ?? []).length > 0 || options.publishAll)) {
    throw new ValidationError('publish', `ports cannot be published with --network ${options.network ?? 'none'}: they need a bridge network`);
  }
  const { storeRoot } = await import('./image-container');
  const root = storeRoot(options);
  if (mode.kind !== 'container' && mode.kind !== 'cni') return {};
  const files = networkFiles();
  if (mode.kind === 'container') return { joinPath: await containerNamespace(mode.container, options, files), mounts: files.mounts };
  const { exposedPorts, pickHostPorts } = await import('../network/ports');
  const publish = await pickHostPorts([...(options.publish ?? []), ...(options.publishAll ? exposedPorts(files.exposedPorts) : [])]);
  const { NetworkAttachment } = await import('../network/attachments');
  const stateDir = stateDirOf(options);
  const attachment = await NetworkAttachment.prepare(
    root,
    stateDir,
    { ...container, hostsFile: files.hosts, resolvConfFile: files.resolvConf },
    { network: mode.network, publish, dns: options.dns, dnsSearch: options.dnsSearch, addHosts: options.addHosts },
    logger,
  );
  return { attachment, mounts: files.mounts };
}

/** `container:NAME`: its held namespace (or its init's), and a copy of its hosts and resolv.conf, as Docker shares them. */
async function containerNamespace(reference: string, options: RunOptions, files: NetworkFiles): Promise<string> {
  const { findContainer, summaryOf } = await import('./containers');
  const { findAttachment } = await import('../network/attachments');
  const { storeRoot } = await import('./image-container');
  const summary = summaryOf(findContainer(reference, options));
  if (summary.status !== 'running') throw new ConflictError(`cannot join the network of container ${reference}: it is not running`);
  const attachment = findAttachment(storeRoot(options), summary.id);
  if (attachment) {
    fs.copyFileSync(attachment.hostsFile, files.hosts);
    fs.copyFileSync(attachment.resolvConfFile, files.resolvConf);
  }
  return attachment?.netns ?? `/proc/${summary.pid}/ns/net`;
}
