import * as os from 'node:os';
import type { Platform } from './image-spec';

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
