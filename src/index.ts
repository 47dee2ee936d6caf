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
export type { ResourceOptions } from './linux/cgroups/resources';
export { Container } from './runtime/container';
export { Terminal, connectTerminal, hostTerminalSize } from './runtime/terminal';
export { parseDetachKeys, DetachKeyFilter, DEFAULT_DETACH_KEYS } from './runtime/detach-keys';
export type { HostTerminal } from './runtime/terminal';
export type { TerminalSize } from './linux/pty';
export { parseVolumeFlag, parseMountFlag, createVolume, listVolumes, inspectVolume, removeVolume } from './runtime/volumes';
export type { VolumeMount, Propagation } from './runtime/volumes';
export type { VolumeRecord } from './storage/volumes';
export { createNetwork, listNetworks, inspectNetwork, removeNetwork, checkContainerNetwork } from './network/manage';
export type { NetworkInspect, NetworkLocation } from './network/manage';
export { removeLeftoverAttachments } from './network/attachments';
export { parsePublish } from './network/ports';
export type { PortMapping } from './network/ports';
export type { ExitResult } from './runtime/container';
export { containerStats, streamContainerStats, updateContainer, removeLeftoverContainerCgroups } from './runtime/container-resources';
export type { ContainerStats, StatsOptions, UpdateResult } from './runtime/container-resources';
export { inspectContainer } from './runtime/containers';
export type { ContainerLocation } from './runtime/containers';
export type { ContainerInspect } from './runtime/container-inspect';
export { ExitCode, exitCodeForStartError } from './runtime/exit-codes';
export { build } from './build/builder';
export type { BuildOptions, BuildResult, BuildEvent, BuildStep } from './build/builder';
export { TsrunError, BuildError, SyscallError, ValidationError, NotFoundError, ConflictError, ContentError, DigestMismatchError, LockTimeoutError, RegistryError, AuthError, NetworkError } from './errors';
export type { RegistryErrorDetails } from './errors';
export type { Logger } from './logger';
export type { Spec, IdMapping, LinuxResources, LinuxCapabilities, LinuxSeccomp, Mount, POSIXRlimit } from './oci/runtime-spec';
export { DEFAULT_CAPABILITIES } from './linux/capabilities';
export { DEFAULT_SECCOMP_PROFILE } from './linux/seccomp/default-profile';
export type { SeccompProfile, SeccompProfileRule } from './linux/seccomp/profile';
export type { Ulimit } from './linux/rlimits';
export type { SubIdFiles } from './linux/userns-remap';
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
export { pruneSystem, diskUsage, checkSystem } from './runtime/system';
export type { SystemPruneOptions, SystemPruneResult, DiskUsageRow } from './runtime/system';
export type { CheckOptions, CheckReport, StoreProblem, ProblemKind } from './storage/check';
