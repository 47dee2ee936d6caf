import { ContentError, DigestMismatchError } from '../../errors';
import type { Logger } from '../../logger';
import { parseImageConfig, parseJson } from '../../oci/image-spec';
import { sha256Digest } from '../digest';
import type { SourceFiles } from './source-files';
import { SourceImage, readNamedFile, tagFromArchive } from './source-image';

/**
 * `docker save`'s manifest.json: one entry per image, with the paths of
 * its config and layer tars in the archive. Before Docker 25 these were
 * `<config-hex>.json` and `<v1-id>/layer.tar`; since, they are the blobs
 * of the OCI layout saved beside it.
 */
export interface DockerManifestEntry {
  Config: string;
  RepoTags: string[] | null;
  Layers: string[];
}

export const DOCKER_MANIFEST_FILE = 'manifest.json';

export function isDockerSave(files: SourceFiles): boolean {
  return files.find(DOCKER_MANIFEST_FILE) !== undefined;
}

function parseEntries(data: Buffer, subject: string): DockerManifestEntry[] {
  const value = parseJson(data, subject);
  if (!Array.isArray(value)) throw new ContentError(subject, 'must be an array of images');
  return value.map((entry: unknown, i) => {
    const e = entry as Partial<DockerManifestEntry> | null;
    const ok =
      e !== null &&
      typeof e === 'object' &&
      typeof e.Config === 'string' &&
      Array.isArray(e.Layers) &&
      e.Layers.every((l) => typeof l === 'string') &&
      (e.RepoTags === undefined || e.RepoTags === null || (Array.isArray(e.RepoTags) && e.RepoTags.every((t) => typeof t === 'string')));
    if (!ok) throw new ContentError(subject, `entry ${i} needs Config (a path), Layers (paths) and RepoTags (names or null)`);
    return { Config: e.Config as string, RepoTags: e.RepoTags ?? null, Layers: e.Layers as string[] };
  });
}

/**
 * The images a docker save archive lists. A config is verified against its
 * name when the name is a digest (`<hex>.json`, `blobs/sha256/<hex>`);
 * layers have no digest here, so they are verified by their diff IDs once
 * applied.
 */
export function readDockerSave(files: SourceFiles, subject: string, logger: Logger): SourceImage[] {
  const manifestSubject = `${subject}: ${DOCKER_MANIFEST_FILE}`;
  const entries = parseEntries(readNamedFile(files, DOCKER_MANIFEST_FILE, subject), manifestSubject);
  if (entries.length === 0) throw new ContentError(manifestSubject, 'lists no images');
  return entries.map((entry) => {
    const configSubject = `${subject}: config ${entry.Config}`;
    const configData = readNamedFile(files, entry.Config, subject);
    const digest = sha256Digest(configData);
    const named = /(?:^|\/)([a-f0-9]{64})(?:\.json)?$/.exec(entry.Config);
    if (named && named[1] !== digest.slice('sha256:'.length)) throw new DigestMismatchError(configSubject, `sha256:${named[1]}`, digest);
    return {
      names: (entry.RepoTags ?? []).map((t) => tagFromArchive(t, subject, logger)).filter((t): t is string => t !== undefined),
      config: { digest, data: configData, parsed: parseImageConfig(configData, configSubject) },
      layers: entry.Layers.map((name) => {
        const file = files.find(name);
        if (file === undefined) throw new ContentError(subject, `layer ${name} is missing`);
        return { file, name };
      }),
    };
  });
}

/** The manifest.json entry for a saved image, pointing into the OCI layout's blobs. */
export function dockerManifestEntry(configPath: string, layerPaths: string[], tags: string[]): DockerManifestEntry {
  return { Config: configPath, RepoTags: tags.length > 0 ? tags : null, Layers: layerPaths };
}
