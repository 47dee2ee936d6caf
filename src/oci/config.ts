import fs = require('node:fs');
import path = require('node:path');
import { ValidationError } from '../errors';
import { CAPABILITIES } from '../linux/capabilities';
import { MOUNT_OPTION_NAMES } from '../linux/mounts';
import { validateNamespaces } from '../linux/namespaces';
import { RLIMITS } from '../linux/rlimits';
import { DEFAULT_PATH, OCI_VERSION, defaultMounts } from './defaults';
import type { Hook, Hooks, Mount, NamespaceType, Spec } from './runtime-spec';

/** The runtime-spec versions tsrun-oci reads: 1.0.0 up to 1.3.x. */
export const OCI_VERSION_MIN = '1.0.0';
export const OCI_VERSION_MAX = '1.3.0';



const HOOK_KINDS: (keyof Hooks)[] = ['prestart', 'createRuntime', 'createContainer', 'startContainer', 'poststart', 'poststop'];

function versionParts(version: string): [number, number, number] | null {
  const match = /^(\d+)\.(\d+)\.(\d+)(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$/.exec(version);
  return match ? [Number(match[1]), Number(match[2]), Number(match[3])] : null;
}

export function checkOciVersion(version: unknown): void {
  if (typeof version !== 'string') throw new ValidationError('ociVersion', 'is required');
  const parts = versionParts(version);
  if (!parts) throw new ValidationError('ociVersion', `${JSON.stringify(version)} is not a semantic version`);
  const [major, minor] = parts;
  const max = versionParts(OCI_VERSION_MAX) as [number, number, number];
  if (major !== 1 || minor > max[1]) throw new ValidationError('ociVersion', `${version} is not supported (${OCI_VERSION_MIN} to ${max[0]}.${max[1]}.x)`);
}

/**
 * A bind mount takes no filesystem data: an option that is not a mount
 * flag would be dropped without a word, and the container would run
 * without what it asked for (a typo of "ro", say).
 */
function checkBindOptions(mount: Mount, field: string): void {
  const options = mount.options ?? [];
  if (mount.type !== 'bind' && !options.includes('bind') && !options.includes('rbind')) return;
  const known = new Set(MOUNT_OPTION_NAMES);
  const unknown = options.filter((o) => !known.has(o));
  if (unknown.length > 0) throw new ValidationError(field, `unknown bind mount option${unknown.length > 1 ? 's' : ''} ${unknown.map((o) => JSON.stringify(o)).join(', ')}`);
}

/** Refuses names the kernel does not know: a typo must not leave a capability granted or missing unnoticed. */
export function checkCapabilities(capabilities: unknown, field = 'process.capabilities'): void {
  if (capabilities === undefined) return;
  if (typeof capabilities !== 'object' || capabilities === null) throw new ValidationError(field, 'must be an object');
  const known = new Set<string>(Object.keys(CAPABILITIES));
  for (const [set, names] of Object.entries(capabilities)) {
    if (!['bounding', 'effective', 'inheritable', 'permitted', 'ambient'].includes(set)) throw new ValidationError(`${field}.${set}`, 'is not a capability set');
    if (!Array.isArray(names)) throw new ValidationError(`${field}.${set}`, 'must be a list of capability names');
    names.forEach((name: unknown, i) => {
      if (typeof name !== 'string' || !known.has(name)) throw new ValidationError(`${field}.${set}[${i}]`, `unknown capability ${JSON.stringify(name)}`);
    });
  }
}

function checkHooks(hooks: unknown): void {
  if (hooks === undefined) return;
  if (typeof hooks !== 'object' || hooks === null) throw new ValidationError('hooks', 'must be an object');
  for (const [kind, list] of Object.entries(hooks)) {
    if (!HOOK_KINDS.includes(kind as keyof Hooks)) throw new ValidationError(`hooks.${kind}`, 'is not a hook point');
    if (!Array.isArray(list)) throw new ValidationError(`hooks.${kind}`, 'must be a list');
    list.forEach((hook: Hook, i) => {
      if (typeof hook?.path !== 'string' || !path.isAbsolute(hook.path)) throw new ValidationError(`hooks.${kind}[${i}].path`, 'must be an absolute path');
      if (hook.timeout !== undefined && !(Number.isInteger(hook.timeout) && hook.timeout > 0)) throw new ValidationError(`hooks.${kind}[${i}].timeout`, 'must be a positive number of seconds');
    });
  }
}

function checkProcess(spec: Spec): void {
  const proc = spec.process as Spec['process'] | undefined;
  if (!proc) throw new ValidationError('process', 'is required to create a container');
  if (!Array.isArray(proc.args) || proc.args.length === 0 || proc.args.some((a) => typeof a !== 'string')) throw new ValidationError('process.args', 'must be a non-empty list of strings');
  if (typeof proc.cwd !== 'string' || !proc.cwd.startsWith('/')) throw new ValidationError('process.cwd', 'must be an absolute path');
  if (!proc.user || !Number.isInteger(proc.user.uid) || !Number.isInteger(proc.user.gid)) throw new ValidationError('process.user', 'uid and gid are required');
  proc.env ??= [];
  checkCapabilities(proc.capabilities);
  for (const [i, limit] of (proc.rlimits ?? []).entries()) {
    if (RLIMITS[limit.type] === undefined) throw new ValidationError(`process.rlimits[${i}].type`, `unknown rlimit ${JSON.stringify(limit.type)}`);
  }
  if (proc.oomScoreAdj !== undefined && !(Number.isInteger(proc.oomScoreAdj) && proc.oomScoreAdj >= -1000 && proc.oomScoreAdj <= 1000)) {
    throw new ValidationError('process.oomScoreAdj', 'must be an integer from -1000 to 1000');
  }
}

/**
 * Reads BUNDLE/config.json and checks what tsrun-oci relies on; the root
 * path becomes absolute (relative to the bundle, as the spec says).
 */
export function loadBundleConfig(bundle: string): Spec {
  const file = path.join(bundle, 'config.json');
  let spec: Spec;
  try {
    spec = JSON.parse(fs.readFileSync(file, 'utf8')) as Spec;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new ValidationError('bundle', `${file} does not exist`);
    throw new ValidationError('config.json', `cannot be read: ${(err as Error).message}`);
  }
  checkOciVersion(spec.ociVersion);
  checkProcess(spec);
  if (!spec.root || typeof spec.root.path !== 'string' || spec.root.path === '') throw new ValidationError('root.path', 'is required');
  spec.root.path = path.resolve(bundle, spec.root.path);
  if (!fs.existsSync(spec.root.path)) throw new ValidationError('root.path', `${spec.root.path} does not exist`);
  spec.mounts ??= [];
  spec.mounts.forEach((m, i) => {
    if (typeof m.destination !== 'string' || !m.destination.startsWith('/')) throw new ValidationError(`mounts[${i}].destination`, 'must be an absolute path');
    if (m.options !== undefined && (!Array.isArray(m.options) || m.options.some((o) => typeof o !== 'string'))) throw new ValidationError(`mounts[${i}].options`, 'must be a list of strings');
    checkBindOptions(m, `mounts[${i}].options`);
  });
  spec.linux ??= { namespaces: [] };
  spec.linux.namespaces ??= [];
  validateNamespaces(spec.linux.namespaces);
  checkHooks(spec.hooks);
  const seccomp = spec.linux.seccomp;
  if (seccomp !== undefined && typeof seccomp.defaultAction !== 'string') throw new ValidationError('linux.seccomp.defaultAction', 'is required');
  for (const key of Object.keys(spec.linux.sysctl ?? {})) {
    if (!/^[a-zA-Z0-9_.-]+$/.test(key) || key.includes('..')) throw new ValidationError(`linux.sysctl.${key}`, 'is not a sysctl name');
  }
  return spec;
}

/**
 * The config.json `tsrun-oci spec` writes: runc's template, for a rootfs in
 * `rootfs/`, except that the process has no terminal (its stdio are the
 * caller's).
 */
export function specTemplate(): Spec {
  const caps = ['CAP_AUDIT_WRITE', 'CAP_KILL', 'CAP_NET_BIND_SERVICE'];
  return {
    ociVersion: OCI_VERSION,
    process: {
      terminal: false,
      user: { uid: 0, gid: 0 },
      args: ['sh'],
      env: [`PATH=${DEFAULT_PATH}`, 'TERM=xterm'],
      cwd: '/',
      capabilities: { bounding: caps, effective: caps, permitted: caps },
      rlimits: [{ type: 'RLIMIT_NOFILE', hard: 1024, soft: 1024 }],
      noNewPrivileges: true,
    },
    root: { path: 'rootfs', readonly: true },
    hostname: 'tsrun',
    mounts: defaultMounts({ devptsGid: true, sysfs: true }),
    linux: {
      resources: {},
      namespaces: ['pid', 'network', 'ipc', 'uts', 'mount', 'cgroup'].map((type) => ({ type: type as NamespaceType })),
      maskedPaths: ['/proc/acpi', '/proc/asound', '/proc/kcore', '/proc/keys', '/proc/latency_stats', '/proc/timer_list', '/proc/timer_stats', '/proc/sched_debug', '/sys/firmware', '/proc/scsi'],
      readonlyPaths: ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'],
    },
  };
}
