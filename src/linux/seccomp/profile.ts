import fs = require('node:fs');
import { ValidationError } from '../../errors';
import type { LinuxSeccomp, LinuxSeccompArg, SeccompAction } from '../../oci/runtime-spec';
import { SeccompArch } from './bpf';

/**
 * Docker's seccomp profile format (`docker run --security-opt
 * seccomp=FILE.json`): the OCI form plus per-rule `includes`/`excludes`
 * on the container's capabilities, the architecture and the kernel
 * version, which are resolved when the container is created.
 */
export interface SeccompProfile {
  defaultAction: SeccompAction;
  defaultErrnoRet?: number;
  architectures?: string[];
  archMap?: { architecture: string; subArchitectures?: string[] | null }[] | null;
  flags?: string[];
  syscalls?: SeccompProfileRule[] | null;
}

export interface SeccompFilterCondition {
  caps?: string[];
  /** Docker's (Go's) names: amd64, arm64, x32, x86, arm... */
  arches?: string[];
  minKernel?: string;
}

export interface SeccompProfileRule {
  names?: string[];
  /** The older format's single name. */
  name?: string;
  action: SeccompAction;
  errnoRet?: number;
  args?: LinuxSeccompArg[] | null;
  comment?: string;
  includes?: SeccompFilterCondition;
  excludes?: SeccompFilterCondition;
}

export interface ProfileContext {
  /** The container's capabilities (CAP_*), its bounding set. */
  capabilities: readonly string[];
  arch: SeccompArch;
  /** "6.18.4-..." (default: this kernel). */
  kernel?: string;
}

const GO_ARCH: Record<SeccompArch, string> = { x86_64: 'amd64', aarch64: 'arm64' };

let hostKernel: string | undefined;

/**
 * This kernel's release, as uname(2) gives it. Read from /proc rather than
 * os.release(): node:os is compiled at its first require, which every CLI
 * start paid for this one string.
 */
function hostKernelRelease(): string {
  hostKernel ??= fs.readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim();
  return hostKernel;
}

function kernelAtLeast(release: string, min: string): boolean {
  const parse = (v: string): number[] => (/^(\d+)\.(\d+)/.exec(v) ?? ['', '0', '0']).slice(1).map(Number);
  const [a, b] = [parse(release), parse(min)];
  return a[0] !== b[0] ? a[0] > b[0] : a[1] >= b[1];
}

function applies(rule: SeccompProfileRule, ctx: ProfileContext): boolean {
  const arch = GO_ARCH[ctx.arch];
  const { includes = {}, excludes = {} } = rule;
  if (includes.caps && !includes.caps.every((c) => ctx.capabilities.includes(c))) return false;
  if (includes.arches && !includes.arches.includes(arch)) return false;
  if (includes.minKernel && !kernelAtLeast(ctx.kernel ?? hostKernelRelease(), includes.minKernel)) return false;
  if (excludes.caps && excludes.caps.some((c) => ctx.capabilities.includes(c))) return false;
  if (excludes.arches && excludes.arches.includes(arch)) return false;
  return true;
}

/** The profile's rules for this container, in the OCI form the filter compiler takes. */
export function resolveProfile(profile: SeccompProfile, ctx: ProfileContext): LinuxSeccomp {
  if (!profile || typeof profile !== 'object' || typeof profile.defaultAction !== 'string') {
    throw new ValidationError('seccomp', 'a profile needs a defaultAction');
  }
  const syscalls = (profile.syscalls ?? []).map((rule, i) => {
    const names = rule.names ?? (rule.name ? [rule.name] : []);
    if (names.length === 0) throw new ValidationError(`seccomp.syscalls[${i}]`, 'a rule needs names');
    if (typeof rule.action !== 'string') throw new ValidationError(`seccomp.syscalls[${i}].action`, 'is required');
    return { rule, names };
  });
  return {
    defaultAction: profile.defaultAction,
    defaultErrnoRet: profile.defaultErrnoRet,
    architectures: profile.architectures ?? (profile.archMap ?? []).flatMap((a) => [a.architecture, ...(a.subArchitectures ?? [])]),
    flags: profile.flags,
    syscalls: syscalls
      .filter(({ rule }) => applies(rule, ctx))
      .map(({ rule, names }) => ({ names, action: rule.action, errnoRet: rule.errnoRet, args: rule.args ?? undefined })),
  };
}

/** Reads a profile in Docker's JSON format; a bad file names itself in the error. */
export function readProfileFile(file: string): SeccompProfile {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new ValidationError('seccomp', `cannot read the profile ${file}: ${(err as Error).message}`);
  }
  try {
    return JSON.parse(text) as SeccompProfile;
  } catch (err) {
    throw new ValidationError('seccomp', `${file} is not a JSON seccomp profile: ${(err as Error).message}`);
  }
}
