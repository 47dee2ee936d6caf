import fs = require('node:fs');
import { ValidationError } from '../errors';
import type { LinuxCapabilities } from '../oci/runtime-spec';
import type { PlanStep } from '../runtime/plan';

/** Capability numbers, from <linux/capability.h>. */
export const CAPABILITIES: Readonly<Record<string, number>> = {
  CAP_CHOWN: 0,
  CAP_DAC_OVERRIDE: 1,
  CAP_DAC_READ_SEARCH: 2,
  CAP_FOWNER: 3,
  CAP_FSETID: 4,
  CAP_KILL: 5,
  CAP_SETGID: 6,
  CAP_SETUID: 7,
  CAP_SETPCAP: 8,
  CAP_LINUX_IMMUTABLE: 9,
  CAP_NET_BIND_SERVICE: 10,
  CAP_NET_BROADCAST: 11,
  CAP_NET_ADMIN: 12,
  CAP_NET_RAW: 13,
  CAP_IPC_LOCK: 14,
  CAP_IPC_OWNER: 15,
  CAP_SYS_MODULE: 16,
  CAP_SYS_RAWIO: 17,
  CAP_SYS_CHROOT: 18,
  CAP_SYS_PTRACE: 19,
  CAP_SYS_PACCT: 20,
  CAP_SYS_ADMIN: 21,
  CAP_SYS_BOOT: 22,
  CAP_SYS_NICE: 23,
  CAP_SYS_RESOURCE: 24,
  CAP_SYS_TIME: 25,
  CAP_SYS_TTY_CONFIG: 26,
  CAP_MKNOD: 27,
  CAP_LEASE: 28,
  CAP_AUDIT_WRITE: 29,
  CAP_AUDIT_CONTROL: 30,
  CAP_SETFCAP: 31,
  CAP_MAC_OVERRIDE: 32,
  CAP_MAC_ADMIN: 33,
  CAP_SYSLOG: 34,
  CAP_WAKE_ALARM: 35,
  CAP_BLOCK_SUSPEND: 36,
  CAP_AUDIT_READ: 37,
  CAP_PERFMON: 38,
  CAP_BPF: 39,
  CAP_CHECKPOINT_RESTORE: 40,
};

/** Docker's default set: CapEff 00000000a80425fb for root in the container. */
export const DEFAULT_CAPABILITIES: readonly string[] = [
  'CAP_CHOWN',
  'CAP_DAC_OVERRIDE',
  'CAP_FSETID',
  'CAP_FOWNER',
  'CAP_MKNOD',
  'CAP_NET_RAW',
  'CAP_SETGID',
  'CAP_SETUID',
  'CAP_SETFCAP',
  'CAP_SETPCAP',
  'CAP_NET_BIND_SERVICE',
  'CAP_SYS_CHROOT',
  'CAP_KILL',
  'CAP_AUDIT_WRITE',
];

const PR_CAPBSET_DROP = 24;
const PR_SET_KEEPCAPS = 8;
const PR_CAP_AMBIENT = 47;
const PR_CAP_AMBIENT_RAISE = 2;

/** "net_admin", "NET_ADMIN" and "CAP_NET_ADMIN" all name CAP_NET_ADMIN, as in Docker. */
export function normalizeCapability(name: string): string {
  const upper = name.trim().toUpperCase();
  return upper.startsWith('CAP_') ? upper : `CAP_${upper}`;
}

/** Capability names by number. */
const NAME_OF_CAPABILITY: readonly string[] = Object.keys(CAPABILITIES).reduce<string[]>((names, name) => {
  names[CAPABILITIES[name]] = name;
  return names;
}, []);

// Read once per process: every container start needs them, and neither
// changes under a running runtime (the kernel's is fixed; this process's
// bounding set could only shrink by a prctl that tsrun never makes).
let kernelLastCapability: number | undefined;
let processBoundingSet: bigint | undefined;

/** The kernel's highest capability number (/proc/sys/kernel/cap_last_cap). */
export function lastCapability(file?: string): number {
  if (file === undefined && kernelLastCapability !== undefined) return kernelLastCapability;
  let last: number;
  try {
    last = Number(fs.readFileSync(file ?? '/proc/sys/kernel/cap_last_cap', 'utf8').trim());
  } catch {
    last = CAPABILITIES.CAP_CHECKPOINT_RESTORE;
  }
  if (file === undefined) kernelLastCapability = last;
  return last;
}

/** The capability bounding set of this process: what any container it starts can get at most. */
export function ownBoundingSet(status?: string): bigint {
  if (status === undefined && processBoundingSet !== undefined) return processBoundingSet;
  const line = /^CapBnd:\s*([0-9a-f]+)$/m.exec(fs.readFileSync(status ?? '/proc/self/status', 'utf8'));
  const set = line ? BigInt(`0x${line[1]}`) : 0n;
  if (status === undefined) processBoundingSet = set;
  return set;
}

/** Every capability this kernel has, by name. */
export function allCapabilities(lastCap = lastCapability()): string[] {
  return Object.keys(CAPABILITIES).filter((name) => CAPABILITIES[name] <= lastCap);
}

