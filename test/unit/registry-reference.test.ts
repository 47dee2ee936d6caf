import { ValidationError } from '../../src/errors';
import { hostPlatform, parsePlatform } from '../../src/oci/platform';
import { isInsecureRegistry } from '../../src/registry/endpoint';
import { familiarRemote, formatRemote, parseRemoteReference } from '../../src/registry/reference';
import { splitRepository } from '../../src/storage/references';

const HEX = 'b'.repeat(64);

describe('remote references, as Docker resolves them to a registry and a repository', () => {
  test.each([
    ['alpine', { domain: 'docker.io', host: 'registry-1.docker.io', repository: 'library/alpine', name: 'alpine', tag: 'latest' }, 'docker.io/library/alpine:latest'],
    ['user/app:v1', { domain: 'docker.io', host: 'registry-1.docker.io', repository: 'user/app', name: 'user/app', tag: 'v1' }, 'docker.io/user/app:v1'],
    ['index.docker.io/library/busybox:1', { domain: 'docker.io', repository: 'library/busybox', name: 'busybox', tag: '1' }, 'docker.io/library/busybox:1'],
    ['host:5000/ns/name:tag', { domain: 'host:5000', host: 'host:5000', repository: 'ns/name', name: 'host:5000/ns/name', tag: 'tag' }, 'host:5000/ns/name:tag'],
    ['localhost/app', { domain: 'localhost', repository: 'app', tag: 'latest' }, 'localhost/app:latest'],
    [`name@sha256:${HEX}`, { domain: 'docker.io', repository: 'library/name', name: 'name', digest: `sha256:${HEX}` }, `docker.io/library/name@sha256:${HEX}`],
    // Both given: the digest decides, as in Docker.
    [`127.0.0.1:5000/app:1@sha256:${HEX}`, { domain: '127.0.0.1:5000', repository: 'app', digest: `sha256:${HEX}` }, `127.0.0.1:5000/app@sha256:${HEX}`],
  ])('%s', (text, expected, full) => {
    const reference = parseRemoteReference(text);
    expect(reference).toMatchObject(expected);
    expect(formatRemote(reference)).toBe(full);
  });

  test('the familiar form is what the store tags with', () => {
    expect(familiarRemote(parseRemoteReference('docker.io/library/alpine'))).toBe('alpine:latest');
    expect(familiarRemote(parseRemoteReference('127.0.0.1:5000/a/b:c'))).toBe('127.0.0.1:5000/a/b:c');
    expect(splitRepository('busybox')).toEqual({ domain: 'docker.io', path: 'library/busybox' });
    expect(splitRepository('Registry/app')).toEqual({ domain: 'Registry', path: 'app' });
  });

  test('an image id cannot be pulled, and bad references say why', () => {
    expect(() => parseRemoteReference(`sha256:${HEX}`)).toThrow(ValidationError);
    expect(() => parseRemoteReference(HEX)).toThrow(/is an image id: a registry needs a repository name/);
    expect(() => parseRemoteReference('app/UPPER')).toThrow(/must be lowercase/);
  });
});

describe('--platform', () => {
  test.each([
    ['linux/amd64', { os: 'linux', architecture: 'amd64' }],
    ['linux/arm64', { os: 'linux', architecture: 'arm64', variant: 'v8' }],
    ['linux/arm/v6', { os: 'linux', architecture: 'arm', variant: 'v6' }],
    ['arm64', { os: 'linux', architecture: 'arm64', variant: 'v8' }],
    ['linux/x86_64', { os: 'linux', architecture: 'amd64' }],
    ['Linux/AARCH64', { os: 'linux', architecture: 'arm64', variant: 'v8' }],
  ])('%s', (text, platform) => {
    expect(parsePlatform(text)).toEqual(platform);
  });

  test("an os alone means the host's architecture; nonsense is refused", () => {
    expect(parsePlatform('linux')).toEqual(hostPlatform());
    expect(() => parsePlatform('linux/amd64/v1/x')).toThrow(ValidationError);
    expect(() => parsePlatform('linux//')).toThrow(/is not os\[\/arch\[\/variant\]\]/);
  });
});

describe('insecure registries', () => {
  test.each([
    ['localhost:5000', [], true],
    ['127.0.0.1:5000', [], true],
    ['127.8.9.10', [], true],
    ['[::1]:5000', [], true],
    ['registry.example.com', [], false],
    ['registry.example.com:5000', ['registry.example.com:5000'], true],
    ['registry.example.com:5000', ['registry.example.com'], true],
    ['registry.example.com:5000', ['other.example.com'], false],
    ['10.1.2.3:5000', ['10.0.0.0/8'], true],
    ['11.1.2.3:5000', ['10.0.0.0/8'], false],
    ['registry.example.com', ['http://registry.example.com/'], true],
  ] as [string, string[], boolean][])('%s with %j: %s', (host, list, insecure) => {
    expect(isInsecureRegistry(host, list)).toBe(insecure);
  });
});
