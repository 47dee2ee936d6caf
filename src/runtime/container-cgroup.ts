import { CgroupDriver, CgroupHost, createCgroupDriver, detectCgroupHost } from '../linux/cgroups';
import type { Logger } from '../logger';
import type { LinuxResources } from '../oci/runtime-spec';
import type { ExitResult } from './container';

// run() loads this module lazily, and checks the limits through it first.
export { resourcesFromOptions } from '../linux/cgroups';

let host: CgroupHost | undefined;

/**
 * The host's cgroup layout as containers use it, read once per process: a
 * long-running program starts many containers, and the hierarchies are not
 * remounted under a running runtime.
 *
 * On a hybrid host, containers get no cgroup in the cgroup2 hierarchy: it
 * has no controllers, so it would only add cgroup.kill, which the v1
 * freezer replaces (freeze, kill, thaw); and joining it means a write to
 * cgroup.procs, which makes every start wait for an RCU grace period
 * (5-20 ms measured here), where the v1 hierarchies are joined through
 * their tasks files without one.
 */
export function cgroupHost(): CgroupHost {
  if (!host) {
    const detected = detectCgroupHost();
    host = detected.mode === 'hybrid' ? { ...detected, mode: 'legacy', unifiedMount: null } : detected;
  }
  return host;
}

/** The cgroup of container `id` (existing or not). */
export function containerCgroup(id: string): CgroupDriver {
  return createCgroupDriver(id, { host: cgroupHost() });
}

/** Makes the container's cgroup with its limits; a limit the kernel lacks is logged, not fatal (as Docker's warnings). */
export function createContainerCgroup(id: string, resources: LinuxResources, logger: Logger): CgroupDriver {
  const cgroup = containerCgroup(id);
  for (const warning of cgroup.create(resources)) logger.warn({ id }, warning);
  return cgroup;
}

/**
 * After the init exited: whether the OOM killer took it (an OOM kill in
 * the cgroup and an exit by SIGKILL, which a shell also reports as 137),
 * read before the cgroup and its counters go; then the cgroup is removed.
 * A failed removal is logged, not thrown: the exit must still be recorded,
 * and the record of an exited container makes its cgroup a leftover that
 * `tsrun ps` and `tsrun system prune` remove.
 */
export async function releaseContainerCgroup(cgroup: CgroupDriver, result: ExitResult, logger: Logger): Promise<ExitResult> {
  const oomKilled = result.exitCode === 137 && cgroup.oomKilled();
  try {
    await cgroup.destroy();
  } catch (err) {
    logger.warn({ id: cgroup.id, err }, 'removing the container\'s cgroup failed');
  }
  return { ...result, oomKilled };
}
