import { ValidationError } from '../errors';

/**
 * Image references as Docker reads them (the grammar of
 * github.com/distribution/reference):
 *
 *   reference := name [ ":" tag ] [ "@" digest ]
 *   name      := [ host [ ":" port ] "/" ] path-component [ "/" path-component ]*
 *
 * Names are kept in Docker's familiar form: `docker.io/library/busybox`
 * is stored and shown as `busybox`, `docker.io/user/app` as `user/app`.
 */

const DEFAULT_DOMAIN = 'docker.io';
const OFFICIAL_REPOSITORY_PREFIX = 'library/';
const DEFAULT_TAG = 'latest';

const DOMAIN_COMPONENT = '(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])';
const DOMAIN = new RegExp(`^(?:${DOMAIN_COMPONENT}(?:\\.${DOMAIN_COMPONENT})*|\\[[a-fA-F0-9:]+\\])(?::[0-9]+)?$`);
const PATH_COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;
const NAME_MAX = 255;
const DIGEST = /^sha256:[a-f0-9]{64}$/;

/**
 * The shortest image id prefix accepted. Docker takes any unique prefix;
 * tsrun asks for four hex digits so that `rmi a` cannot delete an image by
 * accident.
 */
const MIN_ID_PREFIX = 4;

export type ImageReference =
  /** `name[:tag]`; a short hex `idPrefix` is also tried as an image id when no such tag exists, as Docker does. */
  | { kind: 'tag'; name: string; tag: string; idPrefix?: string }
  /** `name@sha256:...`: by manifest digest. */
  | { kind: 'digest'; name: string; digest: string }
  /** `sha256:<hex>`, or a 64-digit hex id, or a `sha256:` prefix of one. */
  | { kind: 'id'; hex: string };

function invalid(text: string, why: string): ValidationError {
  return new ValidationError('reference', `invalid reference format ${JSON.stringify(text)}: ${why}`);
}

/** `name` in familiar form, or throws naming what is wrong. */
function parseName(name: string, text: string): string {
  if (name === '') throw invalid(text, 'the repository name is empty');
  if (name.length > NAME_MAX) throw invalid(text, `the repository name is longer than ${NAME_MAX} characters`);
  const slash = name.indexOf('/');
  const first = slash === -1 ? '' : name.slice(0, slash);
  // Docker's rule: the first component is a registry host when it has a
  // dot, a port or capitals, or is `localhost`.
  const hasDomain = slash !== -1 && (/[.:]/.test(first) || first === 'localhost' || first.toLowerCase() !== first);
  let domain = hasDomain ? first : DEFAULT_DOMAIN;
  const path = hasDomain ? name.slice(slash + 1) : name;
  if (hasDomain && !DOMAIN.test(domain)) throw invalid(text, `${JSON.stringify(domain)} is not a valid registry host`);
  for (const component of path.split('/')) {
    if (component.toLowerCase() !== component) throw invalid(text, 'repository name must be lowercase');
    if (!PATH_COMPONENT.test(component)) {
      throw invalid(text, `${JSON.stringify(component)} is not a valid name component (lowercase letters, digits, and . _ __ - between them)`);
    }
  }
  if (domain === 'index.docker.io') domain = DEFAULT_DOMAIN;
  if (domain !== DEFAULT_DOMAIN) return `${domain}/${path}`;
  return path.startsWith(OFFICIAL_REPOSITORY_PREFIX) && path.split('/').length === 2 ? path.slice(OFFICIAL_REPOSITORY_PREFIX.length) : path;
}

/** Parses an image reference: a tag, a digest reference or an image id. */
export function parseImageReference(text: string): ImageReference {
  const idMatch = /^sha256:([a-f0-9]+)$/.exec(text);
  if (idMatch) {
    if (idMatch[1].length < MIN_ID_PREFIX || idMatch[1].length > 64) throw invalid(text, `an image id has ${MIN_ID_PREFIX} to 64 hex digits`);
    return { kind: 'id', hex: idMatch[1] };
  }
  if (/^[a-f0-9]{64}$/.test(text)) return { kind: 'id', hex: text };

  let rest = text;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at !== -1) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!DIGEST.test(digest)) throw invalid(text, `${JSON.stringify(digest)} is not a sha256 digest`);
  }
  // A colon after the last slash starts the tag; one before it is a registry port.
  const colon = rest.lastIndexOf(':');
  let tag: string | undefined;
  if (colon > rest.lastIndexOf('/')) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag)) throw invalid(text, `${JSON.stringify(tag)} is not a valid tag ([A-Za-z0-9_][A-Za-z0-9_.-], at most 128)`);
  }
  const name = parseName(rest, text);
  if (digest !== undefined) return { kind: 'digest', name, digest };
  const idPrefix = tag === undefined && /^[a-f0-9]+$/.test(rest) && rest.length >= MIN_ID_PREFIX ? rest : undefined;
  return { kind: 'tag', name, tag: tag ?? DEFAULT_TAG, ...(idPrefix ? { idPrefix } : {}) };
}

/** A `name[:tag]` to tag an image with (no digest, no id), in familiar form: `busybox:latest`. */
export function parseTagReference(text: string): string {
  const reference = parseImageReference(text);
  if (reference.kind === 'id') throw invalid(text, 'an image id cannot be used as a name');
  if (reference.kind === 'digest') throw invalid(text, 'a digest reference cannot be used as a tag');
  return `${reference.name}:${reference.tag}`;
}

/**
 * A repository name in familiar form split into its registry and its path
 * there: `busybox` -> docker.io + `library/busybox`,
 * `127.0.0.1:5000/ns/app` -> 127.0.0.1:5000 + `ns/app`.
 */
export function splitRepository(name: string): { domain: string; path: string } {
  const slash = name.indexOf('/');
  const first = slash === -1 ? '' : name.slice(0, slash);
  if (slash !== -1 && (/[.:]/.test(first) || first === 'localhost' || first.toLowerCase() !== first)) return { domain: first, path: name.slice(slash + 1) };
  return { domain: DEFAULT_DOMAIN, path: slash === -1 ? `${OFFICIAL_REPOSITORY_PREFIX}${name}` : name };
}

/** `busybox:latest` -> `docker.io/library/busybox:latest`, the form containerd keeps names in. */
export function fullyQualified(tagged: string): string {
  const { domain, path } = splitRepository(tagged);
  return `${domain}/${path}`;
}

/** `name:tag` -> [`name`, `tag`]. */
export function splitTagged(tagged: string): [string, string] {
  const colon = tagged.lastIndexOf(':');
  return [tagged.slice(0, colon), tagged.slice(colon + 1)];
}
