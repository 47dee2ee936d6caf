import fs = require('node:fs');
import { loadNative } from '../native';
import type { Spec } from '../oci/runtime-spec';
import type { PlanStep } from '../runtime/plan';
import { CLONE_NEW, createsNamespace } from './namespaces';

/**
 * One empty network namespace (loopback up) made ahead of time for the
 * next container of this process that asks for a new one.
 *
 * A network namespace is the costliest thing a container's clone makes:
 * ~0.6 ms of kernel work on its own, and while the namespace of a
 * container that has just exited is being torn down the clone sleeps,
 * most likely on the rtnl lock both take (a run of /bin/true took
 * 1.5-1.9 ms longer with a network namespace than without one). The
 * spare is made on a worker thread while a
 * container starts, for the one after it, which joins it with setns(2)
 * instead of cloning with CLONE_NEWNET. A namespace joined that way is as
 * new and empty as a cloned one: nothing else ever entered it.
 *
 * Not for a container with a user namespace: its network namespace must be
 * owned by that user namespace, or its root could not configure it.
 * A program that starts a single container (the CLI) turns this off: the
 * spare would be made and thrown away.
 */
let enabled = true;
let spare: number | null = null;
/** The namespace being made on the worker thread, if one is. */
let making: Promise<void> | null = null;
/** Bumped when switched off: a namespace asked for before that is closed when it comes. */
let generation = 0;

/** Whether this process keeps a spare network namespace (default: yes). Off closes the one it holds. */
export function setSpareNetworkNamespace(on: boolean): void {
  enabled = on;
  if (on) return;
  generation++;
  if (spare !== null) {
    fs.closeSync(spare);
    spare = null;
  }
}

/** Whether `spec` asks for a network namespace a spare can stand in for. */
function canUseSpare(spec: Spec): boolean {
  return createsNamespace(spec, 'network') && !createsNamespace(spec, 'user');
}

/**
 * The spare for a container with this spec: an fd the caller closes once
 * the child has it (after the clone), or null when there is none (the
 * container clones its own namespace).
 */
export function takeSpareNetworkNamespace(spec: Spec): number | null {
  if (!enabled || !canUseSpare(spec)) return null;
  const fd = spare;
  spare = null;
  return fd;
}

/** For a container with this spec: makes the next spare, unless there is one or one is on its way. */
export function prepareSpareNetworkNamespace(spec: Spec): void {
  if (!enabled || making || spare !== null || !canUseSpare(spec)) return;
  const asked = generation;
  making = new Promise((resolve) => {
    loadNative().newNetworkNamespace((error, fd) => {
      making = null;
      resolve();
      // A failure is left to the next container's own clone to report.
      if (error || fd === undefined) return;
      if (asked === generation && spare === null) spare = fd;
      else fs.closeSync(fd);
    });
  });
}

/** Resolves once no spare is being made: until then its maker, a short-lived child process, and the fd it opens are there too (for leak checks). */
export async function spareNetworkNamespaceSettled(): Promise<void> {
  await making;
}

/** The step that joins the spare `fd`, in place of CLONE_NEWNET (the loopback is up already). */
export function joinSpareStep(fd: number): PlanStep {
  return { op: 'Setns', args: [CLONE_NEW.network, fd], strs: [null], phase: 'namespaces', detail: 'join the new network namespace made ahead' };
}
