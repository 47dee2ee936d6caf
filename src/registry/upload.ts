import type { Readable } from 'node:stream';
import { RegistryError } from '../errors';
import type { Logger } from '../logger';
import type { Descriptor } from '../oci/image-spec';
import { RegistryClient, pullScope, pushScope, registryFailure } from './client';
import { HttpResponse, discard } from './http';
import { RetryPolicy, isTransientError, isTransientStatus, retryDelay, sleep } from './retry';

/**
 * Blob uploads (distribution spec, "Pushing blobs"): a blob the
 * repository has is skipped (HEAD); one that another repository of the
 * registry has is mounted from it; any other is uploaded, in one PUT when
 * it is at most `chunkSize`, else in PATCHes of `chunkSize` bytes. A
 * chunked upload that breaks resumes from the offset the registry reports
 * for the upload session.
 */

export interface BlobSource {
  descriptor: Descriptor;
  /** A fresh stream of the blob's bytes from `start` to `end` (exclusive). */
  read(start: number, end: number): Readable;
}

export interface UploadOptions {
  /** Repositories (paths on the same registry) that may hold the blob already. */
  mountFrom: string[];
  chunkSize: number;
  retry: RetryPolicy;
  logger: Logger;
  signal?: AbortSignal;
  /** Bytes the registry has acknowledged so far. */
  onProgress?: (bytes: number) => void;
}

export type UploadOutcome = { kind: 'exists' } | { kind: 'mounted'; from: string } | { kind: 'pushed' };

/** Repositories tried for a cross-repository mount, at most. */
const MAX_MOUNT_SOURCES = 3;

export async function uploadBlob(client: RegistryClient, repository: string, blob: BlobSource, options: UploadOptions): Promise<UploadOutcome> {
  const { digest } = blob.descriptor;
  if (await client.hasBlob(repository, digest, [pushScope(repository)], options.signal)) return { kind: 'exists' };
  let session: URL | undefined;
  for (const from of options.mountFrom.filter((r) => r !== repository).slice(0, MAX_MOUNT_SOURCES)) {
    const response = await startUpload(client, repository, options, { digest, from });
    if (response.status === 201) {
      discard(response);
      return { kind: 'mounted', from };
    }
    // 202: the registry could not mount it and opened an upload instead.
    session = client.location(response, `mounting ${digest} from ${from}`);
    discard(response);
    break;
  }
  for (let attempt = 0; ; attempt++) {
    session ??= await openSession(client, repository, options);
    try {
      if (blob.descriptor.size <= options.chunkSize) await putWhole(client, repository, session, blob, options);
      else await putChunks(client, repository, session, blob, options);
      return { kind: 'pushed' };
    } catch (err) {
      if (!isRetryable(err) || attempt >= options.retry.retries || options.signal?.aborted) throw err;
      options.logger.info({ blob: digest, err: (err as Error).message, attempt: attempt + 1 }, 'blob upload failed; starting it again');
      await sleep(retryDelay(options.retry, attempt + 1), options.signal);
      session = undefined;
    }
  }
}

function isRetryable(err: unknown): boolean {
  if (isTransientError(err) || isTransientError((err as Error)?.cause)) return true;
  return err instanceof RegistryError && err.status !== undefined && isTransientStatus(err.status);
}

async function startUpload(client: RegistryClient, repository: string, options: UploadOptions, mount?: { digest: string; from: string }): Promise<HttpResponse> {
  const query = mount ? `?mount=${encodeURIComponent(mount.digest)}&from=${encodeURIComponent(mount.from)}` : '';
  const scopes = mount ? [pushScope(repository), pullScope(mount.from)] : [pushScope(repository)];
  const response = await client.request({ method: 'POST', target: `/v2/${repository}/blobs/uploads/${query}`, scopes, headers: { 'Content-Length': '0' }, signal: options.signal });
  if (response.status === 201 || response.status === 202) return response;
  throw await registryFailure(response, `${client.host}/${repository}: starting a blob upload`);
}

