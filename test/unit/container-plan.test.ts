import * as fs from 'node:fs';
import * as path from 'node:path';
import { DEFAULT_CAPABILITIES, lastCapability } from '../../src/linux/capabilities';
import { CLONE_NEW } from '../../src/linux/namespaces';
import { DEFAULT_MASKED_PATHS, DEFAULT_READONLY_PATHS } from '../../src/oci/defaults';
import { MS } from '../../src/linux/mounts';
import { loadNative } from '../../src/native';
import type { Spec } from '../../src/oci/runtime-spec';
import { PlanOptions, SyncMessage, buildContainerPlan, execCandidates } from '../../src/runtime/container-plan';
import { RunOptions, buildSpec } from '../../src/runtime/options';
import { PlanStep, serializePlan } from '../../src/runtime/plan';
import { StepFlag } from '../../src/runtime/plan-opcodes';
import { useTempDir } from '../helpers/fixtures';
import { DecodedPlan, decodePlan } from './plan-decoder';

const ID = 'fedcba9876543210fedcba9876543210';
const WIDE = [{ containerID: 0, hostID: 100000, size: 65536 }];
const OPTIONS: PlanOptions = { stdio: [0, 1, 2], dieWithParent: true, pivot: true, cgroupJoin: [] };

interface Built {
  plan: ReturnType<typeof buildContainerPlan>;
  decoded: DecodedPlan;
  ops: string[];
}

