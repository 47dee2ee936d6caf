import { ContentError } from '../../src/errors';
import { isIndexDocument, parseImageConfig, parseIndex, parseManifest } from '../../src/oci/image-spec';
import { platformMatches } from '../../src/oci/platform';

const D = `sha256:${'a'.repeat(64)}`;
const json = (value: unknown): Buffer => Buffer.from(JSON.stringify(value));
const manifest = (layers: unknown[], config: unknown = { mediaType: 'application/vnd.oci.image.config.v1+json', digest: D, size: 2 }) =>
  json({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config, layers });

describe('OCI image documents from untrusted input', () => {
  test('a manifest and a Docker schema 2 manifest parse; layer media types are checked', () => {
    expect(parseManifest(manifest([{ mediaType: 'application/vnd.oci.image.layer.v1.tar+zstd', digest: D, size: 3 }]), 'm').layers).toHaveLength(1);
    const docker = json({
      schemaVersion: 2,
      mediaType: 'application/vnd.docker.distribution.manifest.v2+json',
      config: { mediaType: 'application/vnd.docker.container.image.v1+json', digest: D, size: 1 },
      layers: [{ mediaType: 'application/vnd.docker.image.rootfs.diff.tar.gzip', digest: D, size: 1 }],
    });
    expect(parseManifest(docker, 'm').mediaType).toBe('application/vnd.docker.distribution.manifest.v2+json');
    expect(() => parseManifest(manifest([{ mediaType: 'application/vnd.example.helm', digest: D, size: 3 }]), 'm')).toThrow('m: layer sha256:aaaa');
  });

  test.each([
    [json({ schemaVersion: 1 }), /schemaVersion 1 is not supported/],
    [Buffer.from('{'), /not valid JSON/],
    [manifest([{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: 'md5:abc', size: 1 }]), /unsupported digest algorithm md5/],
    [manifest([{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: D, size: -1 }]), /size must be a non-negative integer/],
    [manifest([], { mediaType: 'text/plain', digest: D, size: 1 }), /config media type text\/plain is not an image config/],
    [json({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: [] }), /is not an image manifest/],
  ])('a bad manifest is a ContentError: %#', (data, message) => {
    expect(() => parseManifest(data, 'manifest x')).toThrow(ContentError);
    expect(() => parseManifest(data, 'manifest x')).toThrow(message);
  });

  test('indexes: told apart from manifests, platforms kept', () => {
    const index = { schemaVersion: 2, manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: D, size: 1, platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } }] };
    expect(isIndexDocument(index)).toBe(true);
    expect(isIndexDocument({ schemaVersion: 2, layers: [] })).toBe(false);
    expect(parseIndex(json(index), 'i').manifests[0].platform).toEqual({ os: 'linux', architecture: 'arm64', variant: 'v8' });
    expect(() => parseIndex(json({ ...index, manifests: [{ ...index.manifests[0], platform: { os: 'linux' } }] }), 'i')).toThrow(/platform needs os and architecture/);
  });

  test('configs: the fields tsrun relies on are checked, the rest kept', () => {
    const config = { architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [D] }, config: { Cmd: ['sh'] }, 'moby.buildkit.buildinfo.v1': 'x' };
    expect(parseImageConfig(json(config), 'c')).toEqual(config);
    expect(() => parseImageConfig(json({ ...config, rootfs: { type: 'layers', diff_ids: ['x'] } }), 'c')).toThrow(/rootfs.diff_ids\[\] "x" is not a sha256 digest/);
    expect(() => parseImageConfig(json({ ...config, config: { Cmd: 'sh' } }), 'c')).toThrow(/config.Cmd must be an array of strings/);
    expect(() => parseImageConfig(json({ rootfs: config.rootfs }), 'c')).toThrow(/architecture and os are required/);
  });

  test('platform matching: os and architecture must agree; a missing variant matches', () => {
    const host = { os: 'linux', architecture: 'arm64', variant: 'v8' };
    expect(platformMatches({ os: 'linux', architecture: 'arm64' }, host)).toBe(true);
    expect(platformMatches({ os: 'linux', architecture: 'arm64', variant: 'v8' }, host)).toBe(true);
    expect(platformMatches({ os: 'linux', architecture: 'arm64', variant: 'v9' }, host)).toBe(false);
    expect(platformMatches({ os: 'linux', architecture: 'amd64' }, host)).toBe(false);
    expect(platformMatches({ os: 'windows', architecture: 'arm64' }, host)).toBe(false);
  });
});
