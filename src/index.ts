/**
 * tsrun as a library: start containers from a Node program.
 *
 * @example
 * import { run } from 'tsrun';
 * const c = await run({ rootfs: '/srv/busybox', args: ['hostname'], hostname: 'box' });
 * c.stdout?.pipe(process.stdout);
 * console.log(await c.wait()); // { exitCode: 0, signal: null }
 */
export { run, create } from './runtime/run';
export type { CreatedContainer } from './runtime/run';
export { startContainer, stopContainer, restartContainer, killContainer, waitContainer } from './runtime/detached';
export { parseRestartPolicy } from './runtime/run';
export type { RestartPolicy } from './runtime/run';
export { ociCreate, ociStart, ociState, ociKill, ociDelete, ociList, ociExec, ociPause, ociResume, ociPids } from './runtime/oci-runtime';
export type { OciState, CreateOptions as OciCreateOptions } from './runtime/oci-runtime';
export { containerLogs } from './runtime/logs';
export { execInContainer, containerProcesses } from './runtime/exec';
export type { ExecOptions, ContainerProcess } from './runtime/exec';
export type { LogEntry, LogOptions } from './runtime/logs';
export type { MonitorExit } from './runtime/monitor';
export type { OciStatus } from './runtime/lifecycle';
export type { RunOptions, StdioOption } from './runtime/options';
export type { ResourceOptions } from './linux/cgroups/resources';
export { Container } from './runtime/container';
export type { ExitResult } from './runtime/container';
export { containerStats, streamContainerStats, updateContainer, removeLeftoverContainerCgroups } from './runtime/container-resources';
export type { ContainerStats, StatsOptions, UpdateResult } from './runtime/container-resources';
export { inspectContainer } from './runtime/containers';
export type { ContainerLocation } from './runtime/containers';
export type { ContainerInspect } from './runtime/container-inspect';
export { ExitCode, exitCodeForStartError } from './runtime/exit-codes';
export { TsrunError, SyscallError, ValidationError, NotFoundError, ConflictError, StateError, ContentError, DigestMismatchError, LockTimeoutError, RegistryError, AuthError } from './errors';
export type { RegistryErrorDetails } from './errors';
export type { Logger } from './logger';
export type { Spec, IdMapping, LinuxResources } from './oci/runtime-spec';
export { Store } from './storage/store';
export type { Image, ImageLayer, ImageSummary, ImportOptions, LayerImageOptions, PruneResult } from './storage/store';
export { pullImage, pullIfMissing } from './registry/pull';
export type { PullOptions, PullResult } from './registry/pull';
export { pushImage } from './registry/push';
export type { PushOptions, PushResult } from './registry/push';
export { login, logout } from './registry/login';
export type { LoginResult } from './registry/login';
export type { RegistryOptions } from './registry/client';
export type { Credentials } from './registry/credentials';
export type { LayerProgress, LayerStatus, ProgressListener } from './registry/progress';
export type { ImageInspect } from './storage/inspect';
export { parseChanges, applyChanges } from './oci/image-changes';
export type { ImageConfigChanges } from './oci/image-changes';
export type { ImageConfig, ImageManifest, ImageIndex, Descriptor, Platform } from './oci/image-spec';
