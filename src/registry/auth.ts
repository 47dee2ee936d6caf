import { AuthError, RegistryError } from '../errors';
import type { Logger } from '../logger';
import type { Challenge } from './challenge';
import type { Credentials } from './credentials';
import { HttpRequest, HttpResponse, HttpTransport, readBody } from './http';

/**
 * The Authorization header for a registry request, by the scheme the
 * registry's challenge names:
 *
 * - Basic: the stored user and password on every request.
 * - Bearer (the distribution token flow): a token from the challenge's
 *   realm for the request's scopes (`repository:library/busybox:pull`),
 *   asked for with the credentials, or anonymously without any. Tokens
 *   are kept per scope set until they expire.
 */

/** Tokens that say nothing of their lifetime last 60 s (the token spec's default). */
const DEFAULT_TOKEN_SECONDS = 60;
/** A token this close to expiring is not used: a request may take that long to reach the registry. */
const EXPIRY_MARGIN_MS = 10_000;
const TOKEN_RESPONSE_LIMIT = 1024 * 1024;
const CLIENT_ID = 'tsrun';

export class Authenticator {
  private readonly tokens = new Map<string, { header: string; expires: number }>();

  constructor(
    private readonly transport: HttpTransport,
    private readonly host: string,
    private readonly credentials: Credentials | undefined,
    private readonly logger: Logger,
  ) {}

  get hasCredentials(): boolean {
    return this.credentials !== undefined;
  }

  /** The header for a request with `scopes` under `challenge` (undefined: send none). */
  async authorization(challenge: Challenge | undefined, scopes: string[], signal?: AbortSignal): Promise<string | undefined> {
    if (challenge === undefined) return undefined;
    if (challenge.scheme === 'basic') return this.credentials ? basicHeader(this.credentials) : undefined;
    if (challenge.scheme !== 'bearer') return undefined;
    const key = tokenKey(challenge, scopes);
    const cached = this.tokens.get(key);
    if (cached && cached.expires - EXPIRY_MARGIN_MS > Date.now()) return cached.header;
    const token = await this.fetchToken(challenge, scopes, signal);
    this.tokens.set(key, token);
    return token.header;
  }

  /** Forgets the token for `scopes`, after the registry refused it. */
  forget(challenge: Challenge, scopes: string[]): void {
    this.tokens.delete(tokenKey(challenge, scopes));
  }

  private async fetchToken(challenge: Challenge, scopes: string[], signal?: AbortSignal): Promise<{ header: string; expires: number }> {
    const realm = challenge.params.realm;
    if (!realm) throw new RegistryError(`registry ${this.host} asked for a bearer token without saying where to get one (no realm)`, { url: `https://${this.host}/v2/` });
    let url: URL;
    try {
      url = new URL(realm);
    } catch {
      throw new RegistryError(`registry ${this.host} sent an invalid token realm ${JSON.stringify(realm)}`, { url: `https://${this.host}/v2/` });
    }
    const params = new URLSearchParams();
    if (challenge.params.service) params.set('service', challenge.params.service);
    for (const scope of scopes) params.append('scope', scope);
    let response: HttpResponse;
    const credentials = this.credentials;
    if (credentials?.identityToken) {
      // A refresh token is exchanged with the OAuth2 form post, as Docker does.
      params.set('grant_type', 'refresh_token');
      params.set('refresh_token', credentials.identityToken);
      params.set('client_id', CLIENT_ID);
      response = await this.send({ method: 'POST', url, headers: { 'Content-Type': 'application/x-www-form-urlencoded' }, body: Buffer.from(params.toString()), signal });
    } else {
      if (credentials) params.set('account', credentials.username);
      url.search = url.search ? `${url.search.slice(1)}&${params}` : params.toString();
      response = await this.send({ method: 'GET', url, headers: credentials ? { Authorization: basicHeader(credentials) } : {}, signal });
    }
    const body = await readBody(response, TOKEN_RESPONSE_LIMIT, `token from ${url.origin}${url.pathname}`);
    if (response.status === 401 || response.status === 403) {
      const why = serverDetail(body) ?? (this.credentials ? 'incorrect username or password' : 'the token server requires credentials (run tsrun login)');
      throw new AuthError(`${this.host}: unauthorized: ${why}`, { url: url.href, status: response.status });
    }
    if (response.status !== 200) {
      const detail = serverDetail(body);
      throw new RegistryError(`${this.host}: the token server at ${url.origin} answered ${response.status}${detail ? `: ${detail}` : ''}`, { url: url.href, status: response.status });
    }
    let parsed: { token?: unknown; access_token?: unknown; expires_in?: unknown; issued_at?: unknown };
    try {
      parsed = JSON.parse(body.toString('utf8'));
    } catch {
      throw new RegistryError(`${this.host}: the token server at ${url.origin} did not answer with JSON`, { url: url.href, status: response.status });
    }
    const token = typeof parsed.token === 'string' && parsed.token !== '' ? parsed.token : parsed.access_token;
    if (typeof token !== 'string' || token === '') throw new RegistryError(`${this.host}: the token server at ${url.origin} sent no token`, { url: url.href, status: response.status });
    const seconds = typeof parsed.expires_in === 'number' && parsed.expires_in > 0 ? parsed.expires_in : DEFAULT_TOKEN_SECONDS;
    const issued = typeof parsed.issued_at === 'string' && !Number.isNaN(Date.parse(parsed.issued_at)) ? Math.min(Date.parse(parsed.issued_at), Date.now()) : Date.now();
    this.logger.debug({ registry: this.host, scopes, expiresIn: seconds }, 'registry token');
    return { header: `Bearer ${token}`, expires: issued + seconds * 1000 };
  }

  private async send(request: HttpRequest): Promise<HttpResponse> {
    try {
      return await this.transport.send(request);
    } catch (err) {
      throw new RegistryError(`${this.host}: cannot reach the token server ${request.url.origin}: ${(err as Error).message}`, { url: request.url.href }, { cause: err });
    }
  }
}

export function basicHeader(credentials: Credentials): string {
  return `Basic ${Buffer.from(`${credentials.username}:${credentials.password}`, 'utf8').toString('base64')}`;
}

function tokenKey(challenge: Challenge, scopes: string[]): string {
  return `${challenge.params.realm}\n${challenge.params.service ?? ''}\n${[...scopes].sort().join(' ')}`;
}

/** What a token server said about a refusal: `{"details": ...}` from Docker Hub, or distribution's errors. */
function serverDetail(body: Buffer): string | undefined {
  try {
    const parsed = JSON.parse(body.toString('utf8')) as { details?: unknown; errors?: { message?: unknown }[] };
    const text = typeof parsed.details === 'string' ? parsed.details : parsed.errors?.map((e) => e.message).filter((m) => typeof m === 'string').join('; ');
    return text || undefined;
  } catch {
    return undefined;
  }
}
