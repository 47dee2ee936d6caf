import { STATUS_CODES } from 'node:http';
import type { Readable } from 'node:stream';
import { AuthError, RegistryError } from '../errors';
import type { Logger } from '../logger';
import { silentLogger } from '../logger';
import { MediaType } from '../oci/image-spec';
import { Authenticator } from './auth';
import { Challenge, parseChallenges } from './challenge';
import { CredentialStore, Credentials } from './credentials';
import { isInsecureRegistry, tlsOptions } from './endpoint';
import { HttpMethod, HttpRequest, HttpResponse, HttpTransport, discard, readBody } from './http';
import { registryHost } from './reference';
import { DEFAULT_RETRY, RetryPolicy, isTransientError, isTransientStatus, retryDelay, sleep } from './retry';

/**
 * A client of one registry's distribution API (`/v2/`), as the OCI
 * distribution spec and Docker's registry describe it. It learns how to
 * reach the registry from its first request (`GET /v2/`: which scheme
 * answers, which authentication it asks for), then authenticates each
 * request for the repository scopes it needs, asking for a fresh token
 * when the registry refuses one. Requests that may be repeated are retried
 * with backoff after a broken connection or a 5xx.
 */

export interface RegistryClientOptions {
  credentials?: Credentials;
  /** Registries that may be reached without verified TLS (see endpoint.ts); loopback ones always may. */
  insecureRegistries?: readonly string[];
  retry?: RetryPolicy;
  logger?: Logger;
  /** Connections to the registry at once. */
  maxConnections?: number;
  /** A connection silent for this long is dropped and the request retried. */
  idleTimeoutMs?: number;
}

/** What pull, push and login share: where credentials are, which registries may skip TLS, how to retry. */
export interface RegistryOptions {
  /** The directory of Docker's config.json (`--config`); default $DOCKER_CONFIG, else ~/.docker. */
  configDir?: string;
  insecureRegistries?: readonly string[];
  retry?: RetryPolicy;
  logger?: Logger;
  signal?: AbortSignal;
}

/** A client for `domain` (docker.io, host:port) with the credentials stored for it. */
export function clientFor(domain: string, options: RegistryOptions, maxConnections?: number): RegistryClient {
  const credentials = new CredentialStore(options.configDir, options.logger).get(domain);
  return new RegistryClient(registryHost(domain), { credentials, insecureRegistries: options.insecureRegistries, retry: options.retry, logger: options.logger, maxConnections });
}

export interface RegistryRequest {
  method: HttpMethod;
  /** A path on the registry (`/v2/...`) or an absolute URL it handed out (an upload's Location). */
  target: string;
  /** Token scopes the request needs: `repository:library/busybox:pull`. */
  scopes: string[];
  headers?: Record<string, string>;
  body?: Buffer | (() => Readable);
  /** Whether the request may be sent again after a broken connection or a 5xx; false for those that change state. */
  retry?: boolean;
  signal?: AbortSignal;
}

interface Session {
  /** `https://host/` or, for an insecure registry that does not speak TLS, `http://host/`. */
  base: URL;
  challenge?: Challenge;
}

/** Every manifest type tsrun reads, and schema 1's, which it recognises only to refuse clearly. */
export const MANIFEST_ACCEPT = [
  MediaType.ociIndex,
  MediaType.dockerManifestList,
  MediaType.ociManifest,
  MediaType.dockerManifest,
  'application/vnd.docker.distribution.manifest.v1+prettyjws',
  'application/vnd.docker.distribution.manifest.v1+json',
].join(', ');

/** Manifests and indexes are read into memory: containerd refuses more than this too. */
export const MANIFEST_LIMIT = 4 * 1024 * 1024;
const ERROR_BODY_LIMIT = 64 * 1024;
const DEFAULT_MAX_CONNECTIONS = 6;
const DEFAULT_IDLE_TIMEOUT_MS = 60_000;

export function pullScope(repository: string): string {
  return `repository:${repository}:pull`;
}

