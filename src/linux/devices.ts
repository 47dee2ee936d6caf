import type { Device } from '../oci/runtime-spec';
import type { PlanStep } from '../runtime/plan';
import { StepFlag } from '../runtime/plan-opcodes';
import { MS } from './mounts';

const S_IFCHR = 0o020000;
const S_IFBLK = 0o060000;
const S_IFIFO = 0o010000;

/** The device nodes every container gets, as Docker and runc create them. */
export const DEFAULT_DEVICES: readonly Device[] = [
  { path: '/dev/null', type: 'c', major: 1, minor: 3, fileMode: 0o666 },
  { path: '/dev/zero', type: 'c', major: 1, minor: 5, fileMode: 0o666 },
  { path: '/dev/full', type: 'c', major: 1, minor: 7, fileMode: 0o666 },
  { path: '/dev/random', type: 'c', major: 1, minor: 8, fileMode: 0o666 },
  { path: '/dev/urandom', type: 'c', major: 1, minor: 9, fileMode: 0o666 },
  { path: '/dev/tty', type: 'c', major: 5, minor: 0, fileMode: 0o666 },
];

/** The standard links of /dev; ptmx points into the container's own devpts. */
export const DEV_SYMLINKS: readonly [target: string, link: string][] = [
  ['/proc/self/fd', 'fd'],
  ['/proc/self/fd/0', 'stdin'],
  ['/proc/self/fd/1', 'stdout'],
  ['/proc/self/fd/2', 'stderr'],
  ['pts/ptmx', 'ptmx'],
];

/** glibc's makedev(): the kernel's 64-bit dev_t encoding. */
export function makedev(major: number, minor: number): bigint {
  const ma = BigInt(major);
  const mi = BigInt(minor);
  return ((ma & 0xfffff000n) << 32n) | ((ma & 0xfffn) << 8n) | ((mi & 0xffffff00n) << 12n) | (mi & 0xffn);
}

function typeBits(type: Device['type']): number {
  switch (type) {
    case 'b':
      return S_IFBLK;
    case 'p':
      return S_IFIFO;
    default:
      return S_IFCHR;
  }
}

/**
 * Creates `devices` under `devDir` (the container's /dev, a fresh tmpfs).
 * In a user namespace mknod is not allowed, so the host's node is bound
 * onto an empty file instead, as runc does.
 */
export function deviceSteps(devices: readonly Device[], devDir: string, inUserNamespace: boolean): PlanStep[] {
  const steps: PlanStep[] = [];
  for (const device of devices) {
    const name = device.path.replace(/^\/dev\//, '');
    const target = `${devDir}/${name}`;
    if (inUserNamespace) {
      steps.push({ op: 'Touch', args: [0o600], strs: [target], phase: 'devices', target });
      steps.push({ op: 'Mount', args: [MS.BIND], strs: [device.path, target, null, null], phase: 'devices', target, detail: `bind of the host's ${device.path}` });
    } else {
      const mode = typeBits(device.type) | (device.fileMode ?? 0o666);
      steps.push({ op: 'Mknod', args: [mode, makedev(device.major, device.minor)], strs: [target], phase: 'devices', target });
    }
  }
  for (const [linkTarget, link] of DEV_SYMLINKS) {
    const path = `${devDir}/${link}`;
    steps.push({ op: 'Symlink', flags: StepFlag.IgnoreExist, strs: [linkTarget, path], phase: 'devices', target: path });
  }
  return steps;
}
