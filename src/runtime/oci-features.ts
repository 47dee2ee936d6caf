import { CAPABILITIES, OCI_VERSION_MAX, OCI_VERSION_MIN } from '../oci/config';
import { MOUNT_OPTION_NAMES } from '../linux/mounts';
import { cgroupHost } from './container-cgroup';

/** `tsrun-oci features`: what this runtime and host support, in the runtime-spec's features.md shape. */
export function features(): Record<string, unknown> {
  const host = cgroupHost();
  return {
    ociVersionMin: OCI_VERSION_MIN,
    ociVersionMax: OCI_VERSION_MAX,
    hooks: ['prestart', 'createRuntime', 'createContainer', 'startContainer', 'poststart', 'poststop'],
    mountOptions: MOUNT_OPTION_NAMES,
    linux: {
      namespaces: ['cgroup', 'ipc', 'mount', 'network', 'pid', 'user', 'uts'],
      capabilities: [...CAPABILITIES],
      cgroup: { v1: host.mode !== 'unified', v2: host.mode !== 'legacy', systemd: false, systemdUser: false },
      seccomp: { enabled: false },
      apparmor: { enabled: false },
      selinux: { enabled: false },
    },
    annotations: { 'io.github.tsrun.version': '0.1.0' },
  };
}
