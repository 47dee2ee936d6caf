import os = require('node:os');
import { ContentError, ValidationError } from '../errors';
import type { Descriptor, Platform } from './image-spec';

/** Node's process.arch in Go's GOARCH terms, which image platforms use. */
const GOARCH: Record<string, string> = {
  x64: 'amd64',
  arm64: 'arm64',
  arm: 'arm',
  ia32: '386',
  ppc64: os.endianness() === 'LE' ? 'ppc64le' : 'ppc64',
  s390x: 's390x',
  riscv64: 'riscv64',
  loong64: 'loong64',
  mips: 'mips',
  mipsel: 'mipsle',
};

/** The platform this process runs on, as an image index names it. */
export function hostPlatform(): Platform {
  const architecture = GOARCH[process.arch] ?? process.arch;
  if (architecture === 'arm64') return { os: 'linux', architecture, variant: 'v8' };
  if (architecture === 'arm') {
    const version = (process.config.variables as { arm_version?: string }).arm_version;
    return { os: 'linux', architecture, variant: `v${version ?? '7'}` };
  }
  return { os: 'linux', architecture };
}

/**
 * Whether an image for `candidate` runs on `host`. A missing variant
 * matches (most indexes omit arm64's v8), as containerd's matcher does.
 */
export function platformMatches(candidate: Platform, host: Platform): boolean {
  if (candidate.os !== host.os || candidate.architecture !== host.architecture) return false;
  return candidate.variant === undefined || host.variant === undefined || candidate.variant === host.variant;
}

export function formatPlatform(platform: Platform): string {
  return [platform.os, platform.architecture, platform.variant].filter(Boolean).join('/');
}

/** Other names for architectures, as containerd normalises them. */
const ARCH_ALIASES: Record<string, string> = { x86_64: 'amd64', 'x86-64': 'amd64', aarch64: 'arm64', i386: '386', armhf: 'arm', armel: 'arm' };
/** The variant an architecture name implies when none is given. */
const IMPLIED_VARIANT: Record<string, string> = { arm64: 'v8', aarch64: 'v8', armhf: 'v7', armel: 'v6' };

/**
 * `--platform` as Docker takes it: `os[/arch[/variant]]`, or an
 * architecture alone (`arm64`), which means Linux. The architecture
 * defaults to the host's.
 */
export function parsePlatform(text: string): Platform {
  const parts = text.trim().toLowerCase().split('/');
  if (parts.length > 3 || parts.some((p) => !/^[a-z0-9_.-]+$/.test(p))) throw new ValidationError('platform', `${JSON.stringify(text)} is not os[/arch[/variant]]`);
  const isArchitecture = (name: string): boolean => Object.values(GOARCH).includes(name) || name in ARCH_ALIASES;
  const [os, arch, variant] = parts.length === 1 && isArchitecture(parts[0]) ? ['linux', parts[0]] : parts;
  const platform: Platform = { os, architecture: arch === undefined ? hostPlatform().architecture : (ARCH_ALIASES[arch] ?? arch) };
  const impliedVariant = arch === undefined ? hostPlatform().variant : IMPLIED_VARIANT[arch];
  if ((variant ?? impliedVariant) !== undefined) platform.variant = variant ?? impliedVariant;
  return platform;
}

/**
 * The entry of an image index for `platform`; throws naming `subject` and
 * listing what the index has when none fits. An exact variant wins over
 * an entry that leaves it out.
 */
export function pickPlatformManifest(manifests: Descriptor[], platform: Platform, subject: string): Descriptor {
  const candidates = manifests.filter((d) => d.platform && platformMatches(d.platform, platform));
  if (candidates.length > 0) return candidates.find((d) => d.platform?.variant === platform.variant) ?? candidates[0];
  // An index of one entry without a platform is an image wrapped in an index, not a choice.
  if (manifests.length === 1 && !manifests[0].platform) return manifests[0];
  const offered = manifests.map((d) => (d.platform ? formatPlatform(d.platform) : 'unknown'));
  throw new ContentError(subject, `no image for ${formatPlatform(platform)} (the index has ${offered.join(', ') || 'no images'})`);
}
