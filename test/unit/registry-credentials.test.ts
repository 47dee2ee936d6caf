import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ContentError } from '../../src/errors';
import { CredentialStore, credentialKey, dockerConfigDir } from '../../src/registry/credentials';

describe("credentials in Docker's config.json", () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsrun-credentials-'));
  });
  afterEach(() => {
    fs.rmSync(dir, { recursive: true, force: true });
  });
  const file = (): string => path.join(dir, 'config.json');

  test.each([
    ['docker.io', 'https://index.docker.io/v1/'],
    ['index.docker.io', 'https://index.docker.io/v1/'],
    ['https://index.docker.io/v1/', 'https://index.docker.io/v1/'],
    ['registry-1.docker.io', 'https://index.docker.io/v1/'],
    ['127.0.0.1:5000', '127.0.0.1:5000'],
    ['http://127.0.0.1:5000/v2/', '127.0.0.1:5000'],
    ['Registry.Example.com', 'registry.example.com'],
  ])('the key for %s is %s', (server, key) => {
    expect(credentialKey(server)).toBe(key);
  });

  test('the directory: --config, then $DOCKER_CONFIG, then ~/.docker', () => {
    const saved = process.env.DOCKER_CONFIG;
    try {
      process.env.DOCKER_CONFIG = '/somewhere';
      expect(dockerConfigDir('/given')).toBe('/given');
      expect(dockerConfigDir()).toBe('/somewhere');
      delete process.env.DOCKER_CONFIG;
      expect(dockerConfigDir()).toBe(path.join(os.homedir(), '.docker'));
    } finally {
      if (saved === undefined) delete process.env.DOCKER_CONFIG;
      else process.env.DOCKER_CONFIG = saved;
    }
  });

  test('set, get under any spelling of the server, remove; other keys stay; the file is 0600', () => {
    fs.writeFileSync(file(), JSON.stringify({ auths: { 'https://index.docker.io/v1/': { auth: Buffer.from('hub:pw').toString('base64') } }, credHelpers: { 'gcr.io': 'gcloud' }, detachKeys: 'ctrl-e' }), { mode: 0o644 });
    const store = new CredentialStore(dir);
    expect(store.get('docker.io')).toEqual({ username: 'hub', password: 'pw' });
    store.set('http://127.0.0.1:5000', { username: 'me', password: 'p:with:colons' });
    expect(fs.statSync(file()).mode & 0o777).toBe(0o600);
    expect(store.get('127.0.0.1:5000')).toEqual({ username: 'me', password: 'p:with:colons' });
    const written = JSON.parse(fs.readFileSync(file(), 'utf8'));
    expect(written).toEqual({
      auths: { 'https://index.docker.io/v1/': { auth: Buffer.from('hub:pw').toString('base64') }, '127.0.0.1:5000': { auth: Buffer.from('me:p:with:colons').toString('base64') } },
      credHelpers: { 'gcr.io': 'gcloud' },
      detachKeys: 'ctrl-e',
    });
    expect(store.remove('127.0.0.1:5000/')).toBe(true);
    expect(store.remove('127.0.0.1:5000')).toBe(false);
    expect(store.get('127.0.0.1:5000')).toBeUndefined();
  });

  test('an entry stored under a URL is found and replaced by host', () => {
    fs.writeFileSync(file(), JSON.stringify({ auths: { 'https://registry.example.com/v1/': { auth: Buffer.from('old:pw').toString('base64') } } }));
    const store = new CredentialStore(dir);
    expect(store.get('registry.example.com')).toEqual({ username: 'old', password: 'pw' });
    store.set('registry.example.com', { username: 'new', password: 'pw2' });
    expect(Object.keys(JSON.parse(fs.readFileSync(file(), 'utf8')).auths)).toEqual(['registry.example.com']);
  });

  test('identity tokens are kept; no file or an empty one holds nothing; a broken one says where', () => {
    const store = new CredentialStore(dir);
    expect(store.get('docker.io')).toBeUndefined();
    fs.writeFileSync(file(), '');
    expect(store.get('docker.io')).toBeUndefined();
    fs.writeFileSync(file(), JSON.stringify({ auths: { 'reg.example': { auth: Buffer.from('u:').toString('base64'), identitytoken: 'refresh-me' } } }));
    expect(store.get('reg.example')).toEqual({ username: 'u', password: '', identityToken: 'refresh-me' });
    fs.writeFileSync(file(), '{"auths": ');
    expect(() => store.get('reg.example')).toThrow(ContentError);
    expect(() => store.get('reg.example')).toThrow(file());
  });
});
