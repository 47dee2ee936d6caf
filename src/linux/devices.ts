import fs = require('node:fs');
import path = require('node:path');
import { ValidationError } from '../errors';
import type { Device, LinuxDeviceCgroup } from '../oci/runtime-spec';
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

/**
 * Docker's device cgroup: nothing but mknod of any node, and read/write
 * of the default devices, the pseudo-terminals and /dev/net/tun. A node
 * made with CAP_MKNOD (say, the host's disk) cannot be opened.
 */
export const DEFAULT_DEVICE_RULES: readonly LinuxDeviceCgroup[] = [
  { allow: false, access: 'rwm' },
  { allow: true, type: 'c', access: 'm' },
  { allow: true, type: 'b', access: 'm' },
  ...DEFAULT_DEVICES.map((d): LinuxDeviceCgroup => ({ allow: true, type: 'c', major: d.major, minor: d.minor, access: 'rwm' })),
  { allow: true, type: 'c', major: 5, minor: 1, access: 'rwm' },
  { allow: true, type: 'c', major: 5, minor: 2, access: 'rwm' },
  { allow: true, type: 'c', major: 136, access: 'rwm' },
  { allow: true, type: 'c', major: 10, minor: 200, access: 'rwm' },
];

/**
 * A bundle's device rules as runc completes them: the config's own first,
 * then the default devices, mknod of any node, and each of `linux.devices`
 * (an engine such as podman sends only "deny all" and leaves the rest to
 * the runtime).
 */
export function bundleDeviceRules(rules: readonly LinuxDeviceCgroup[], devices: readonly Device[]): LinuxDeviceCgroup[] {
  const listed = devices.filter((d) => d.type !== 'p').map((d): LinuxDeviceCgroup => ({ allow: true, type: d.type === 'b' ? 'b' : 'c', major: d.major, minor: d.minor, access: 'rwm' }));
  return [...rules, ...DEFAULT_DEVICE_RULES.filter((r) => r.allow), ...listed];
}

/** glibc's major()/minor() of a stat's 64-bit dev_t. */
export function splitDev(rdev: number | bigint): { major: number; minor: number } {
  const dev = BigInt(rdev);
  return {
    major: Number(((dev >> 8n) & 0xfffn) | ((dev >> 32n) & ~0xfffn)),
    minor: Number((dev & 0xffn) | ((dev >> 12n) & ~0xffn)),
  };
}

/** The device node at `hostPath`, to appear at `containerPath`; null when it is not one. */
function deviceAt(hostPath: string, containerPath: string): Device | null {
  const stat = fs.statSync(hostPath, { bigint: true });
  const type = stat.isCharacterDevice() ? 'c' : stat.isBlockDevice() ? 'b' : null;
  if (!type) return null;
  return { path: containerPath, type, ...splitDev(stat.rdev), fileMode: Number(stat.mode & 0o7777n), uid: Number(stat.uid), gid: Number(stat.gid) };
}

/**
 * `--device HOST[:CONTAINER][:PERMISSIONS]`, as docker run takes it: the
 * host's node, where it appears in the container (default: the same
 * path), and the cgroup access (some of r, w, m; default rwm).
 */
export function parseDeviceOption(field: string, value: string): { device: Device; rule: LinuxDeviceCgroup } {
  const parts = value.split(':');
  let access = 'rwm';
  if (parts.length > 1 && /^[rwm]+$/.test(parts[parts.length - 1])) access = parts.pop() as string;
  if (parts.length > 2 || !parts[0]) throw new ValidationError(field, `${JSON.stringify(value)} is not HOST[:CONTAINER][:PERMISSIONS]`);
  const [hostPath, containerPath = parts[0]] = parts;
  if (!path.isAbsolute(hostPath) || !path.isAbsolute(containerPath)) throw new ValidationError(field, `${JSON.stringify(value)}: both paths must be absolute`);
  if (!containerPath.startsWith('/dev/')) throw new ValidationError(field, `${containerPath}: devices go under /dev`);
  let device: Device | null;
  try {
    device = deviceAt(hostPath, path.posix.normalize(containerPath));
  } catch (err) {
    throw new ValidationError(field, `${hostPath}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such device on the host' : (err as Error).message}`);
  }
  if (!device) throw new ValidationError(field, `${hostPath} is not a character or block device`);
  return { device, rule: { allow: true, type: device.type as 'c' | 'b', major: device.major, minor: device.minor, access } };
}

/** Skipped by --privileged: the container has its own of these. */
const OWN_DEV = new Set(['pts', 'shm', 'mqueue', 'fd', 'stdin', 'stdout', 'stderr', 'ptmx', 'console', 'null', 'zero', 'full', 'random', 'urandom', 'tty']);

/** Every device node under the host's /dev, as --privileged gives them. */
export function hostDevices(dev = '/dev'): Device[] {
  const devices: Device[] = [];
  const walk = (dir: string): void => {
    for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
      const full = path.join(dir, entry.name);
      if (dir === dev && OWN_DEV.has(entry.name)) continue;
      if (entry.isDirectory()) walk(full);
      else if (entry.isCharacterDevice() || entry.isBlockDevice()) {
        const device = deviceAt(full, full.replace(dev, '/dev'));
        if (device) devices.push(device);
      }
    }
  };
  walk(dev);
  return devices;
}

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
  const dirs = new Set<string>();
  for (const device of devices) {
    const name = device.path.replace(/^\/dev\//, '');
    const target = `${devDir}/${name}`;
    // /dev/net/tun, /dev/dri/card0: the directories first.
    const parts = name.split('/').slice(0, -1);
    for (let i = 1; i <= parts.length; i++) {
      const dir = `${devDir}/${parts.slice(0, i).join('/')}`;
      if (dirs.has(dir)) continue;
      dirs.add(dir);
      steps.push({ op: 'Mkdir', flags: StepFlag.IgnoreExist, args: [0o755], strs: [dir], phase: 'devices', target: dir });
    }
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
