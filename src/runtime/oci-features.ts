import { OCI_VERSION_MAX, OCI_VERSION_MIN } from '../oci/config';
import { CAPABILITIES } from '../linux/capabilities';
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
      capabilities: Object.keys(CAPABILITIES),
      cgroup: { v1: host.mode !== 'unified', v2: host.mode !== 'legacy', systemd: false, systemdUser: false },
      seccomp: {
        enabled: true,
        actions: ['SCMP_ACT_ALLOW', 'SCMP_ACT_ERRNO', 'SCMP_ACT_KILL', 'SCMP_ACT_KILL_PROCESS', 'SCMP_ACT_KILL_THREAD', 'SCMP_ACT_LOG', 'SCMP_ACT_TRACE', 'SCMP_ACT_TRAP'],
        operators: ['SCMP_CMP_EQ', 'SCMP_CMP_GE', 'SCMP_CMP_GT', 'SCMP_CMP_LE', 'SCMP_CMP_LT', 'SCMP_CMP_MASKED_EQ', 'SCMP_CMP_NE'],
        archs: ['SCMP_ARCH_AARCH64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X86_64'],
      },
      apparmor: { enabled: false },
      selinux: { enabled: false },
    },
    annotations: { 'io.github.tsrun.version': '0.1.0' },
  };
}
