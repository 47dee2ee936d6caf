import { parseChallenges } from '../../src/registry/challenge';

describe('WWW-Authenticate challenges', () => {
  test("Docker Hub's bearer challenge", () => {
    expect(parseChallenges('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull"')).toEqual([
      { scheme: 'bearer', params: { realm: 'https://auth.docker.io/token', service: 'registry.docker.io', scope: 'repository:library/busybox:pull' } },
    ]);
  });

  test('an insufficient scope error, with several scopes in one quoted value', () => {
    const [challenge] = parseChallenges('Bearer realm="https://t/token",service="reg",scope="repository:a:pull,push repository:b:pull",error="insufficient_scope"');
    expect(challenge.params.scope.split(' ')).toEqual(['repository:a:pull,push', 'repository:b:pull']);
    expect(challenge.params.error).toBe('insufficient_scope');
  });

  test('Basic, several challenges in one header and in several headers, tokens, escapes and odd spacing', () => {
    expect(parseChallenges('Basic realm="Registry Realm"')).toEqual([{ scheme: 'basic', params: { realm: 'Registry Realm' } }]);
    expect(parseChallenges('Basic realm="a", Bearer realm="https://t/token" , service=reg')).toEqual([
      { scheme: 'basic', params: { realm: 'a' } },
      { scheme: 'bearer', params: { realm: 'https://t/token', service: 'reg' } },
    ]);
    expect(parseChallenges(['Negotiate', 'BASIC REALM="say \\"hi\\""'])).toEqual([
      { scheme: 'negotiate', params: {} },
      { scheme: 'basic', params: { realm: 'say "hi"' } },
    ]);
  });

  test('nothing, or malformed text: what could be read', () => {
    expect(parseChallenges(undefined)).toEqual([]);
    expect(parseChallenges('')).toEqual([]);
    expect(parseChallenges('Bearer realm="unterminated')).toEqual([{ scheme: 'bearer', params: {} }]);
  });
});
