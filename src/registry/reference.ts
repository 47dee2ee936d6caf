import { ValidationError } from '../errors';
import { parseImageReference, splitRepository } from '../storage/references';

/** `docker.io` names Docker Hub in image references; its API is served from this host. */
const DOCKER_HUB_DOMAIN = 'docker.io';
const DOCKER_HUB_API_HOST = 'registry-1.docker.io';

/** An image in a registry, as pull and push address it. */
export interface RemoteReference {
  /** The registry as names spell it: `docker.io`, `127.0.0.1:5000`. */
  domain: string;
  /** Where its API is: `registry-1.docker.io` for docker.io, else the domain. */
  host: string;
  /** The repository path on the registry: `library/busybox`. */
  repository: string;
  /** The repository in familiar form, as the store names it: `busybox`. */
  name: string;
  /** A tag or a digest, never both: with both given, Docker pulls by digest. */
  tag?: string;
  digest?: string;
}

/** The API host of a registry domain. */
export function registryHost(domain: string): string {
  return domain === DOCKER_HUB_DOMAIN ? DOCKER_HUB_API_HOST : domain;
}

/**
 * Parses what the user named for pull or push: `busybox` (docker.io,
 * library/busybox, tag latest), `host:5000/ns/app:1`, `app@sha256:...`.
 * An image id cannot be pulled: it names nothing in a registry.
 */
export function parseRemoteReference(text: string): RemoteReference {
  const parsed = parseImageReference(text);
  if (parsed.kind === 'id') throw new ValidationError('reference', `${JSON.stringify(text)} is an image id: a registry needs a repository name`);
  const { domain, path } = splitRepository(parsed.name);
  const base = { domain, host: registryHost(domain), repository: path, name: parsed.name };
  return parsed.kind === 'digest' ? { ...base, digest: parsed.digest } : { ...base, tag: parsed.tag };
}

/** The fully qualified form Docker prints: `docker.io/library/busybox:latest`. */
export function formatRemote(reference: RemoteReference): string {
  return `${reference.domain}/${reference.repository}${referenceSuffix(reference)}`;
}

/** The familiar form the store uses: `busybox:latest`, `127.0.0.1:5000/app@sha256:...`. */
export function familiarRemote(reference: RemoteReference): string {
  return `${reference.name}${referenceSuffix(reference)}`;
}

function referenceSuffix(reference: RemoteReference): string {
  return reference.digest !== undefined ? `@${reference.digest}` : `:${reference.tag}`;
}