describe('buildContainerPlan', () => {
  const tmp = useTempDir('tsrun-cplan-');
  let rootfs: string;

  beforeAll(() => {
    rootfs = path.join(tmp(), 'rootfs');
    fs.mkdirSync(path.join(rootfs, 'etc'), { recursive: true });
    fs.writeFileSync(path.join(rootfs, 'etc', 'passwd'), 'root:x:0:0::/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n');
    fs.writeFileSync(path.join(rootfs, 'etc', 'group'), 'wheel:x:10:app\naudio:x:29:app\n');
  });

  const specFor = (options: Partial<RunOptions> = {}): Spec => buildSpec({ rootfs, args: ['sh', '-c', 'echo hi'], ...options }, ID);
  /** The plan as the addon would receive it, decoded back from the bytes. */
  const build = (spec: Spec, options: Partial<PlanOptions> = {}): Built => {
    const plan = buildContainerPlan(spec, { ...OPTIONS, ...options });
    const decoded = decodePlan(serializePlan(plan.steps));
    return { plan, decoded, ops: decoded.steps.map((s) => s.op as string) };
  };
  const strings = (b: Built, i: number): (string | null)[] => b.decoded.steps[i].refs.map((r) => b.decoded.string(r));

  test('the default container: namespaces, rootfs, pivot_root, hostname, loopback, credentials, exec last', () => {
    const b = build(specFor());
    const mkdirs = (n: number): string[] => Array<string>(n).fill('Mkdir');
    expect(b.ops).toEqual([
      // not dumpable while it is a copy of Node
      'Prctl',
      // cgroup namespace: unshared in the child, not cloned
      'Unshare',
      // rootfs: umask 0, / private, root bound onto itself
      'Umask',
      'Mount',
      'Mount',
      // /proc, /dev (tmpfs), /dev/pts, /dev/shm, /dev/mqueue, /sys
      ...mkdirs(1),
      'Mount',
      ...mkdirs(1),
      'Mount',
      ...mkdirs(2),
      'Mount',
      ...mkdirs(2),
      'Mount',
      ...mkdirs(2),
      'Mount',
      ...mkdirs(1),
      'Mount',
      // the default devices in the /dev tmpfs, and its links
      ...Array<string>(6).fill('Mknod'),
      ...Array<string>(5).fill('Symlink'),
      // pivot_root into the root; the old root detached
      'Chdir',
      'PivotRoot',
      'Umount2',
      'Chdir',
      // Docker's read-only paths (bind, remount) and masked paths
      ...Array<string>(2 * DEFAULT_READONLY_PATHS.length).fill('Mount'),
      ...Array<string>(DEFAULT_MASKED_PATHS.length).fill('MaskPath'),
      // UTS and network namespace setup
      'Sethostname',
      'LinkUp',
      // the process: stdio, every other fd closed
      'Stdio',
      'CloseFrom',
      // the bounding set lost what Docker's default set lacks, keep-caps across the uid change
      ...Array<string>(lastCapability() + 1 - DEFAULT_CAPABILITIES.length).fill('Prctl'),
      'Prctl',
      'Setgroups',
      'Setresgid',
      'Setresuid',
      'Capset',
      // death signal, cwd, umask, no_new_privs, then the seccomp filter last
      'Prctl',
      'Chdir',
      'Umask',
      'Prctl',
      'Seccomp',
      'Exec',
    ]);
    expect(b.plan.mode).toBe('vfork');
    expect(b.plan.cloneFlags).toBe(CLONE_NEW.pid | CLONE_NEW.network | CLONE_NEW.ipc | CLONE_NEW.uts | CLONE_NEW.mount);
    expect(b.plan.cloneFlags & CLONE_NEW.cgroup).toBe(0);
    expect(b.decoded.steps[0].args).toEqual([4n /* PR_SET_DUMPABLE */, 0n, 0n]);
    expect(b.decoded.steps[1].args[0]).toBe(BigInt(CLONE_NEW.cgroup));
  });

  test('the rootfs steps carry the right arguments', () => {
    const b = build(specFor());
    expect(b.decoded.steps[2].args[0]).toBe(0n);
    expect(b.decoded.steps[3].args[0]).toBe(BigInt(MS.REC | MS.PRIVATE));
    expect(strings(b, 3)).toEqual([null, '/', null, null]);
    expect(b.decoded.steps[4].args[0]).toBe(BigInt(MS.BIND | MS.REC));
    expect(strings(b, 4)).toEqual([rootfs, rootfs, null, null]);
    const pivot = b.ops.indexOf('PivotRoot');
    expect(strings(b, pivot - 1)[0]).toBe(rootfs);
    expect(strings(b, pivot)).toEqual(['.', '.', null, null]);
    expect(b.decoded.steps[pivot + 1].args[0]).toBe(2n /* MNT_DETACH */);
    expect(strings(b, pivot + 2)[0]).toBe('/');
    // Every mount point is created inside the root first, tolerating EEXIST,
    // and the child resolves it again inside the root (the root's length in args[2]).
    for (const [i, step] of b.decoded.steps.entries()) {
      if (step.op !== 'Mkdir' && !(step.op === 'Mount' && step.flags & StepFlag.InRoot)) continue;
      if (step.op === 'Mkdir') expect(step.flags).toBe(StepFlag.IgnoreExist | StepFlag.InRoot);
      expect(step.args[2]).toBe(BigInt(rootfs.length));
      expect(strings(b, i)[step.op === 'Mkdir' ? 0 : 1]?.startsWith(`${rootfs}/`)).toBe(true);
    }
    expect(b.decoded.steps.filter((s) => s.op === 'Mount' && s.flags & StepFlag.InRoot).length).toBeGreaterThanOrEqual(6);
  });

  test('the process steps carry the credentials, cwd, stdio and the command', () => {
    const b = build(specFor({ user: 'app', cwd: '/tmp', env: ['PATH=/bin:/usr/bin'] }), { stdio: [7, -1, 9] });
    const at = (op: string): number => b.ops.lastIndexOf(op);
    const prctl = (option: bigint): number => b.decoded.steps.findIndex((s) => s.op === 'Prctl' && s.args[0] === option);
    expect(b.decoded.list(b.decoded.steps[at('Setgroups')].refs[0])).toEqual(['10', '29']);
    expect(b.decoded.steps[at('Setresgid')].args).toEqual([1000n, 1000n, 1000n]);
    expect(b.decoded.steps[at('Setresuid')].args).toEqual([1000n, 1000n, 1000n]);
    expect(b.decoded.steps[prctl(1n /* PR_SET_PDEATHSIG */)].args).toEqual([1n, 9n, 0n]);
    // A non-root user: the bounding set only, as Docker gives it.
    expect(b.decoded.steps[at('Capset')].args).toEqual([0n, 0n, 0n]);
    expect(b.decoded.steps[prctl(38n /* PR_SET_NO_NEW_PRIVS */)].args).toEqual([38n, 1n, 0n]);
    expect(strings(b, at('Chdir'))[0]).toBe('/tmp');
    expect(b.decoded.steps[at('Umask')].args[0]).toBe(0o022n);
    expect(b.decoded.steps[at('Stdio')].args).toEqual([7n, -1n, 9n]);
    expect(b.decoded.steps[at('CloseFrom')].args[0]).toBe(3n);
    const exec = b.decoded.steps[at('Exec')].refs;
    expect(b.decoded.list(exec[0])).toEqual(['/bin/sh', '/usr/bin/sh']);
    expect(b.decoded.list(exec[1])).toEqual(['sh', '-c', 'echo hi']);
    expect(b.decoded.list(exec[2])).toEqual(['PATH=/bin:/usr/bin', `HOSTNAME=${ID.slice(0, 12)}`, 'HOME=/home/app']);
    // The groups are dropped before the uid change, and the uid changes after the gid.
    expect(at('Setgroups')).toBeLessThan(at('Setresgid'));
    expect(at('Setresgid')).toBeLessThan(at('Setresuid'));
    // setresuid clears the parent-death signal: it must come after.
    expect(at('Setresuid')).toBeLessThan(prctl(1n));
    // Keep-caps before the uid change, capset after it; every fd closed before the chdir (CVE-2024-21626).
    expect(prctl(8n /* PR_SET_KEEPCAPS */)).toBeLessThan(at('Setresuid'));
    expect(at('Setresuid')).toBeLessThan(at('Capset'));
    expect(at('CloseFrom')).toBeLessThan(at('Chdir'));
  });

  test('without pivot_root: MS_MOVE of the root onto / and chroot', () => {
    const b = build(specFor(), { pivot: false });
    expect(b.ops).not.toContain('PivotRoot');
    expect(b.ops).not.toContain('Umount2');
    const chroot = b.ops.indexOf('Chroot');
    expect(b.ops.slice(chroot - 2, chroot + 2)).toEqual(['Chdir', 'Mount', 'Chroot', 'Chdir']);
    expect(strings(b, chroot - 2)[0]).toBe(rootfs);
    expect(b.decoded.steps[chroot - 1].args[0]).toBe(BigInt(MS.MOVE));
    expect(strings(b, chroot - 1)).toEqual([rootfs, '/', null, null]);
    expect(strings(b, chroot)[0]).toBe('.');
    expect(b.ops.indexOf('Chroot')).toBeLessThan(b.ops.indexOf('Sethostname'));
  });

  test('a user namespace: the child asks for its maps, waits, becomes root, then the rest', () => {
    const b = build(specFor({ idMappings: { uid: WIDE, gid: WIDE } }));
    expect(b.ops.slice(0, 6)).toEqual(['Prctl', 'SyncSignal', 'SyncWait', 'Setresgid', 'Setresuid', 'Unshare']);
    expect(b.decoded.steps[1].args[0]).toBe(BigInt(SyncMessage.UserMapRequest));
    expect(b.decoded.steps[3].args).toEqual([0n, 0n, 0n]);
    expect(b.decoded.steps[4].args).toEqual([0n, 0n, 0n]);
    expect(b.plan.mode).toBe('fork');
    expect(b.plan.cloneFlags & CLONE_NEW.user).toBe(CLONE_NEW.user);
    // mknod is not allowed in a user namespace: the host's nodes are bound instead.
    expect(b.ops).not.toContain('Mknod');
    expect(b.ops.filter((o) => o === 'Touch')).toHaveLength(6);
    expect(b.ops[b.ops.length - 1]).toBe('Exec');
  });

  test('a mount shared with the host: / stays rshared, the mount holding the root goes private, and the old root is made rslave through an fd before it is detached', () => {
    const spec = specFor();
    spec.linux.rootfsPropagation = 'rshared';
    const b = build(spec);
    const first = b.ops.indexOf('Mount');
    expect(b.decoded.steps[first].args[0]).toBe(BigInt(MS.REC | MS.SHARED));
    expect(b.decoded.steps[first + 1].args[0]).toBe(BigInt(MS.PRIVATE));
    expect(b.ops).toContain('PivotRootSlave');
    expect(b.ops).not.toContain('PivotRoot');
  });

  test('a CNI network: the child asks for it right after the cgroup join and waits; the plan is fork-style', () => {
    const b = build(specFor(), { networkSync: true, cgroupJoin: [{ op: 'WriteFile', args: [1], strs: ['/x/cgroup.procs', '0'], phase: 'cgroup' }] });
    expect(b.ops.slice(1, 4)).toEqual(['WriteFile', 'SyncSignal', 'SyncWait']);
    expect(b.decoded.steps[2].args[0]).toBe(BigInt(SyncMessage.NetworkRequest));
    expect(b.plan.mode).toBe('fork');
    expect(build(specFor()).plan.mode).toBe('vfork');
  });

  test('a terminal: setsid, the pty from the container\'s /dev/ptmx with the window size, TIOCSCTTY, all after the pivot and before the uid change', () => {
    const b = build(specFor({ user: 'app' }), { terminal: { consoleFd: 7, size: { rows: 30, cols: 100 } } });
    const at = b.ops.indexOf('OpenPty');
    expect(b.ops.slice(at - 1, at + 2)).toEqual(['Setsid', 'OpenPty', 'SetCtty']);
    expect(b.decoded.steps[at].args).toEqual([7n, BigInt((30 << 16) | 100), 1000n]);
    expect(b.ops.indexOf('PivotRoot')).toBeLessThan(at);
    expect(b.ops.indexOf('Setresuid')).toBeGreaterThan(at);
  });

  test('joined namespaces: setns by path first, and no clone flag for them', () => {
    const spec = specFor();
    spec.linux.namespaces = spec.linux.namespaces.map((ns) => (ns.type === 'network' ? { type: 'network', path: '/proc/1/ns/net' } : ns));
    const b = build(spec);
    expect(b.ops[1]).toBe('Setns');
    expect(strings(b, 1)[0]).toBe('/proc/1/ns/net');
    expect(b.decoded.steps[1].args[0]).toBe(BigInt(CLONE_NEW.network));
    expect(b.ops[2]).toBe('Unshare');
    expect(b.plan.cloneFlags & CLONE_NEW.network).toBe(0);
    // The joined network namespace is not ours to configure.
    expect(b.ops).not.toContain('LinkUp');
  });

  test('a spare network namespace: joined by fd after the cgroup join, in place of CLONE_NEWNET and the loopback step', () => {
    const spec = specFor();
    const join: PlanStep[] = [{ op: 'WriteFile', args: [fs.constants.O_WRONLY], strs: ['/cg/pids/tsrun/x/tasks', '0'], phase: 'cgroups' }];
    const cloned = build(spec, { cgroupJoin: join });
    const joined = build(spec, { cgroupJoin: join, spareNetworkNamespace: 42 });
    expect(joined.ops.slice(0, 3)).toEqual(['Prctl', 'WriteFile', 'Setns']);
    expect(joined.decoded.steps[2].args.slice(0, 2)).toEqual([BigInt(CLONE_NEW.network), 42n]);
    expect(strings(joined, 2)[0]).toBeNull();
    expect(cloned.plan.cloneFlags & CLONE_NEW.network).toBe(CLONE_NEW.network);
    expect(joined.plan.cloneFlags).toBe(cloned.plan.cloneFlags & ~CLONE_NEW.network);
    expect(cloned.ops).toContain('LinkUp');
    expect(joined.ops.filter((op) => op !== 'Setns')).toEqual(cloned.ops.filter((op) => op !== 'LinkUp'));
  });

  test('a spare network namespace is joined before the network sync point, where CNI configures it', () => {
    const b = build(specFor(), { spareNetworkNamespace: 42, networkSync: true });
    expect(b.ops.slice(0, 4)).toEqual(['Prctl', 'Setns', 'SyncSignal', 'SyncWait']);
  });

  test('host namespaces: no rootfs without a mount namespace, no hostname or loopback', () => {
    const spec = specFor({ network: 'host', uts: 'host', cgroupns: 'host' });
    spec.linux.namespaces = spec.linux.namespaces.filter((ns) => ns.type !== 'mount');
    const b = build(spec);
    expect(b.ops.filter((op) => op !== 'Prctl')).toEqual(['Stdio', 'CloseFrom', 'Setgroups', 'Setresgid', 'Setresuid', 'Capset', 'Chdir', 'Umask', 'Seccomp', 'Exec']);
    expect(b.ops).not.toContain('MaskPath');
    expect(b.plan.cloneFlags).toBe(CLONE_NEW.pid | CLONE_NEW.ipc);
  });

  test('the cgroup join comes first: before the user namespace sync, the namespace joins and the cgroup namespace', () => {
    const join: PlanStep[] = ['/cg/memory/tsrun/x/cgroup.procs', '/cg/pids/tsrun/x/cgroup.procs'].map((file) => ({
      op: 'WriteFile',
      args: [fs.constants.O_WRONLY],
      strs: [file, '0'],
      phase: 'cgroups',
      target: file,
    }));
    const spec = specFor({ idMappings: { uid: WIDE, gid: WIDE } });
    spec.linux.namespaces = spec.linux.namespaces.map((ns) => (ns.type === 'network' ? { type: 'network', path: '/proc/1/ns/net' } : ns));
    const b = build(spec, { cgroupJoin: join });
    expect(b.ops.slice(0, 9)).toEqual(['Prctl', 'WriteFile', 'WriteFile', 'SyncSignal', 'SyncWait', 'Setresgid', 'Setresuid', 'Setns', 'Unshare']);
    expect(strings(b, 1).slice(0, 2)).toEqual(['/cg/memory/tsrun/x/cgroup.procs', '0']);
    expect(strings(b, 2).slice(0, 2)).toEqual(['/cg/pids/tsrun/x/cgroup.procs', '0']);
    expect(b.decoded.steps[8].args[0]).toBe(BigInt(CLONE_NEW.cgroup));
  });

  test('a read-only root is remounted after the pivot; no death signal when not asked for', () => {
    const b = build(specFor({ readOnly: true }), { dieWithParent: false });
    const remount = b.ops.indexOf('Chdir', b.ops.indexOf('PivotRoot')) + 1;
    expect(b.ops[remount]).toBe('Mount');
    expect(b.decoded.steps[remount].args[0]).toBe(BigInt(MS.REMOUNT | MS.BIND | MS.RDONLY));
    expect(strings(b, remount)[1]).toBe('/');
    expect(b.decoded.steps.filter((s) => s.op === 'Prctl' && s.args[0] === 1n)).toEqual([]);
  });

  test('without no_new_privs the filter is loaded before the capabilities go; none when unconfined', () => {
    const lifted = build(specFor({ noNewPrivileges: false }));
    expect(lifted.ops.indexOf('Seccomp')).toBeLessThan(lifted.ops.indexOf('Capset'));
    expect(lifted.ops.indexOf('Seccomp')).toBeGreaterThan(lifted.ops.indexOf('CloseFrom'));
    expect(build(specFor({ seccomp: 'unconfined' })).ops).not.toContain('Seccomp');
    const seccomp = build(specFor());
    const blob = seccomp.decoded.steps[seccomp.ops.indexOf('Seccomp')].refs[0];
    // u32 length, then whole 8-byte instructions.
    expect(seccomp.decoded.pool.readUInt32LE(blob) % 8).toBe(0);
  });

  test('the plan parses in the addon up to its exec', () => {
    // See plan.test.ts: a plan cut before its Exec is refused only for that.
    for (const spec of [specFor(), specFor({ idMappings: { uid: WIDE, gid: WIDE } })]) {
      const steps = buildContainerPlan(spec, OPTIONS).steps;
      expect(() => loadNative().spawn(serializePlan(steps.slice(0, -1)), { cloneFlags: 0, mode: 'vfork' })).toThrow('spawn: invalid plan: the last step must be exec');
    }
  });
});

describe('execCandidates', () => {
  test('a command with a slash is taken as is', () => {
    expect(execCandidates('/bin/sh', ['PATH=/usr/bin'])).toEqual(['/bin/sh']);
    expect(execCandidates('./run', [])).toEqual(['./run']);
  });

  test('otherwise each absolute PATH directory in order; the last PATH wins', () => {
    expect(execCandidates('ls', ['PATH=/a:/b/:rel::/c//', 'X=1'])).toEqual(['/a/ls', '/b/ls', '/c/ls']);
    expect(execCandidates('ls', ['PATH=/first', 'PATH=/second'])).toEqual(['/second/ls']);
    expect(execCandidates('ls', ['NOTPATH=/x', 'MYPATH=/y'])).toEqual([]);
    expect(execCandidates('ls', [])).toEqual([]);
  });
});
