import http = require('node:http');
import https = require('node:https');
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type * as tls from 'node:tls';
import { ContentError, TsrunError } from '../errors';

/**
 * HTTP for the registry client, on node:http and node:https. Each client
 * owns its connection pools and closes them when done, so a pull leaves
 * no socket open in a long-running process; responses are Node streams,
 * read with backpressure straight into the store.
 */

export type HttpMethod = 'GET' | 'HEAD' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

export interface HttpRequest {
  method: HttpMethod;
  url: URL;
  headers?: Record<string, string>;
  /** A buffer, or a function that makes a fresh stream of the body each time the request is sent. */
  body?: Buffer | (() => Readable);
  signal?: AbortSignal;
}

export interface HttpResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: http.IncomingMessage;
  /** The URL that answered, after redirects. */
  url: URL;
}

export interface TransportOptions {
  tls: tls.ConnectionOptions;
  /** Connections per host, for concurrent downloads. */
  maxSockets: number;
  /** A connection that sends nothing for this long is dropped (and the request retried by the caller). */
  idleTimeoutMs: number;
}

const REDIRECTS = [301, 302, 303, 307, 308];
const MAX_REDIRECTS = 10;
const USER_AGENT = `tsrun (node ${process.versions.node}; ${process.platform})`;

export class HttpTransport {
  private readonly httpAgent: http.Agent;
  private readonly httpsAgent: https.Agent;

  constructor(private readonly options: TransportOptions) {
    this.httpAgent = new http.Agent({ keepAlive: true, maxSockets: options.maxSockets });
    this.httpsAgent = new https.Agent({ keepAlive: true, maxSockets: options.maxSockets, ...options.tls });
  }

  /**
   * Sends a request and resolves with the response once its headers are
   * in; the caller reads or discards the body. GET and HEAD follow
   * redirects (blob downloads are sent to storage hosts), without the
   * Authorization header once they leave the registry's origin.
   */
  async send(request: HttpRequest): Promise<HttpResponse> {
    let url = request.url;
    let headers = { ...request.headers };
    for (let redirects = 0; ; redirects++) {
      const response = await this.sendOnce(request, url, headers);
      const location = response.headers.location;
      if (!REDIRECTS.includes(response.status) || location === undefined || (request.method !== 'GET' && request.method !== 'HEAD')) return response;
      discard(response);
      if (redirects === MAX_REDIRECTS) throw new TsrunError(`${request.method} ${request.url.href}: more than ${MAX_REDIRECTS} redirects`, 'EREDIRECT');
      const next = new URL(location, url);
      if (next.origin !== url.origin) {
        const { Authorization: _dropped, ...rest } = headers;
        headers = rest;
      }
      url = next;
    }
  }

  private sendOnce(request: HttpRequest, url: URL, headers: Record<string, string>): Promise<HttpResponse> {
    const secure = url.protocol === 'https:';
    return new Promise((resolve, reject) => {
      const req = (secure ? https : http).request(url, {
        method: request.method,
        headers: { 'User-Agent': USER_AGENT, ...headers },
        agent: secure ? this.httpsAgent : this.httpAgent,
        signal: request.signal,
        timeout: this.options.idleTimeoutMs,
      });
      req.once('timeout', () => req.destroy(new TsrunError(`${request.method} ${url.href}: no data for ${this.options.idleTimeoutMs / 1000} s`, 'ETIMEDOUT')));
      req.once('error', reject);
      req.once('response', (res) => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: res, url }));
      const body = request.body;
      if (body === undefined || Buffer.isBuffer(body)) {
        req.end(body);
      } else {
        // A registry may answer (401, 404) before reading the whole body: the response decides, not the upload.
        pipeline(body(), req).catch((err: Error) => req.destroy(err));
      }
    });
  }

  /** Closes every connection, idle or not. */
  close(): void {
    this.httpAgent.destroy();
    this.httpsAgent.destroy();
  }
}

/** Throws away a response's body, so its connection can serve the next request. */
export function discard(response: HttpResponse): void {
  response.body.resume();
  response.body.on('error', () => undefined);
}

/** Reads a whole (small) response body; `subject` names it when it is larger than `limit`. */
export async function readBody(response: HttpResponse, limit: number, subject: string): Promise<Buffer> {
  const declared = Number(response.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) {
    response.body.destroy();
    throw new ContentError(subject, `${declared} bytes is more than the ${limit} allowed`);
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of response.body) {
    size += (chunk as Buffer).length;
    if (size > limit) {
      response.body.destroy();
      throw new ContentError(subject, `more than the ${limit} bytes allowed`);
    }
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks, size);
}