export function pushScope(repository: string): string {
  return `repository:${repository}:pull,push`;
}

export class RegistryClient {
  readonly insecure: boolean;
  private readonly transport: HttpTransport;
  private readonly auth: Authenticator;
  private readonly retry: RetryPolicy;
  private readonly logger: Logger;
  private session: Promise<Session> | undefined;

  constructor(
    readonly host: string,
    options: RegistryClientOptions = {},
  ) {
    this.insecure = isInsecureRegistry(host, options.insecureRegistries ?? []);
    this.logger = options.logger ?? silentLogger;
    this.retry = options.retry ?? DEFAULT_RETRY;
    this.transport = new HttpTransport({
      tls: tlsOptions(host, this.insecure),
      maxSockets: options.maxConnections ?? DEFAULT_MAX_CONNECTIONS,
      idleTimeoutMs: options.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS,
    });
    this.auth = new Authenticator(this.transport, host, options.credentials, this.logger);
  }

  /** Closes the client's connections; it cannot be used after. */
  close(): void {
    this.transport.close();
  }

  /** `GET /v2/`: the scheme that answers and the challenge, if any. Checked once per client. */
  ping(signal?: AbortSignal): Promise<Session> {
    this.session ??= this.connect(signal);
    return this.session;
  }

  private async connect(signal?: AbortSignal): Promise<Session> {
    const schemes = this.insecure ? ['https', 'http'] : ['https'];
    const failures: string[] = [];
    for (const scheme of schemes) {
      const base = new URL(`${scheme}://${this.host}/`);
      const url = new URL('/v2/', base);
      try {
        const response = await this.sendWithRetries({ method: 'GET', url, signal }, true);
        discard(response);
        const challenges = parseChallenges(response.headers['www-authenticate']);
        const challenge = challenges.find((c) => c.scheme === 'bearer') ?? challenges.find((c) => c.scheme === 'basic');
        this.logger.debug({ registry: this.host, scheme, status: response.status, auth: challenge?.scheme ?? 'none' }, 'registry ping');
        return { base, ...(response.status === 401 && challenge ? { challenge } : {}) };
      } catch (err) {
        if (signal?.aborted) throw err;
        failures.push(`${scheme}: ${((err as Error).cause as Error | undefined)?.message ?? (err as Error).message}`);
        this.logger.debug({ registry: this.host, scheme, err: (err as Error).message }, 'registry ping failed');
      }
    }
    const hint = this.insecure ? '' : `; if it serves plain HTTP or a self-signed certificate, pass --insecure-registry ${this.host}`;
    throw new RegistryError(`cannot reach registry ${this.host} (${failures.join('; ')})${hint}`, { url: `https://${this.host}/v2/` });
  }

  /**
   * Sends an authenticated request and returns the response, whatever its
   * status; the caller reads or discards the body. A 401 gets one more try
   * with a fresh token (for the scopes the registry asks for); a broken
   * connection or a 5xx more tries when `retry` allows.
   */
  async request(request: RegistryRequest): Promise<HttpResponse> {
    const session = await this.ping(request.signal);
    const url = new URL(request.target, session.base);
    let challenge = session.challenge;
    let scopes = request.scopes;
    for (let reauthorized = false; ; reauthorized = true) {
      const authorization = await this.auth.authorization(challenge, scopes, request.signal);
      const headers = { ...request.headers, ...(authorization !== undefined ? { Authorization: authorization } : {}) };
      const response = await this.sendWithRetries({ method: request.method, url, headers, body: request.body, signal: request.signal }, request.retry ?? true);
      if (response.status !== 401 || reauthorized) return response;
      const next = parseChallenges(response.headers['www-authenticate']).find((c) => c.scheme === 'bearer' || c.scheme === 'basic');
      // Basic auth has nothing new to try; a bearer challenge may widen the scopes or replace an expired token.
      if (next === undefined || next.scheme === 'basic') return response;
      if (challenge) this.auth.forget(challenge, scopes);
      discard(response);
      const asked = next.params.scope?.split(' ').filter((s) => s !== '') ?? [];
      scopes = [...new Set([...scopes, ...asked])];
      challenge = next;
    }
  }

