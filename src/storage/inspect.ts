import path = require('node:path');
import type { HealthConfig, ImageConfig } from '../oci/image-spec';
import { splitTagged } from './references';

/** `docker image inspect`'s shape for one image. */
export interface ImageInspect {
  Id: string;
  RepoTags: string[];
  RepoDigests: string[];
  Parent: string;
  Comment: string;
  Created: string;
  Author: string;
  Config: DockerContainerConfig;
  Architecture: string;
  Variant?: string;
  Os: string;
  Size: number;
  GraphDriver: { Name: 'overlay2'; Data: { LowerDir?: string; UpperDir: string; MergedDir: string; WorkDir: string } | null };
  RootFS: { Type: 'layers'; Layers: string[] };
  Metadata: { LastTagTime: string };
}

/** Docker's container config as inspect prints it: every key present, nulls where unset. */
export interface DockerContainerConfig {
  Hostname: string;
  Domainname: string;
  User: string;
  AttachStdin: boolean;
  AttachStdout: boolean;
  AttachStderr: boolean;
  ExposedPorts?: Record<string, object>;
  Tty: boolean;
  OpenStdin: boolean;
  StdinOnce: boolean;
  Env: string[] | null;
  Cmd: string[] | null;
  Image: string;
  Volumes: Record<string, object> | null;
  WorkingDir: string;
  Entrypoint: string[] | null;
  OnBuild: string[] | null;
  Labels: Record<string, string> | null;
  StopSignal?: string;
  Healthcheck?: HealthConfig;
  Shell?: string[];
}

/** Go's zero time, which Docker prints for "never". */
const ZERO_TIME = '0001-01-01T00:00:00Z';

export interface InspectInput {
  id: string;
  /** The image a build step made this one on. */
  parent?: string;
  manifest: string;
  config: ImageConfig;
  repoTags: string[];
  /** `name@digest` references it was pulled by. */
  repoDigests: string[];
  /** `overlay2/<hex>/diff` of each layer, lowest first. */
  layerDirs: string[];
  size: number;
  /** When the image record was written (tsrun does not keep a separate tag time). */
  stored: string;
}

function dockerConfig(config: ImageConfig['config']): DockerContainerConfig {
  const c = config ?? {};
  return {
    Hostname: '',
    Domainname: '',
    User: c.User ?? '',
    AttachStdin: false,
    AttachStdout: false,
    AttachStderr: false,
    ...(c.ExposedPorts ? { ExposedPorts: c.ExposedPorts } : {}),
    Tty: false,
    OpenStdin: false,
    StdinOnce: false,
    Env: c.Env ?? null,
    Cmd: c.Cmd ?? null,
    Image: '',
    Volumes: c.Volumes ?? null,
    WorkingDir: c.WorkingDir ?? '',
    Entrypoint: c.Entrypoint ?? null,
    OnBuild: c.OnBuild ?? null,
    Labels: c.Labels ?? null,
    ...(c.StopSignal ? { StopSignal: c.StopSignal } : {}),
    ...(c.Healthcheck ? { Healthcheck: c.Healthcheck } : {}),
    ...(c.Shell ? { Shell: c.Shell } : {}),
  };
}

/**
 * The overlay directories as Docker shows them for an image: the top
 * layer as UpperDir, the others (top first) as LowerDir, and the merged
 * and work dirs a container on the top layer would have.
 */
function graphDriverData(layerDirs: string[]): ImageInspect['GraphDriver']['Data'] {
  if (layerDirs.length === 0) return null;
  const upper = layerDirs[layerDirs.length - 1];
  const top = path.dirname(upper);
  const lower = layerDirs.slice(0, -1).reverse();
  return { ...(lower.length > 0 ? { LowerDir: lower.join(':') } : {}), MergedDir: path.join(top, 'merged'), UpperDir: upper, WorkDir: path.join(top, 'work') };
}

export function inspectImage(image: InspectInput): ImageInspect {
  const { config } = image;
  const repositories = [...new Set(image.repoTags.map((t) => splitTagged(t)[0]))];
  const lastComment = [...(config.history ?? [])].reverse().find((h) => h.comment)?.comment;
  return {
    Id: image.id,
    RepoTags: image.repoTags,
    RepoDigests: [...new Set([...image.repoDigests, ...repositories.map((r) => `${r}@${image.manifest}`)])],
    Parent: image.parent ?? '',
    Comment: typeof config.comment === 'string' ? config.comment : (lastComment ?? ''),
    Created: config.created ?? ZERO_TIME,
    Author: config.author ?? '',
    Config: dockerConfig(config.config),
    Architecture: config.architecture,
    ...(config.variant ? { Variant: config.variant } : {}),
    Os: config.os,
    Size: image.size,
    GraphDriver: { Name: 'overlay2', Data: graphDriverData(image.layerDirs) },
    RootFS: { Type: 'layers', Layers: config.rootfs.diff_ids },
    Metadata: { LastTagTime: image.repoTags.length > 0 ? image.stored : ZERO_TIME },
  };
}
