import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describeError } from '../../src/cli/fail';
import { AuthError } from '../../src/errors';
import { login, logout } from '../../src/registry/login';
import { pullImage } from '../../src/registry/pull';
import { pushImage } from '../../src/registry/push';
import { Store } from '../../src/storage/store';
import { busyboxRootfs, describeAsRoot, useTempDir } from '../helpers/fixtures';
import { readJson, tarOf, writeOciLayout } from '../helpers/images';
import { checkLeaksAfterEach } from '../helpers/leaks';
import { useRegistry } from '../helpers/registry';

const TSRUN = path.resolve(__dirname, '..', '..', 'bin', 'tsrun');
const USER = 'tester';
const PASSWORD = 'secret-pw';
const RETRY = { retries: 2, delayMs: 5 };

describeAsRoot('registry credentials: login, logout and Basic auth (docker-registry with htpasswd)', () => {
  const tmp = useTempDir('tsrun-registry-auth-');
  const registry = useRegistry({ htpasswd: { user: USER, password: PASSWORD } });
  checkLeaksAfterEach();
  let configs = 0;
  /** A Docker config directory of its own for each use, as DOCKER_CONFIG or --config names one. */
  const newConfigDir = (): string => path.join(tmp(), `docker-config-${++configs}`);
  let stores = 0;
  const newStore = (): Store => Store.open(path.join(tmp(), `store-${++stores}`));

  beforeAll(() => {
    const layout = path.join(tmp(), 'layout');
    writeOciLayout(layout, [tarOf(busyboxRootfs())]);
    execFileSync('skopeo', ['copy', '-q', '--dest-tls-verify=false', '--dest-creds', `${USER}:${PASSWORD}`, `oci:${layout}`, `docker://${registry().host}/busybox:1`]);
  });

  test('a wrong password: a clear 401, and nothing is stored', async () => {
    const configDir = newConfigDir();
    const error = await login(registry().host, { username: USER, password: 'wrong' }, { configDir, retry: RETRY }).catch((err: Error) => err);
    expect(error).toBeInstanceOf(AuthError);
    expect(error).toMatchObject({ status: 401, message: `login to ${registry().host} failed: 401 Unauthorized: incorrect username or password` });
    expect(fs.existsSync(configDir)).toBe(false);
  });

  test('without credentials, pull and push are refused with a message that says what to do', async () => {
    const store = newStore();
    const configDir = newConfigDir();
    const reference = `${registry().host}/busybox:1`;
    const pull = await pullImage(store, reference, { configDir, retry: RETRY }).catch((err: Error) => err);
    expect(pull).toBeInstanceOf(AuthError);
    expect((pull as Error).message).toBe(`pull access denied for ${registry().host}/busybox, repository does not exist or may require 'tsrun login': unauthorized: authentication required`);
    const tar = path.join(tmp(), 'busybox.tar');
    fs.writeFileSync(tar, tarOf(busyboxRootfs()));
    await store.importRootfs(tar, `${registry().host}/mine:1`);
    const push = await pushImage(store, `${registry().host}/mine:1`, { configDir, retry: RETRY }).catch((err: Error) => err);
    expect(push).toBeInstanceOf(AuthError);
    expect(describeError(push)).toMatch(new RegExp(`^push access denied for ${registry().host}/mine, repository does not exist or may require 'tsrun login': .*: 401 Unauthorized$`));
  });

  test('login stores the credentials (0600) beside what config.json held; pull and push use them; logout removes them', async () => {
    const configDir = newConfigDir();
    fs.mkdirSync(configDir);
    const file = path.join(configDir, 'config.json');
    const other = Buffer.from('someone:else').toString('base64');
    fs.writeFileSync(file, JSON.stringify({ auths: { 'registry.example:5000': { auth: other } }, psFormat: 'table {{.ID}}' }), { mode: 0o644 });

    const result = await login(`http://${registry().host}/v2/`, { username: USER, password: PASSWORD }, { configDir, retry: RETRY });
    expect(result).toEqual({ server: registry().host, file });
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    expect(readJson(file)).toEqual({
      auths: { 'registry.example:5000': { auth: other }, [registry().host]: { auth: Buffer.from(`${USER}:${PASSWORD}`).toString('base64') } },
      psFormat: 'table {{.ID}}',
    });

    const store = newStore();
    const pulled = await pullImage(store, `${registry().host}/busybox:1`, { configDir, retry: RETRY });
    await store.tag(`${registry().host}/busybox:1`, `${registry().host}/pushed:1`);
    const pushed = await pushImage(store, `${registry().host}/pushed:1`, { configDir, retry: RETRY });
    expect(pushed.digest).toBe(pulled.image.manifest);
    const inspected = JSON.parse(execFileSync('skopeo', ['inspect', '--tls-verify=false', '--creds', `${USER}:${PASSWORD}`, `docker://${registry().host}/pushed:1`]).toString());
    expect(inspected.Digest).toBe(pushed.digest);

    expect(logout(registry().host, { configDir })).toEqual({ server: registry().host, removed: true, file });
    expect(readJson(file)).toEqual({ auths: { 'registry.example:5000': { auth: other } }, psFormat: 'table {{.ID}}' });
    expect(logout(registry().host, { configDir }).removed).toBe(false);
  });

  test('the CLI: login --password-stdin with DOCKER_CONFIG, a wrong -p with --config, logout', () => {
    const configDir = newConfigDir();
    const env = { ...process.env, DOCKER_CONFIG: configDir };
    const ok = spawnSync(TSRUN, ['login', '-u', USER, '--password-stdin', registry().host], { input: `${PASSWORD}\n`, env, encoding: 'utf8' });
    expect(ok).toMatchObject({ status: 0, stdout: 'Login Succeeded\n', stderr: '' });
    expect(fs.statSync(path.join(configDir, 'config.json')).mode & 0o777).toBe(0o600);

    const wrongConfig = newConfigDir();
    const wrong = spawnSync(TSRUN, ['--config', wrongConfig, 'login', '-u', USER, '-p', 'wrong', registry().host], { input: '', encoding: 'utf8' });
    expect(wrong).toMatchObject({
      status: 1,
      stdout: '',
      stderr: `WARNING! Using --password via the CLI is insecure. Use --password-stdin.\ntsrun: login to ${registry().host} failed: 401 Unauthorized: incorrect username or password\n`,
    });
    expect(fs.existsSync(wrongConfig)).toBe(false);
    const noTty = spawnSync(TSRUN, ['--config', wrongConfig, 'login', '-u', USER, registry().host], { input: '', encoding: 'utf8' });
    expect(noTty).toMatchObject({ status: 1, stderr: 'tsrun: Cannot perform an interactive login from a non TTY device\n' });

    expect(spawnSync(TSRUN, ['logout', registry().host], { env, encoding: 'utf8' })).toMatchObject({ status: 0, stdout: `Removing login credentials for ${registry().host}\n` });
    expect(spawnSync(TSRUN, ['logout', registry().host], { env, encoding: 'utf8' })).toMatchObject({ status: 0, stdout: `Not logged in to ${registry().host}\n` });
  });
});