async function openSession(client: RegistryClient, repository: string, options: UploadOptions): Promise<URL> {
  const response = await startUpload(client, repository, options);
  const location = client.location(response, `${client.host}/${repository}: starting a blob upload`);
  discard(response);
  return location;
}

function withDigest(location: URL, digest: string): string {
  const url = new URL(location);
  url.search = `${url.search ? `${url.search}&` : '?'}digest=${encodeURIComponent(digest)}`;
  return url.href;
}

/** The monolithic upload: the whole blob in the PUT that completes the session. */
async function putWhole(client: RegistryClient, repository: string, session: URL, blob: BlobSource, options: UploadOptions): Promise<void> {
  const { digest, size } = blob.descriptor;
  const response = await client.request({
    method: 'PUT',
    target: withDigest(session, digest),
    scopes: [pushScope(repository)],
    headers: { 'Content-Type': 'application/octet-stream', 'Content-Length': String(size) },
    body: () => blob.read(0, size),
    retry: false,
    signal: options.signal,
  });
  await completed(client, repository, response, digest);
  options.onProgress?.(size);
}

/** The chunked upload: PATCHes with Content-Range, then a PUT with the digest. */
async function putChunks(client: RegistryClient, repository: string, session: URL, blob: BlobSource, options: UploadOptions): Promise<void> {
  const { digest, size } = blob.descriptor;
  let location = session;
  let offset = 0;
  let failures = 0;
  while (offset < size) {
    const end = Math.min(offset + options.chunkSize, size);
    const start = offset;
    try {
      const response = await client.request({
        method: 'PATCH',
        target: location.href,
        scopes: [pushScope(repository)],
        headers: { 'Content-Type': 'application/octet-stream', 'Content-Length': String(end - start), 'Content-Range': `${start}-${end - 1}` },
        body: () => blob.read(start, end),
        retry: false,
        signal: options.signal,
      });
      if (response.status !== 202) throw await registryFailure(response, `${client.host}/${repository}: uploading bytes ${start}-${end - 1} of ${digest}`);
      location = client.location(response, `uploading ${digest}`);
      offset = acknowledged(response) ?? end;
      discard(response);
      failures = 0;
      options.onProgress?.(offset);
    } catch (err) {
      if (!isRetryable(err) || ++failures > options.retry.retries || options.signal?.aborted) throw err;
      await sleep(retryDelay(options.retry, failures), options.signal);
      // Where the session stands decides where to go on from.
      const status = await client.request({ method: 'GET', target: location.href, scopes: [pushScope(repository)], signal: options.signal });
      if (status.status !== 204) throw await registryFailure(status, `${client.host}/${repository}: resuming the upload of ${digest}`);
      location = client.location(status, `resuming the upload of ${digest}`);
      offset = acknowledged(status) ?? 0;
      discard(status);
      options.logger.info({ blob: digest, offset, err: (err as Error).message }, 'resuming a chunked upload');
    }
  }
  const response = await client.request({
    method: 'PUT',
    target: withDigest(location, digest),
    scopes: [pushScope(repository)],
    headers: { 'Content-Length': '0' },
    retry: false,
    signal: options.signal,
  });
  await completed(client, repository, response, digest);
}

/**
 * The bytes an upload session holds, from its `Range: 0-<last>` header.
 * distribution says `0-0` both for nothing and for one byte; a
 * one-byte chunk is sent again then, which a chunk size never makes.
 */
function acknowledged(response: HttpResponse): number | undefined {
  const match = /^0-(\d+)$/.exec(String(response.headers.range ?? ''));
  if (!match) return undefined;
  return Number(match[1]) === 0 ? 0 : Number(match[1]) + 1;
}

async function completed(client: RegistryClient, repository: string, response: HttpResponse, digest: string): Promise<void> {
  if (response.status !== 201) throw await registryFailure(response, `${client.host}/${repository}: completing the upload of ${digest}`);
  const stored = response.headers['docker-content-digest'];
  discard(response);
  if (typeof stored === 'string' && stored !== digest) {
    throw new RegistryError(`${client.host}/${repository}: uploaded ${digest}, the registry stored ${stored}`, { url: response.url.href, status: response.status });
  }
}
