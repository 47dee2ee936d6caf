import { ContentError, RegistryError } from '../errors';
import type { Logger } from '../logger';
import type { Descriptor } from '../oci/image-spec';
import { RegistryClient, pullScope, registryFailure } from './client';
import type { HttpResponse } from './http';
import { RetryPolicy, isTransientError, retryDelay, sleep } from './retry';

export interface BlobDownloadOptions {
  retry: RetryPolicy;
  logger: Logger;
  signal?: AbortSignal;
  /** Told before each wait to resume, with the failure that caused it. */
  onRetry?: (attempt: number, delayMs: number, reason: string) => void;
}

/**
 * The bytes of a blob as they arrive, never more than the descriptor's
 * size. When the connection breaks, or the body ends short, the download
 * resumes from the last byte received with a Range request; a registry
 * that ignores Range sends the whole blob again and the bytes already
 * yielded are skipped. So the consumer sees one continuous stream and
 * hashes it as such. A failure without progress counts against the retry
 * policy; progress resets the count.
 */
export async function* blobChunks(client: RegistryClient, repository: string, descriptor: Descriptor, subject: string, options: BlobDownloadOptions): AsyncGenerator<Buffer> {
  const { digest, size } = descriptor;
  let received = 0;
  let failures = 0;
  const failed = async (reason: string, err?: unknown): Promise<void> => {
    if (options.signal?.aborted) throw err ?? options.signal.reason;
    failures++;
    if (failures > options.retry.retries) {
      throw new RegistryError(`${subject}: download failed after ${failures} tries: ${reason}`, { url: `${client.host}/v2/${repository}/blobs/${digest}` }, { cause: err });
    }
    const delay = retryDelay(options.retry, failures);
    options.logger.info({ blob: digest, received, size, reason, attempt: failures }, 'blob download interrupted; resuming');
    options.onRetry?.(failures, delay, reason);
    await sleep(delay, options.signal);
  };

  while (received < size) {
    const response = await client.request({
      method: 'GET',
      target: `/v2/${repository}/blobs/${digest}`,
      scopes: [pullScope(repository)],
      headers: received > 0 ? { Range: `bytes=${received}-` } : {},
      signal: options.signal,
    });
    let skip = await bytesToSkip(response, received, subject);
    try {
      for await (const chunk of response.body as AsyncIterable<Buffer>) {
        let data = chunk;
        if (skip > 0) {
          const skipped = Math.min(skip, data.length);
          skip -= skipped;
          data = data.subarray(skipped);
          if (data.length === 0) continue;
        }
        if (received + data.length > size) throw new ContentError(subject, `the registry sent more than the ${size} bytes the manifest says it has`);
        received += data.length;
        failures = 0;
        yield data;
      }
    } catch (err) {
      if (!isTransientError(err)) throw err;
      await failed((err as Error).message, err);
      continue;
    } finally {
      // Only a body left half-read is destroyed (with its connection); a complete one goes back to the pool.
      if (!response.body.complete) response.body.destroy();
    }
    if (received < size) await failed(`the body ended after ${received} of ${size} bytes`);
  }
}

/** How much of the response repeats bytes already received: all of them for a 200 to a Range request. */
async function bytesToSkip(response: HttpResponse, received: number, subject: string): Promise<number> {
  if (response.status === 200) return received;
  if (response.status === 206 && received > 0) {
    const start = /^bytes (\d+)-/.exec(response.headers['content-range'] ?? '')?.[1];
    if (start !== undefined && Number(start) <= received) return received - Number(start);
    response.body.destroy();
    throw new ContentError(subject, `asked for bytes from ${received}, the registry sent ${response.headers['content-range'] ?? 'no Content-Range'}`);
  }
  if (response.status === 404) throw await registryFailure(response, `${subject}: the registry does not have it`);
  throw await registryFailure(response, `fetching ${subject}`);
}
