import { AuthError } from '../errors';
import { registryFailure, RegistryClient, RegistryOptions } from './client';
import { CredentialStore, Credentials, credentialKey } from './credentials';
import { registryHost } from './reference';

/**
 * `docker login` and `docker logout`: the credentials are checked against
 * the registry (its Basic challenge, or a token from its token server),
 * then stored in Docker's config.json, which pull and push read.
 */

export interface LoginResult {
  /** The key the credentials are stored under: `127.0.0.1:5000`, or Docker Hub's `https://index.docker.io/v1/`. */
  server: string;
  /** The config.json written. */
  file: string;
}

/** The registry domain a login server names: Docker Hub's legacy key is docker.io. */
function domainOf(key: string): string {
  return key.startsWith('https://') ? 'docker.io' : key;
}

export async function login(server: string, credentials: Credentials, options: RegistryOptions = {}): Promise<LoginResult> {
  const key = credentialKey(server);
  const domain = domainOf(key);
  const client = new RegistryClient(registryHost(domain), { credentials, insecureRegistries: options.insecureRegistries, retry: options.retry, logger: options.logger });
  try {
    const response = await client.request({ method: 'GET', target: '/v2/', scopes: [], signal: options.signal });
    if (response.status === 401) {
      response.body.resume();
      throw new AuthError(`login to ${domain} failed: 401 Unauthorized: incorrect username or password`, { url: response.url.href, status: 401 });
    }
    if (response.status !== 200) throw await registryFailure(response, `login to ${domain} failed`);
    response.body.resume();
  } finally {
    client.close();
  }
  const store = new CredentialStore(options.configDir, options.logger);
  store.set(key, credentials);
  return { server: key, file: store.file };
}

/** Removes the stored credentials for `server`; false when there were none. */
export function logout(server: string, options: Pick<RegistryOptions, 'configDir' | 'logger'> = {}): { server: string; removed: boolean; file: string } {
  const store = new CredentialStore(options.configDir, options.logger);
  const key = credentialKey(server);
  return { server: key, removed: store.remove(key), file: store.file };
}
