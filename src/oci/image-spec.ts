import { ContentError } from '../errors';

/**
 * The OCI image spec's documents (image-spec 1.1) and Docker's image
 * manifest v2 schema 2, which has the same shape under other media types.
 * The parse functions take untrusted JSON (from an archive, a layout, a
 * registry) and throw ContentError naming the document when it is not
 * what the spec says.
 */

export const MediaType = {
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  ociLayer: 'application/vnd.oci.image.layer.v1.tar',
  ociLayerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  ociLayerZstd: 'application/vnd.oci.image.layer.v1.tar+zstd',
  dockerManifestList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerConfig: 'application/vnd.docker.container.image.v1+json',
  dockerLayerGzip: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
} as const;

const INDEX_TYPES: readonly string[] = [MediaType.ociIndex, MediaType.dockerManifestList];
const MANIFEST_TYPES: readonly string[] = [MediaType.ociManifest, MediaType.dockerManifest];
const CONFIG_TYPES: readonly string[] = [MediaType.ociConfig, MediaType.dockerConfig];

/**
 * Layer media types tsrun applies. The non-distributable and foreign types
 * are the same tar formats; only where a registry may serve them differs.
 */
const LAYER_TYPES: readonly string[] = [
  MediaType.ociLayer,
  MediaType.ociLayerGzip,
  MediaType.ociLayerZstd,
  MediaType.dockerLayerGzip,
  'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip',
  'application/vnd.oci.image.layer.nondistributable.v1.tar',
  'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip',
  'application/vnd.oci.image.layer.nondistributable.v1.tar+zstd',
];

export function isIndexMediaType(mediaType: string): boolean {
  return INDEX_TYPES.includes(mediaType);
}

export function isManifestMediaType(mediaType: string): boolean {
  return MANIFEST_TYPES.includes(mediaType);
}

/** The annotations that name an image in an OCI layout's index.json. */
export const Annotation = {
  refName: 'org.opencontainers.image.ref.name',
  /** containerd's (and Docker 25+'s) fully qualified name, next to a bare tag in ref.name. */
  containerdImageName: 'io.containerd.image.name',
} as const;

export interface Platform {
  architecture: string;
  os: string;
  variant?: string;
  'os.version'?: string;
}

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
  platform?: Platform;
  urls?: string[];
}

export interface ImageManifest {
  schemaVersion: 2;
  mediaType?: string;
  config: Descriptor;
  layers: Descriptor[];
  annotations?: Record<string, string>;
}

export interface ImageIndex {
  schemaVersion: 2;
  mediaType?: string;
  manifests: Descriptor[];
  annotations?: Record<string, string>;
}

/** The runtime part of an image config; the keys are Docker's, capitalised. */
export interface ContainerConfig {
  User?: string;
  ExposedPorts?: Record<string, object>;
  Env?: string[];
  Entrypoint?: string[] | null;
  Cmd?: string[] | null;
  Volumes?: Record<string, object>;
  WorkingDir?: string;
  Labels?: Record<string, string>;
  StopSignal?: string;
  /** Docker's extensions, which podman and Docker read: HEALTHCHECK, ONBUILD triggers, SHELL. */
  Healthcheck?: HealthConfig;
  OnBuild?: string[] | null;
  Shell?: string[];
}

/** A HEALTHCHECK: `Test` is `["NONE"]`, `["CMD", ...]` or `["CMD-SHELL", "cmd"]`; durations in nanoseconds. */
export interface HealthConfig {
  Test: string[];
  Interval?: number;
  Timeout?: number;
  StartPeriod?: number;
  StartInterval?: number;
  Retries?: number;
}

export interface HistoryEntry {
  created?: string;
  created_by?: string;
  author?: string;
  comment?: string;
  empty_layer?: boolean;
}

/** An image config. Fields tsrun does not know are kept as they were. */
export interface ImageConfig {
  created?: string;
  author?: string;
  architecture: string;
  os: string;
  variant?: string;
  config?: ContainerConfig;
  rootfs: { type: 'layers'; diff_ids: string[] };
  history?: HistoryEntry[];
  [other: string]: unknown;
}

export const SHA256_DIGEST = /^sha256:[a-f0-9]{64}$/;

type Json = Record<string, unknown>;

function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** JSON.parse with the subject in the error. */
export function parseJson(data: Buffer | string, subject: string): unknown {
  try {
    return JSON.parse(data.toString());
  } catch (err) {
    throw new ContentError(subject, `not valid JSON (${(err as Error).message})`);
  }
}

function stringMap(value: unknown, subject: string, field: string): Record<string, string> | undefined {
  if (value === undefined || value === null) return undefined;
  if (!isObject(value) || Object.values(value).some((v) => typeof v !== 'string')) throw new ContentError(subject, `${field} must map strings to strings`);
  return value as Record<string, string>;
}

/** Checks a digest; tsrun stores sha256 only, as Docker and containerd do by default. */
export function checkDigest(value: unknown, subject: string, field = 'digest'): string {
  if (typeof value !== 'string') throw new ContentError(subject, `${field} is missing`);
  if (!SHA256_DIGEST.test(value)) {
    const algorithm = /^([a-z0-9]+(?:[+._-][a-z0-9]+)*):/.exec(value)?.[1];
    throw new ContentError(subject, algorithm && algorithm !== 'sha256' ? `${field} ${value}: unsupported digest algorithm ${algorithm}` : `${field} ${JSON.stringify(value)} is not a sha256 digest`);
  }
  return value;
}

