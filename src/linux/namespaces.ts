import { ValidationError } from '../errors';
import type { Namespace, NamespaceType, Spec } from '../oci/runtime-spec';
import type { PlanStep } from '../runtime/plan';

/** clone(2) flags, from <linux/sched.h>. */
export const CLONE_NEW: Record<NamespaceType, number> = {
  mount: 0x00020000,
  cgroup: 0x02000000,
  uts: 0x04000000,
  ipc: 0x08000000,
  user: 0x10000000,
  pid: 0x20000000,
  network: 0x40000000,
};

const KNOWN = new Set(Object.keys(CLONE_NEW));

/** Namespaces tsrun can join by path from a freshly cloned child (a pid namespace through a fork into it, see joinNamespaceSteps). */
const JOINABLE = new Set<NamespaceType>(['network', 'ipc', 'uts', 'mount', 'pid', 'cgroup', 'user']);

export function validateNamespaces(namespaces: readonly Namespace[]): void {
  const seen = new Set<string>();
  namespaces.forEach((ns, i) => {
    if (!KNOWN.has(ns.type)) throw new ValidationError(`linux.namespaces[${i}].type`, `unknown namespace type ${JSON.stringify(ns.type)}`);
    if (seen.has(ns.type)) throw new ValidationError(`linux.namespaces[${i}].type`, `namespace ${ns.type} is listed twice`);
    seen.add(ns.type);
    if (ns.path !== undefined && !JOINABLE.has(ns.type)) {
      throw new ValidationError(`linux.namespaces[${i}].path`, `joining an existing ${ns.type} namespace is not supported`);
    }
  });
  // A new user namespace waits for its id maps before it joins the others;
  // the process that joins a pid namespace is made after that, and the
  // parent would be waiting for it in the wrong order.
  if (namespaces.some((ns) => ns.type === 'pid' && ns.path !== undefined) && namespaces.some((ns) => ns.type === 'user' && ns.path === undefined)) {
    throw new ValidationError('linux.namespaces', 'joining a pid namespace by path from a new user namespace is not supported');
  }
}

export function hasNamespace(spec: Spec, type: NamespaceType): boolean {
  return spec.linux.namespaces.some((ns) => ns.type === type);
}

/** Whether the container gets a namespace of its own (not the host's, not joined). */
export function createsNamespace(spec: Spec, type: NamespaceType): boolean {
  return spec.linux.namespaces.some((ns) => ns.type === type && ns.path === undefined);
}

/**
 * The flags the child is cloned with. The cgroup namespace is left out: it
 * must be unshared after the child has joined its cgroups, or its root
 * would be the runtime's cgroup (see cgroupNamespaceSteps).
 */
export function cloneFlags(spec: Spec): number {
  let flags = 0;
  for (const ns of spec.linux.namespaces) {
    if (ns.path === undefined && ns.type !== 'cgroup') flags |= CLONE_NEW[ns.type];
  }
  return flags;
}

/** The order namespaces are joined in: the user namespace grants the rights for the others. */
const JOIN_ORDER: NamespaceType[] = ['user', 'ipc', 'uts', 'network', 'cgroup', 'pid', 'mount'];

/**
 * setns(2) into the namespaces the spec names by path. A joined pid
 * namespace holds only the children of the process that joined it, so a
 * new process goes on from there (ForkIntoParent), a child of the runtime.
 */
export function joinNamespaceSteps(spec: Spec): PlanStep[] {
  const joined = spec.linux.namespaces.filter((ns) => ns.path !== undefined).sort((a, b) => JOIN_ORDER.indexOf(a.type) - JOIN_ORDER.indexOf(b.type));
  const steps: PlanStep[] = joined.map((ns) => ({ op: 'Setns' as const, args: [CLONE_NEW[ns.type]], strs: [ns.path as string], phase: 'namespaces', target: ns.path, detail: `join ${ns.type} namespace` }));
  if (joined.some((ns) => ns.type === 'pid')) steps.push({ op: 'ForkIntoParent', phase: 'namespaces', detail: 'enter the pid namespace' });
  return steps;
}

export function cgroupNamespaceSteps(spec: Spec): PlanStep[] {
  if (!createsNamespace(spec, 'cgroup')) return [];
  return [{ op: 'Unshare', args: [CLONE_NEW.cgroup], phase: 'namespaces', detail: 'new cgroup namespace' }];
}

/** What a new UTS and network namespace need before the process runs; a spare network namespace has its loopback up already. */
export function namespaceSetupSteps(spec: Spec, options: { loopbackUp: boolean }): PlanStep[] {
  const steps: PlanStep[] = [];
  if (createsNamespace(spec, 'uts')) {
    if (spec.hostname) steps.push({ op: 'Sethostname', strs: [spec.hostname], phase: 'namespaces', target: spec.hostname });
    if (spec.domainname) steps.push({ op: 'Setdomainname', strs: [spec.domainname], phase: 'namespaces', target: spec.domainname });
  }
  if (createsNamespace(spec, 'network') && options.loopbackUp) {
    steps.push({ op: 'LinkUp', strs: ['lo'], phase: 'network', target: 'lo', detail: 'bring up loopback' });
  }
  return steps;
}
