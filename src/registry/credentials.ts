import fs = require('node:fs');
import os = require('node:os');
import path = require('node:path');
import { ContentError, syscallErrorFrom } from '../errors';
import type { Logger } from '../logger';
import { parseJson } from '../oci/image-spec';
import { writeFileAtomic } from '../util/atomic-file';

/**
 * Registry credentials in Docker's client config (`~/.docker/config.json`,
 * or `$DOCKER_CONFIG/config.json`), so that `docker login` and `tsrun
 * login` share them:
 *
 *   { "auths": { "127.0.0.1:5000": { "auth": "<base64 of user:password>" },
 *                "https://index.docker.io/v1/": { "auth": "..." } } }
 *
 * The file holds passwords: it is written with mode 0600, and whatever
 * else it holds (credHelpers, proxies, other tools' keys) is kept. The
 * credential helpers it may name are not run; a server they cover is used
 * without credentials, with a warning.
 */

export interface Credentials {
  username: string;
  password: string;
  /** An OAuth refresh token some token servers hand out instead of keeping the password. */
  identityToken?: string;
}

/** The key Docker keeps Docker Hub's credentials under. */
const DOCKER_HUB_KEY = 'https://index.docker.io/v1/';
const DOCKER_HUB_NAMES = ['docker.io', 'index.docker.io', 'registry-1.docker.io', 'registry.hub.docker.com'];
const CONFIG_FILE = 'config.json';

interface AuthEntry {
  auth?: string;
  username?: string;
  password?: string;
  identitytoken?: string;
}

interface DockerConfig {
  auths?: Record<string, AuthEntry>;
  credsStore?: string;
  credHelpers?: Record<string, string>;
  [other: string]: unknown;
}

/** The directory of config.json: `dir` when given (`--config`), else $DOCKER_CONFIG, else ~/.docker. */
export function dockerConfigDir(dir?: string): string {
  return path.resolve(dir ?? process.env.DOCKER_CONFIG ?? path.join(os.homedir(), '.docker'));
}

/**
 * The key a server's credentials are stored under: Docker Hub's legacy
 * URL for Docker Hub, `host[:port]` for any other registry, whatever
 * scheme or path the user typed (`https://host:5000/v2/`).
 */
export function credentialKey(server: string): string {
  const host = server
    .trim()
    .replace(/^[a-z][a-z0-9+.-]*:\/\//i, '')
    .replace(/\/.*$/, '')
    .toLowerCase();
  return host === '' || DOCKER_HUB_NAMES.includes(host) ? DOCKER_HUB_KEY : host;
}

export class CredentialStore {
  readonly file: string;

  constructor(
    configDir: string | undefined,
    private readonly logger?: Logger,
  ) {
    this.file = path.join(dockerConfigDir(configDir), CONFIG_FILE);
  }

  private read(): DockerConfig {
    let text: string;
    try {
      text = fs.readFileSync(this.file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return {};
      throw syscallErrorFrom('read credentials', err);
    }
    if (text.trim() === '') return {};
    const config = parseJson(text, this.file);
    if (typeof config !== 'object' || config === null || Array.isArray(config)) throw new ContentError(this.file, 'must hold a JSON object');
    return config as DockerConfig;
  }

  private write(config: DockerConfig): void {
    fs.mkdirSync(path.dirname(this.file), { recursive: true, mode: 0o700 });
    // writeFileAtomic creates the file 0600, and the rename keeps that.
    writeFileAtomic(this.file, `${JSON.stringify(config, null, '\t')}\n`, { durable: true });
  }

  /** The stored entry for `server` under whichever spelling of it the file uses. */
  private entryKey(config: DockerConfig, server: string): string | undefined {
    const wanted = credentialKey(server);
    return Object.keys(config.auths ?? {}).find((key) => credentialKey(key) === wanted);
  }

  /** The credentials for a registry (`127.0.0.1:5000`, `docker.io`), if any are stored. */
  get(server: string): Credentials | undefined {
    const config = this.read();
    const key = this.entryKey(config, server);
    if (key === undefined) {
      const helper = config.credHelpers?.[credentialKey(server)] ?? config.credsStore;
      if (helper !== undefined) this.logger?.warn({ server, helper: `docker-credential-${helper}`, file: this.file }, 'credential helpers are not supported: using no credentials');
      return undefined;
    }
    const entry = (config.auths as Record<string, AuthEntry>)[key];
    let username = entry.username ?? '';
    let password = entry.password ?? '';
    if (typeof entry.auth === 'string' && entry.auth !== '') {
      const decoded = Buffer.from(entry.auth, 'base64').toString('utf8');
      const colon = decoded.indexOf(':');
      if (colon < 0) throw new ContentError(this.file, `auths.${key}.auth is not base64 of "user:password"`);
      username = decoded.slice(0, colon);
      password = decoded.slice(colon + 1);
    }
    const identityToken = typeof entry.identitytoken === 'string' && entry.identitytoken !== '' ? entry.identitytoken : undefined;
    if (username === '' && identityToken === undefined) return undefined;
    return { username, password, ...(identityToken !== undefined ? { identityToken } : {}) };
  }

  /** Stores the credentials for `server`, replacing what was stored under any spelling of it. */
  set(server: string, credentials: Credentials): void {
    const config = this.read();
    const auths = { ...(config.auths ?? {}) };
    const old = this.entryKey(config, server);
    if (old !== undefined) delete auths[old];
    const entry: AuthEntry = { auth: Buffer.from(`${credentials.username}:${credentials.password}`, 'utf8').toString('base64') };
    if (credentials.identityToken !== undefined) entry.identitytoken = credentials.identityToken;
    auths[credentialKey(server)] = entry;
    this.write({ ...config, auths });
  }

  /** Removes the credentials for `server`; false when there were none. */
  remove(server: string): boolean {
    const config = this.read();
    const key = this.entryKey(config, server);
    if (key === undefined) return false;
    const auths = { ...config.auths };
    delete auths[key];
    this.write({ ...config, auths });
    return true;
  }
}