export function parseDescriptor(value: unknown, subject: string): Descriptor {
  if (!isObject(value)) throw new ContentError(subject, 'a descriptor must be an object');
  const { mediaType, digest, size, platform } = value;
  if (typeof mediaType !== 'string' || mediaType === '') throw new ContentError(subject, 'descriptor has no mediaType');
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) throw new ContentError(subject, `descriptor ${String(digest)}: size must be a non-negative integer`);
  const descriptor: Descriptor = { mediaType, digest: checkDigest(digest, subject), size };
  const annotations = stringMap(value.annotations, subject, 'annotations');
  if (annotations) descriptor.annotations = annotations;
  if (platform !== undefined) {
    if (!isObject(platform) || typeof platform.os !== 'string' || typeof platform.architecture !== 'string') {
      throw new ContentError(subject, `descriptor ${digest}: platform needs os and architecture`);
    }
    descriptor.platform = platform as unknown as Platform;
  }
  if (Array.isArray(value.urls)) descriptor.urls = value.urls.map(String);
  return descriptor;
}

function checkSchemaVersion(value: Json, subject: string): void {
  if (value.schemaVersion !== 2) throw new ContentError(subject, `schemaVersion ${JSON.stringify(value.schemaVersion)} is not supported (expected 2)`);
}

/** Whether a parsed document is an index (it lists manifests) rather than a manifest. */
export function isIndexDocument(value: unknown): boolean {
  return isObject(value) && (Array.isArray(value.manifests) || (typeof value.mediaType === 'string' && isIndexMediaType(value.mediaType)));
}

export function parseIndex(data: Buffer, subject: string): ImageIndex {
  const value = parseJson(data, subject);
  if (!isObject(value)) throw new ContentError(subject, 'an image index must be a JSON object');
  checkSchemaVersion(value, subject);
  if (!Array.isArray(value.manifests)) throw new ContentError(subject, 'an image index needs a manifests array');
  const index: ImageIndex = { schemaVersion: 2, manifests: value.manifests.map((d) => parseDescriptor(d, subject)) };
  if (typeof value.mediaType === 'string') index.mediaType = value.mediaType;
  const annotations = stringMap(value.annotations, subject, 'annotations');
  if (annotations) index.annotations = annotations;
  return index;
}

export function parseManifest(data: Buffer, subject: string): ImageManifest {
  const value = parseJson(data, subject);
  if (!isObject(value)) throw new ContentError(subject, 'an image manifest must be a JSON object');
  checkSchemaVersion(value, subject);
  if (typeof value.mediaType === 'string' && !isManifestMediaType(value.mediaType)) {
    throw new ContentError(subject, `media type ${value.mediaType} is not an image manifest`);
  }
  if (!Array.isArray(value.layers)) throw new ContentError(subject, 'an image manifest needs a layers array');
  const config = parseDescriptor(value.config, subject);
  if (!CONFIG_TYPES.includes(config.mediaType)) throw new ContentError(subject, `config media type ${config.mediaType} is not an image config`);
  const layers = value.layers.map((d) => parseDescriptor(d, subject));
  for (const layer of layers) {
    if (!LAYER_TYPES.includes(layer.mediaType)) throw new ContentError(subject, `layer ${layer.digest}: unsupported media type ${layer.mediaType}`);
  }
  const manifest: ImageManifest = { schemaVersion: 2, config, layers };
  if (typeof value.mediaType === 'string') manifest.mediaType = value.mediaType;
  const annotations = stringMap(value.annotations, subject, 'annotations');
  if (annotations) manifest.annotations = annotations;
  return manifest;
}

function optionalStrings(value: unknown, subject: string, field: string): void {
  if (value !== undefined && value !== null && (!Array.isArray(value) || value.some((v) => typeof v !== 'string'))) {
    throw new ContentError(subject, `${field} must be an array of strings`);
  }
}

/** Checks the parts of a config tsrun relies on; everything else is kept verbatim. */
export function parseImageConfig(data: Buffer, subject: string): ImageConfig {
  const value = parseJson(data, subject);
  if (!isObject(value)) throw new ContentError(subject, 'an image config must be a JSON object');
  if (typeof value.architecture !== 'string' || typeof value.os !== 'string') throw new ContentError(subject, 'architecture and os are required');
  const rootfs = value.rootfs;
  if (!isObject(rootfs) || rootfs.type !== 'layers' || !Array.isArray(rootfs.diff_ids)) throw new ContentError(subject, 'rootfs must be {"type": "layers", "diff_ids": [...]}');
  rootfs.diff_ids.forEach((id) => checkDigest(id, subject, 'rootfs.diff_ids[]'));
  if (value.config !== undefined && value.config !== null) {
    const config = value.config;
    if (!isObject(config)) throw new ContentError(subject, 'config must be an object');
    for (const field of ['Env', 'Entrypoint', 'Cmd'] as const) optionalStrings(config[field], subject, `config.${field}`);
    for (const field of ['User', 'WorkingDir', 'StopSignal'] as const) {
      if (config[field] !== undefined && typeof config[field] !== 'string') throw new ContentError(subject, `config.${field} must be a string`);
    }
  }
  if (value.history !== undefined && value.history !== null && !Array.isArray(value.history)) throw new ContentError(subject, 'history must be an array');
  return value as unknown as ImageConfig;
}

/** The layer media type for a blob compressed with `compression`. */
export function layerMediaType(compression: 'gzip' | 'zstd' | 'none'): string {
  return compression === 'gzip' ? MediaType.ociLayerGzip : compression === 'zstd' ? MediaType.ociLayerZstd : MediaType.ociLayer;
}
