/**
 * When a registry request is worth sending again: the connection broke or
 * timed out, or the registry said it is overloaded or failing for now.
 * Waits grow twice each time, with jitter so that concurrent downloads do
 * not come back at once.
 */
export interface RetryPolicy {
  /** Tries after the first one. */
  retries: number;
  /** The first wait; each next one is twice as long, at most MAX_DELAY_MS. */
  delayMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = { retries: 4, delayMs: 500 };

const MAX_DELAY_MS = 30_000;

/** Broken or stalled connections. A refused connection is not among them: nothing listens there, and waiting will not change that soon. */
const TRANSIENT_CODES = new Set(['ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'ECONNABORTED', 'EAI_AGAIN', 'ENETUNREACH', 'EHOSTUNREACH', 'ERR_STREAM_PREMATURE_CLOSE', 'HPE_INVALID_CHUNK_SIZE', 'HPE_INVALID_CONSTANT']);

export function isTransientError(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException)?.code;
  return typeof code === 'string' && TRANSIENT_CODES.has(code);
}

/** 408 Request Timeout, 429 Too Many Requests and the 5xx a registry returns while it recovers. */
export function isTransientStatus(status: number): boolean {
  return status === 408 || status === 429 || status === 500 || status === 502 || status === 503 || status === 504;
}

/** How long to wait before try number `attempt` (1 for the first retry); a Retry-After in seconds wins when it is longer. */
export function retryDelay(policy: RetryPolicy, attempt: number, retryAfter?: string | string[]): number {
  const exponential = Math.min(policy.delayMs * 2 ** (attempt - 1), MAX_DELAY_MS);
  const jittered = exponential / 2 + Math.random() * (exponential / 2);
  const asked = typeof retryAfter === 'string' && /^\d+$/.test(retryAfter) ? Math.min(Number(retryAfter) * 1000, MAX_DELAY_MS) : 0;
  return Math.max(jittered, asked);
}

/** Resolves after `ms`, or rejects at once when `signal` aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
