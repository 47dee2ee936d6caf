import { StateError } from '../../src/errors';
import { allowed, checkOperation } from '../../src/runtime/lifecycle';
import { buildExecPlan } from '../../src/runtime/container-plan';
import { parseLogLine } from '../../src/runtime/logs';

describe('the OCI state table', () => {
  test('start needs created; kill needs created or running; delete needs stopped unless forced', () => {
    expect(allowed('start', 'created')).toBe(true);
    expect(allowed('start', 'running')).toBe(false);
    expect(allowed('start', 'stopped')).toBe(false);
    expect(allowed('kill', 'created')).toBe(true);
    expect(allowed('kill', 'stopped')).toBe(false);
    expect(allowed('delete', 'stopped')).toBe(true);
    expect(allowed('delete', 'created')).toBe(false);
    expect(allowed('delete', 'created', { force: true })).toBe(true);
    expect(allowed('delete', 'creating', { force: true })).toBe(false);
    expect(allowed('exec', 'created')).toBe(false);
    expect(allowed('pause', 'running')).toBe(true);
    expect(allowed('resume', 'paused')).toBe(true);
  });

  test('a refused operation is a StateError naming the container, its status and what it needs', () => {
    expect(() => checkOperation('web', 'stopped', 'start')).toThrow(new StateError('web', 'stopped', 'start', 'cannot start stopped container web: start needs a created container'));
    expect(() => checkOperation('web', 'created', 'delete')).toThrow(/cannot delete created container web: stop it first or use --force/);
  });
});

describe('the exec plan', () => {
  const process = { args: ['ps'], env: ['PATH=/bin'], cwd: '/', user: { uid: 0, gid: 0 } };

  test('joins the user namespace first and the mount namespace last, then forks into the pid namespace', () => {
    const plan = buildExecPlan(
      [
        { type: 'mount', path: '/proc/9/ns/mnt' },
        { type: 'pid', path: '/proc/9/ns/pid' },
        { type: 'user', path: '/proc/9/ns/user' },
        { type: 'network', path: '/proc/9/ns/net' },
      ],
      process,
      undefined,
      { stdio: [-1, -1, -1], dieWithParent: true, cgroupJoin: [] },
    );
    const ops = plan.steps.map((s) => (s.op === 'Setns' ? `Setns ${s.strs?.[0]}` : s.op));
    expect(ops[0]).toBe('Prctl');
    expect(ops.slice(1, 6)).toEqual(['Setns /proc/9/ns/user', 'Setns /proc/9/ns/net', 'Setns /proc/9/ns/pid', 'Setns /proc/9/ns/mnt', 'ForkIntoParent']);
    expect(ops[ops.length - 1]).toBe('Exec');
    expect(plan.cloneFlags).toBe(0);
  });

  test('without a pid namespace to join, no fork', () => {
    const plan = buildExecPlan([{ type: 'uts', path: '/proc/9/ns/uts' }], process, undefined, { stdio: [-1, -1, -1], dieWithParent: true, cgroupJoin: [] });
    expect(plan.steps.some((s) => s.op === 'ForkIntoParent')).toBe(false);
  });

  test("the container's capabilities, no_new_privs and seccomp filter apply to the exec'd process too", () => {
    const confined = {
      ...process,
      capabilities: { bounding: ['CAP_KILL'], effective: ['CAP_KILL'], permitted: ['CAP_KILL'] },
      noNewPrivileges: true,
    };
    const seccomp = { defaultAction: 'SCMP_ACT_ALLOW' as const, architectures: ['SCMP_ARCH_X86_64', 'SCMP_ARCH_AARCH64'], syscalls: [{ names: ['unshare'], action: 'SCMP_ACT_ERRNO' as const }] };
    const ops = buildExecPlan([{ type: 'pid', path: '/proc/9/ns/pid' }], confined, seccomp, { stdio: [-1, -1, -1], dieWithParent: true, cgroupJoin: [] }).steps.map((s) => s.op);
    expect(ops.indexOf('Capset')).toBeGreaterThan(ops.indexOf('ForkIntoParent'));
    expect(ops.slice(-3)).toEqual(['Prctl', 'Seccomp', 'Exec']);
  });
});

describe('CRI log lines', () => {
  test('full and partial lines, and lines that are not log lines', () => {
    expect(parseLogLine('2026-11-23T09:49:43.182717099Z stdout F tick')).toEqual({ time: '2026-11-23T09:49:43.182717099Z', stream: 'stdout', text: 'tick\n' });
    expect(parseLogLine('2026-11-23T09:49:43.182717099Z stderr P half')).toEqual({ time: '2026-11-23T09:49:43.182717099Z', stream: 'stderr', text: 'half' });
    expect(parseLogLine('2026-11-23T09:49:43.182717099Z stdout F ')).toMatchObject({ text: '\n' });
    expect(parseLogLine('garbage')).toBeNull();
  });
});
