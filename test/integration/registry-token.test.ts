import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { AuthError } from '../../src/errors';
import { login } from '../../src/registry/login';
import { pullImage } from '../../src/registry/pull';
import { pushImage } from '../../src/registry/push';
import { Store } from '../../src/storage/store';
import { busyboxRootfs, describeAsRoot, useTempDir } from '../helpers/fixtures';
import { tarOf, writeOciLayout } from '../helpers/images';
import { checkLeaksAfterEach } from '../helpers/leaks';
import { RegistryInstance, startRegistry } from '../helpers/registry';
import { TokenServer } from '../helpers/token-server';

const USER = 'tokenuser';
const PASSWORD = 'token-pw';
const RETRY = { retries: 2, delayMs: 5 };
/** skopeo asks the token server, which runs in this process: it must not be waited for synchronously. */
const run = promisify(execFile);

describeAsRoot('the bearer token flow (docker-registry with token auth, a test token server)', () => {
  const tmp = useTempDir('tsrun-registry-token-');
  let tokens: TokenServer | undefined;
  let registry: RegistryInstance | undefined;
  const host = (): string => (registry as RegistryInstance).host;

  beforeAll(async () => {
    tokens = await TokenServer.start(tmp(), USER, PASSWORD);
    registry = await startRegistry({ token: { realm: tokens.realm, service: TokenServer.SERVICE, issuer: TokenServer.ISSUER, certificate: tokens.certificate } });
    const layout = path.join(tmp(), 'layout');
    writeOciLayout(layout, [tarOf(busyboxRootfs())]);
    await run('skopeo', ['copy', '-q', '--dest-tls-verify=false', '--dest-creds', `${USER}:${PASSWORD}`, `oci:${layout}`, `docker://${host()}/busybox:1`]);
    tokens.requests.splice(0);
  });
  afterAll(async () => {
    await registry?.stop();
    await tokens?.close();
  });
  afterEach(async () => {
    tokens?.requests.splice(0);
    await tokens?.dropConnections();
  });
  checkLeaksAfterEach();

  test('an anonymous pull asks for a token scoped to the repository, without credentials', async () => {
    const store = Store.open(path.join(tmp(), 'anonymous'));
    const result = await pullImage(store, `${host()}/busybox:1`, { configDir: path.join(tmp(), 'no-config'), retry: RETRY });
    expect(result.downloadedLayers).toBe(1);
    // One token, reused for the manifest and every blob.
    expect(tokens?.requests).toEqual([{ scopes: ['repository:busybox:pull'], authenticated: false }]);
  });

  test('push: refused anonymously; after login the token carries push, and a wrong password is a clear 401', async () => {
    const store = Store.open(path.join(tmp(), 'pusher'));
    const tar = path.join(tmp(), 'busybox.tar');
    fs.writeFileSync(tar, tarOf(busyboxRootfs()));
    await store.importRootfs(tar, `${host()}/pushed:1`);
    const anonymous = await pushImage(store, `${host()}/pushed:1`, { configDir: path.join(tmp(), 'no-config'), retry: RETRY }).catch((err: Error) => err);
    expect(anonymous).toBeInstanceOf(AuthError);
    expect((anonymous as Error).message).toBe(`push access denied for ${host()}/pushed, repository does not exist or may require 'tsrun login'`);

    const configDir = path.join(tmp(), 'config');
    const wrong = await login(host(), { username: USER, password: 'nope' }, { configDir, retry: RETRY }).catch((err: Error) => err);
    expect(wrong).toBeInstanceOf(AuthError);
    expect((wrong as Error).message).toBe(`${host()}: unauthorized: incorrect username or password`);

    tokens?.requests.splice(0);
    await login(host(), { username: USER, password: PASSWORD }, { configDir, retry: RETRY });
    expect(tokens?.requests).toEqual([{ scopes: [], account: USER, authenticated: true }]);
    const pushed = await pushImage(store, `${host()}/pushed:1`, { configDir, retry: RETRY });
    expect(pushed.pushed).toHaveLength(2);
    expect(tokens?.requests.slice(1).every((r) => r.authenticated && r.account === USER)).toBe(true);
    expect(tokens?.requests.map((r) => r.scopes)).toContainEqual(['repository:pushed:pull,push']);
    const inspected = JSON.parse((await run('skopeo', ['inspect', '--tls-verify=false', '--creds', `${USER}:${PASSWORD}`, `docker://${host()}/pushed:1`])).stdout);
    expect(inspected.Digest).toBe(pushed.digest);
  });
});
