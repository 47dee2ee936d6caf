/**
 * tsrun as a library: start containers from a Node program.
 *
 * @example
 * import { run } from 'tsrun';
 * const c = await run({ rootfs: '/srv/busybox', args: ['hostname'], hostname: 'box' });
 * c.stdout?.pipe(process.stdout);
 * console.log(await c.wait()); // { exitCode: 0, signal: null }
 */
export { run } from './runtime/run';
export type { RunOptions, StdioOption } from './runtime/options';
export { Container } from './runtime/container';
export type { ExitResult } from './runtime/container';
export { ExitCode, exitCodeForStartError } from './runtime/exit-codes';
export { TsrunError, SyscallError, ValidationError, NotFoundError, ConflictError, ContentError, DigestMismatchError, LockTimeoutError } from './errors';
export type { Logger } from './logger';
export type { Spec, IdMapping } from './oci/runtime-spec';
export { Store } from './storage/store';
export type { Image, ImageLayer, ImageSummary, ImportOptions, LayerImageOptions, PruneResult } from './storage/store';
export type { ImageInspect } from './storage/inspect';
export { parseChanges, applyChanges } from './oci/image-changes';
export type { ImageConfigChanges } from './oci/image-changes';
export type { ImageConfig, ImageManifest, ImageIndex, Descriptor, Platform } from './oci/image-spec';
