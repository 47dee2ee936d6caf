/**
 * Per-layer progress of a pull or push, as Docker reports it: one line per
 * blob, named by the first 12 hex digits of its digest. The library emits
 * these; the CLI draws them (bars on a terminal, a line per change
 * otherwise).
 */
export type LayerStatus =
  | 'Pulling fs layer'
  | 'Already exists'
  | 'Downloading'
  | 'Retrying'
  | 'Download complete'
  | 'Pull complete'
  | 'Preparing'
  | 'Pushing'
  | 'Layer already exists'
  | 'Mounted'
  | 'Pushed';

export interface LayerProgress {
  /** `sha256:` digest's first 12 hex digits. */
  id: string;
  status: LayerStatus;
  /** Bytes done and in all, for Downloading and Pushing. */
  current?: number;
  total?: number;
  /** Why a retry, where a blob was mounted from. */
  detail?: string;
}

export type ProgressListener = (progress: LayerProgress) => void;

export function shortDigest(digest: string): string {
  return digest.slice(digest.indexOf(':') + 1, digest.indexOf(':') + 13);
}