  private async sendWithRetries(request: HttpRequest, retry: boolean): Promise<HttpResponse> {
    for (let attempt = 0; ; attempt++) {
      const canRetry = retry && attempt < this.retry.retries;
      let response: HttpResponse;
      try {
        response = await this.transport.send(request);
      } catch (err) {
        if (request.signal?.aborted) throw err;
        if (!canRetry || !isTransientError(err)) {
          throw new RegistryError(`${request.method} ${request.url.href}: ${(err as Error).message}`, { url: request.url.href }, { cause: err });
        }
        this.logger.info({ url: request.url.href, err: (err as Error).message, attempt: attempt + 1 }, 'registry request failed; retrying');
        await sleep(retryDelay(this.retry, attempt + 1), request.signal);
        continue;
      }
      if (!canRetry || !isTransientStatus(response.status)) return response;
      discard(response);
      this.logger.info({ url: request.url.href, status: response.status, attempt: attempt + 1 }, 'registry answered with a temporary failure; retrying');
      await sleep(retryDelay(this.retry, attempt + 1, response.headers['retry-after']), request.signal);
    }
  }

  /** Whether the registry has the blob in `repository` (HEAD). */
  async hasBlob(repository: string, digest: string, scopes: string[], signal?: AbortSignal): Promise<boolean> {
    const response = await this.request({ method: 'HEAD', target: `/v2/${repository}/blobs/${digest}`, scopes, signal });
    if (response.status === 200 || response.status === 404) {
      discard(response);
      return response.status === 200;
    }
    throw await registryFailure(response, `${this.host}/${repository}: checking for blob ${digest}`);
  }

  /** The location the registry gave in a response, resolved against the request's URL. */
  location(response: HttpResponse, what: string): URL {
    const location = response.headers.location;
    if (location === undefined) throw new RegistryError(`${what}: the registry answered ${response.status} without a Location`, { url: response.url.href, status: response.status });
    return new URL(location, response.url);
  }
}

/** A registry's JSON errors (`{"errors": [{"code": "MANIFEST_UNKNOWN", "message": "manifest unknown"}]}`), as text and the first code. */
function registryErrors(body: Buffer): { text: string; code?: string } {
  try {
    const parsed = JSON.parse(body.toString('utf8')) as { errors?: { code?: unknown; message?: unknown }[] };
    const errors = (parsed.errors ?? []).filter((e) => typeof e.code === 'string' || typeof e.message === 'string');
    const text = errors
      .map((e) => {
        const code = typeof e.code === 'string' ? e.code.toLowerCase().replace(/_/g, ' ') : '';
        const message = typeof e.message === 'string' ? e.message : '';
        return code && message && code !== message ? `${code}: ${message}` : code || message;
      })
      .join('; ');
    return { text, code: typeof errors[0]?.code === 'string' ? errors[0].code : undefined };
  } catch {
    return { text: '' };
  }
}

/**
 * The error for a response the caller did not expect: `what`, then the
 * registry's own explanation or the HTTP status. 401 and 403 are
 * AuthErrors. Reads (and so frees) the response body.
 */
export async function registryFailure(response: HttpResponse, what: string, reference?: string): Promise<RegistryError> {
  const body = response.body.readableEnded ? Buffer.alloc(0) : await readBody(response, ERROR_BODY_LIMIT, what).catch(() => Buffer.alloc(0));
  const { text, code } = registryErrors(body);
  const status = `${response.status} ${STATUS_CODES[response.status] ?? 'Unknown Status'}`;
  const message = `${what}: ${text || status}`;
  if (response.status === 401 || response.status === 403) return new AuthError(message, { url: response.url.href, status: response.status, reference, registryCode: code });
  return new RegistryError(message, { url: response.url.href, status: response.status, reference, registryCode: code });
}

