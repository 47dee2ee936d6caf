import { ValidationError } from '../../src/errors';
import { fullyQualified, parseImageReference, parseTagReference } from '../../src/storage/references';

const HEX = 'a'.repeat(64);

describe('image references', () => {
  test.each([
    ['busybox', 'busybox:latest'],
    ['busybox:1.36', 'busybox:1.36'],
    ['docker.io/library/busybox:1', 'busybox:1'],
    ['index.docker.io/library/busybox', 'busybox:latest'],
    ['docker.io/user/app:v2', 'user/app:v2'],
    ['library/busybox', 'busybox:latest'],
    ['localhost/app', 'localhost/app:latest'],
    ['localhost:5000/team/app:dev_1.0-rc', 'localhost:5000/team/app:dev_1.0-rc'],
    ['registry.example.com/a.b/c__d/e-f:TAG', 'registry.example.com/a.b/c__d/e-f:TAG'],
    ['[::1]:5000/app', '[::1]:5000/app:latest'],
  ])('%s is the tag %s', (text, tagged) => {
    expect(parseTagReference(text)).toBe(tagged);
  });

  test('ids, id prefixes and digests', () => {
    expect(parseImageReference(`sha256:${HEX}`)).toEqual({ kind: 'id', hex: HEX });
    expect(parseImageReference(HEX)).toEqual({ kind: 'id', hex: HEX });
    expect(parseImageReference('sha256:abcd')).toEqual({ kind: 'id', hex: 'abcd' });
    // A short hex name is a name first and an id prefix second, as in Docker.
    expect(parseImageReference('abcd12')).toEqual({ kind: 'tag', name: 'abcd12', tag: 'latest', idPrefix: 'abcd12' });
    expect(parseImageReference('abc')).toEqual({ kind: 'tag', name: 'abc', tag: 'latest' });
    expect(parseImageReference(`busybox@sha256:${HEX}`)).toEqual({ kind: 'digest', name: 'busybox', digest: `sha256:${HEX}` });
  });

  test.each([
    ['Busybox', /must be lowercase/],
    ['busy box', /not a valid name component/],
    ['busybox:', /not a valid tag/],
    ['busybox:-x', /not a valid tag/],
    [`busybox:${'t'.repeat(129)}`, /not a valid tag/],
    ['-busybox', /not a valid name component/],
    ['a//b', /not a valid name component/],
    ['', /empty/],
    ['busybox@sha256:123', /not a sha256 digest/],
    ['sha256:abc', /4 to 64 hex digits/],
    [`${'a/'.repeat(130)}b`, /longer than 255/],
    ['bad_host:99999x/app', /not a valid (registry host|name component)/],
  ])('%j is refused: %s', (text, message) => {
    expect(() => parseImageReference(text)).toThrow(ValidationError);
    expect(() => parseImageReference(text)).toThrow(message);
  });

  test('a tag target must be a name', () => {
    expect(() => parseTagReference(`sha256:${HEX}`)).toThrow(/an image id cannot be used as a name/);
    expect(() => parseTagReference(`busybox@sha256:${HEX}`)).toThrow(/digest reference cannot be used as a tag/);
  });

  test('fully qualified names, as containerd keeps them', () => {
    expect(fullyQualified('busybox:latest')).toBe('docker.io/library/busybox:latest');
    expect(fullyQualified('user/app:v1')).toBe('docker.io/user/app:v1');
    expect(fullyQualified('localhost:5000/app:v1')).toBe('localhost:5000/app:v1');
    expect(fullyQualified('quay.io/a/b:c')).toBe('quay.io/a/b:c');
  });
});
