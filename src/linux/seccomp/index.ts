import type { LinuxSeccomp } from '../../oci/runtime-spec';
import type { PlanStep } from '../../runtime/plan';
import { SeccompArch, compileSeccomp, hostSeccompArch, seccompFlags } from './bpf';
import { DEFAULT_SECCOMP_PROFILE } from './default-profile';
import { cachedSeccompProgram } from './program-cache';
import { SeccompProfile, readProfileFile, resolveProfile } from './profile';

export { DEFAULT_SECCOMP_PROFILE } from './default-profile';
export { compileSeccomp, hostSeccompArch, syscallNumber } from './bpf';
export type { SeccompArch } from './bpf';
export { readProfileFile, resolveProfile } from './profile';
export { seccompCacheDirIn } from './program-cache';
export type { SeccompProfile, SeccompProfileRule } from './profile';

/**
 * `linux.seccomp` for a container, as `docker run --security-opt seccomp=`
 * chooses it: `unconfined` (or --privileged) is none, a string is a
 * profile file in Docker's format, an object is such a profile, and by
 * default Docker's own profile. `capabilities` is the container's set.
 */
export function containerSeccomp(option: string | SeccompProfile | undefined, capabilities: readonly string[], arch: SeccompArch = hostSeccompArch()): LinuxSeccomp | undefined {
  if (option === 'unconfined') return undefined;
  if (option !== undefined) return resolveProfile(typeof option === 'string' ? readProfileFile(option) : option, { capabilities, arch });
  // Most containers share a few capability sets: the default profile is
  // resolved (and below, compiled) once per set, not once per container.
  const key = `${arch} ${[...capabilities].sort().join(',')}`;
  let resolved = defaultResolved.get(key);
  if (!resolved) {
    // Shared by every container with this set: frozen.
    resolved = Object.freeze(resolveProfile(DEFAULT_SECCOMP_PROFILE, { capabilities, arch }));
    defaultResolved.set(key, resolved);
  }
  return resolved;
}

const defaultResolved = new Map<string, LinuxSeccomp>();
const compiled = new WeakMap<LinuxSeccomp, Partial<Record<SeccompArch, Buffer>>>();

/**
 * The step that loads the filter; names the host has no number for are
 * left out. With `cacheDir`, the compiled program is kept there for other
 * processes (program-cache.ts).
 */
export function seccompStep(seccomp: LinuxSeccomp, cacheDir?: string, arch: SeccompArch = hostSeccompArch()): PlanStep {
  const programs = compiled.get(seccomp) ?? {};
  const program = programs[arch] ?? (cacheDir === undefined ? compileSeccomp(seccomp, arch).program : cachedSeccompProgram(seccomp, arch, cacheDir));
  programs[arch] = program;
  compiled.set(seccomp, programs);
  return { op: 'Seccomp', args: [seccompFlags(seccomp.flags)], blob: program, phase: 'seccomp', detail: `a filter of ${program.length / 8} instructions` };
}