export function capabilityMask(field: string, names: readonly string[] = []): bigint {
  let mask = 0n;
  names.forEach((name, i) => {
    const bit = CAPABILITIES[name];
    if (bit === undefined) throw new ValidationError(`${field}[${i}]`, `unknown capability ${JSON.stringify(name)}`);
    mask |= 1n << BigInt(bit);
  });
  return mask;
}

export function capabilityNames(mask: bigint): string[] {
  const names: string[] = [];
  for (let bit = 0; bit < NAME_OF_CAPABILITY.length; bit++) {
    if ((mask >> BigInt(bit)) & 1n) names.push(NAME_OF_CAPABILITY[bit]);
  }
  return names;
}

export interface CapabilityOptions {
  capAdd?: readonly string[];
  capDrop?: readonly string[];
  privileged?: boolean;
  /** The container's uid: Docker gives a non-root user only the bounding set, as execve would. */
  uid: number;
}

/**
 * The process's capability sets as `docker run` computes them: the default
 * set minus --cap-drop, plus --cap-add; --cap-add ALL is every capability
 * but the dropped ones, --cap-drop ALL leaves only the added ones, and
 * --privileged is every capability. Unknown names are an
 * error. Capabilities this runtime does not hold itself (this process's
 * bounding set) cannot be given: a named one is an error, ALL leaves it out.
 */
export function dockerCapabilities(options: CapabilityOptions): LinuxCapabilities {
  const available = ownBoundingSet();
  const all = allCapabilities().filter((name) => (available >> BigInt(CAPABILITIES[name])) & 1n);
  const check = (field: string, names: readonly string[]): string[] =>
    names.map((raw, i) => {
      const name = normalizeCapability(raw);
      if (name === 'CAP_ALL') return name;
      if (CAPABILITIES[name] === undefined) throw new ValidationError(`${field}[${i}]`, `unknown capability ${JSON.stringify(raw)}`);
      if (field === 'capAdd' && !((available >> BigInt(CAPABILITIES[name])) & 1n)) {
        throw new ValidationError(`${field}[${i}]`, `${name} is not in the runtime's own bounding set (see CapBnd in /proc/self/status), so no container it starts can have it`);
      }
      return name;
    });
  const add = check('capAdd', options.capAdd ?? []);
  const drop = check('capDrop', options.capDrop ?? []);
  let set: string[];
  if (options.privileged) set = all;
  else if (add.includes('CAP_ALL')) set = all.filter((c) => !drop.includes(c));
  else if (drop.includes('CAP_ALL')) set = add;
  else set = [...DEFAULT_CAPABILITIES.filter((c) => !drop.includes(c)), ...add];
  const sorted = [...new Set(set)].sort((a, b) => CAPABILITIES[a] - CAPABILITIES[b]);
  return options.uid === 0 ? { bounding: sorted, effective: sorted, permitted: sorted } : { bounding: sorted };
}

/**
 * The steps that set the process's capabilities, in the order the kernel
 * needs: the bounding set is reduced while the child still has
 * CAP_SETPCAP, keep-caps carries the permitted set across the uid change
 * (`setUser`, the caller's setgroups/setresgid/setresuid steps), capset
 * sets effective, permitted and inheritable, and the ambient set is raised
 * last (an ambient capability must be permitted and inheritable).
 */
export function capabilitySteps(caps: LinuxCapabilities, setUser: PlanStep[], lastCap = lastCapability()): PlanStep[] {
  const phase = 'capabilities';
  const bounding = capabilityMask('process.capabilities.bounding', caps.bounding);
  const effective = capabilityMask('process.capabilities.effective', caps.effective);
  const permitted = capabilityMask('process.capabilities.permitted', caps.permitted);
  const inheritable = capabilityMask('process.capabilities.inheritable', caps.inheritable);
  const ambient = capabilityMask('process.capabilities.ambient', caps.ambient);
  if ((effective & ~permitted) !== 0n) {
    throw new ValidationError('process.capabilities.effective', `${capabilityNames(effective & ~permitted).join(', ')} not in the permitted set`);
  }
  if ((ambient & ~(permitted & inheritable)) !== 0n) {
    throw new ValidationError('process.capabilities.ambient', `${capabilityNames(ambient & ~(permitted & inheritable)).join(', ')} must be permitted and inheritable`);
  }
  // Capabilities newer than this kernel are left out, as runc does: capset would refuse them.
  const known = (1n << BigInt(lastCap + 1)) - 1n;
  const steps: PlanStep[] = [];
  for (let cap = 0; cap <= lastCap; cap++) {
    if (!((bounding >> BigInt(cap)) & 1n)) {
      const name = NAME_OF_CAPABILITY[cap] ?? `capability ${cap}`;
      steps.push({ op: 'Prctl', args: [PR_CAPBSET_DROP, cap, 0], phase, target: name, detail: 'drop from the bounding set' });
    }
  }
  steps.push({ op: 'Prctl', args: [PR_SET_KEEPCAPS, 1, 0], phase, detail: 'PR_SET_KEEPCAPS' });
  steps.push(...setUser);
  steps.push({ op: 'Capset', args: [effective & known, permitted & known, inheritable & known], phase, detail: 'effective, permitted and inheritable sets' });
  for (const name of capabilityNames(ambient & known)) {
    steps.push({ op: 'Prctl', args: [PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, CAPABILITIES[name]], phase, target: name, detail: 'raise in the ambient set' });
  }
  return steps;
}
