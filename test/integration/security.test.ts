import * as fs from 'node:fs';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';
import { SyscallError, ValidationError } from '../../src';
import { DEFAULT_SECCOMP_PROFILE } from '../../src/linux/seccomp';
import { loadNative } from '../../src/native';
import { buildContainerPlan } from '../../src/runtime/container-plan';
import { buildSpec } from '../../src/runtime/options';
import { spawnContainer } from '../../src/runtime/spawn';
import { serializePlan, PlanStep } from '../../src/runtime/plan';
import { busyboxRootfs, describeAsRoot, useTempDir } from '../helpers/fixtures';
import { checkLeaksAfterEach } from '../helpers/leaks';
import { runCollect } from '../helpers/run';

/** The Cap* lines of /proc/self/status as { CapEff: 'a80425fb', ... } (leading zeros dropped). */
function capLines(status: string): Record<string, string> {
  const result: Record<string, string> = {};
  for (const m of status.matchAll(/^(Cap\w+):\s*([0-9a-f]+)$/gm)) result[m[1]] = BigInt(`0x${m[2]}`).toString(16);
  return result;
}

const DOCKER_DEFAULT = 'a80425fb';

describeAsRoot('security: capabilities, no_new_privs, masked paths, escapes', () => {
  const tmp = useTempDir('tsrun-security-');
  const state = () => path.join(tmp(), 'state');
  checkLeaksAfterEach();

  test('a default container has Docker\'s capability set, NoNewPrivs 1, and cannot unshare or mount', async () => {
    const r = await runCollect(
      ['sh', '-c', 'grep -E "^(Cap|NoNewPrivs)" /proc/self/status; unshare -m true 2>/dev/null || echo unshare-denied; mkdir -p /mnt; mount -t tmpfs x /mnt 2>/dev/null || echo mount-denied'],
      { stateDir: state() },
    );
    expect(r.exitCode).toBe(0);
    expect(capLines(r.stdout)).toEqual({ CapInh: '0', CapPrm: DOCKER_DEFAULT, CapEff: DOCKER_DEFAULT, CapBnd: DOCKER_DEFAULT, CapAmb: '0' });
    expect(r.stdout).toMatch(/^NoNewPrivs:\s+1$/m);
    expect(r.stdout).toContain('unshare-denied\nmount-denied\n');
  });

  test('--cap-add NET_ADMIN adds exactly that bit, and it works; --cap-drop ALL leaves nothing', async () => {
    const script = 'grep ^CapEff /proc/self/status; ip link add dummy0 type dummy 2>/dev/null && echo added || echo refused';
    const added = await runCollect(['sh', '-c', script], { stateDir: state(), capAdd: ['NET_ADMIN'] });
    expect(capLines(added.stdout).CapEff).toBe((0xa80425fbn | (1n << 12n)).toString(16));
    const plain = await runCollect(['sh', '-c', script], { stateDir: state() });
    expect(plain.stdout).toContain('refused');
    // Loaded on demand by the kernel: where the dummy driver is missing, only the capability check is left to compare.
    if (!added.stdout.includes('added')) expect(added.stdout).toContain('refused');

    const none = await runCollect(['sh', '-c', 'grep -E "^Cap(Eff|Prm|Bnd)" /proc/self/status; chown 1 /tmp 2>/dev/null || echo chown-denied'], { stateDir: state(), capDrop: ['ALL'] });
    expect(capLines(none.stdout)).toEqual({ CapEff: '0', CapPrm: '0', CapBnd: '0' });
    expect(none.stdout).toContain('chown-denied');

    const some = await runCollect(['sh', '-c', 'grep ^CapEff /proc/self/status'], { stateDir: state(), capDrop: ['ALL'], capAdd: ['cap_chown', 'KILL'] });
    expect(capLines(some.stdout).CapEff).toBe(((1n << 0n) | (1n << 5n)).toString(16));
  });

  test('unknown capability names are an error naming the flag; so is one the runtime lacks itself', async () => {
    await expect(runCollect(['true'], { stateDir: state(), capAdd: ['NET_ADMIN', 'FLY'] })).rejects.toThrow(new ValidationError('capAdd[1]', 'unknown capability "FLY"'));
    await expect(runCollect(['true'], { stateDir: state(), capDrop: ['NOPE'] })).rejects.toThrow(/capDrop\[0\]: unknown capability "NOPE"/);
    const bounding = BigInt(`0x${/^CapBnd:\s*(\w+)/m.exec(fs.readFileSync('/proc/self/status', 'utf8'))?.[1]}`);
    if (!((bounding >> 24n) & 1n)) {
      // This host's root lacks CAP_SYS_RESOURCE: asking for it must say why it cannot be had.
      await expect(runCollect(['true'], { stateDir: state(), capAdd: ['SYS_RESOURCE'] })).rejects.toThrow(/CAP_SYS_RESOURCE is not in the runtime's own bounding set/);
    }
    // Refused before anything was created.
    const fresh = path.join(tmp(), 'refused-state');
    await expect(runCollect(['true'], { stateDir: fresh, capAdd: ['FLY'] })).rejects.toThrow(ValidationError);
    expect(fs.existsSync(fresh) ? fs.readdirSync(fresh).filter((e) => e !== 'names') : []).toEqual([]);
  });

  test('a non-root user gets the bounding set only, as with Docker', async () => {
    const r = await runCollect(['sh', '-c', 'grep -E "^Cap(Eff|Prm|Bnd)" /proc/self/status'], { stateDir: state(), user: '1000:1000' });
    expect(capLines(r.stdout)).toEqual({ CapEff: '0', CapPrm: '0', CapBnd: DOCKER_DEFAULT });
  });

  test('no-new-privileges can be lifted, as --security-opt no-new-privileges=false', async () => {
    const r = await runCollect(['grep', '^NoNewPrivs', '/proc/self/status'], { stateDir: state(), noNewPrivileges: false });
    expect(r.stdout).toMatch(/^NoNewPrivs:\s+0$/m);
  });

  test('masked paths read as empty; /proc/sys and the other read-only paths refuse writes', async () => {
    const r = await runCollect(
      [
        'sh',
        '-c',
        [
          'for f in /proc/kcore /proc/keys /proc/timer_list /proc/sched_debug; do [ -e $f ] && echo "$f $(head -c 64 $f | wc -c)"; done',
          'echo "firmware $(ls /sys/firmware | wc -l)"',
          'echo x > /proc/sys/kernel/domainname',
          'grep -E " /proc/(sys|sysrq-trigger|bus|fs|irq) " /proc/self/mountinfo | cut -d" " -f5,6',
        ].join('; '),
      ],
      { stateDir: state() },
    );
    const lines = r.stdout.trim().split('\n');
    // What this kernel has of them (no /proc/kcore without CONFIG_PROC_KCORE).
    for (const file of ['/proc/kcore', '/proc/keys', '/proc/timer_list', '/proc/sched_debug']) {
      if (fs.existsSync(file)) expect(lines).toContain(`${file} 0`);
    }
    expect(lines).toContain('firmware 0');
    expect(r.stderr).toMatch(/can't create \/proc\/sys\/kernel\/domainname: Read-only file system/);
    const readOnly = lines.filter((l) => / ro,/.test(l) || / ro$/.test(l)).map((l) => l.split(' ')[0]);
    expect(readOnly).toEqual(expect.arrayContaining(['/proc/sys', '/proc/fs', '/proc/irq', ...(fs.existsSync('/proc/sysrq-trigger') ? ['/proc/sysrq-trigger'] : [])]));
    // The host's timer_list is not empty: the mask is what makes it so.
    expect(fs.readFileSync('/proc/timer_list', 'utf8').length).toBeGreaterThan(0);
  });

  test('/sys refuses writes', async () => {
    const r = await runCollect(['sh', '-c', 'cat /sys/kernel/profiling > /sys/kernel/profiling'], { stateDir: state() });
    expect(r.stderr).toMatch(/Read-only file system/);
  });

  test('seccomp: Docker\'s default filter is loaded (Seccomp 2) and refuses a user namespace that no capability guards', async () => {
    // unshare(CLONE_NEWUSER) needs no capability: only the filter stops it.
    const script = 'grep -E "^Seccomp:" /proc/self/status; unshare -U true && echo userns-ok || echo userns-denied';
    const confined = await runCollect(['sh', '-c', script], { stateDir: state() });
    expect(confined.stdout).toMatch(/^Seccomp:\s+2\nuserns-denied\n$/);
    expect(confined.stderr).toMatch(/Operation not permitted/);
    const unconfined = await runCollect(['sh', '-c', script], { stateDir: state(), seccomp: 'unconfined' });
    expect(unconfined.stdout).toMatch(/^Seccomp:\s+0\nuserns-ok\n$/);
  });

  test('seccomp: a profile file in Docker\'s JSON format, with argument conditions', async () => {
    const file = path.join(tmp(), 'profile.json');
    fs.writeFileSync(
      file,
      JSON.stringify({
        defaultAction: 'SCMP_ACT_ALLOW',
        syscalls: [
          { names: ['mkdir', 'mkdirat'], action: 'SCMP_ACT_ERRNO', errnoRet: 13 },
          // socket(AF_INET, ...) refused, the other families allowed.
          { names: ['socket'], action: 'SCMP_ACT_ERRNO', errnoRet: 97, args: [{ index: 0, value: 2, op: 'SCMP_CMP_EQ' }] },
          { names: ['unshare'], action: 'SCMP_ACT_ERRNO', includes: { caps: ['CAP_SYS_ADMIN'] } },
        ],
      }),
    );
    const r = await runCollect(['sh', '-c', 'mkdir /tmp/d || echo mkdir-denied; ping -c1 -W1 127.0.0.1 >/dev/null || echo inet-denied; ip -o link | grep -c " lo:"'], {
      stateDir: state(),
      seccomp: file,
    });
    // ip talks netlink (AF_NETLINK): that socket is allowed.
    expect(r.stdout).toBe('mkdir-denied\ninet-denied\n1\n');
    expect(r.stderr).toMatch(/mkdir: can't create directory '\/tmp\/d': Permission denied/);
    expect(r.stderr).toMatch(/Address family not supported/);
    // The same profile as Docker's default, written to a file, gives the default's behaviour.
    const defaults = path.join(tmp(), 'default.json');
    fs.writeFileSync(defaults, JSON.stringify(DEFAULT_SECCOMP_PROFILE));
    const same = await runCollect(['sh', '-c', 'unshare -U true 2>/dev/null || echo userns-denied'], { stateDir: state(), seccomp: defaults });
    expect(same.stdout).toBe('userns-denied\n');
    await expect(runCollect(['true'], { stateDir: state(), seccomp: path.join(tmp(), 'missing.json') })).rejects.toThrow(/seccomp: cannot read the profile/);
  });

  test('--privileged: every capability the runtime has, no seccomp, no masked paths, /sys writable', async () => {
    const r = await runCollect(['sh', '-c', 'grep -E "^(CapEff|Seccomp):" /proc/self/status; head -c 1 /proc/timer_list | wc -c; grep " /sys " /proc/self/mountinfo | cut -d" " -f6'], { stateDir: state(), privileged: true });
    const own = /^CapBnd:\s*(\w+)/m.exec(fs.readFileSync('/proc/self/status', 'utf8'))?.[1] as string;
    expect(capLines(r.stdout).CapEff).toBe(BigInt(`0x${own}`).toString(16));
    expect(r.stdout).toMatch(/^Seccomp:\s+0$/m);
    expect(r.stdout).toMatch(/^1\nrw,/m);
  });

  test('--ulimit sets soft and hard limits; raising a hard limit past tsrun\'s own says why it cannot', async () => {
    const r = await runCollect(['sh', '-c', 'ulimit -Sn; ulimit -Hn; ulimit -Hc'], { stateDir: state(), ulimits: [{ name: 'nofile', soft: 100, hard: 200 }, { name: 'core', soft: 0, hard: 0 }] });
    expect(r.stdout).toBe('100\n200\n0\n');
    const ownHard = Number(/^Max open files\s+\S+\s+(\d+)/m.exec(fs.readFileSync('/proc/self/limits', 'utf8'))?.[1]);
    const status = fs.readFileSync('/proc/self/status', 'utf8');
    const hasSysResource = (BigInt(`0x${/^CapEff:\s*(\w+)/m.exec(status)?.[1]}`) >> 24n) & 1n;
    if (hasSysResource) {
      console.warn('skipped the EPERM half: this process has CAP_SYS_RESOURCE, so it may raise any hard limit');
    } else {
      await expect(runCollect(['true'], { stateDir: state(), ulimits: [{ name: 'nofile', soft: 10, hard: ownHard + 1 }] })).rejects.toThrow(
        new RegExp(`ulimit nofile: hard limit ${ownHard + 1} is not allowed: raising a hard limit above the runtime's own \\(${ownHard}\\) needs CAP_SYS_RESOURCE`),
      );
    }
    await expect(runCollect(['true'], { stateDir: state(), ulimits: [{ name: 'nofiles', soft: 1 }] })).rejects.toThrow(/ulimits\[0\]: unknown ulimit "nofiles"/);
    await expect(runCollect(['true'], { stateDir: state(), ulimits: [{ name: 'nofile', soft: 9, hard: 8 }] })).rejects.toThrow(/soft limit 9 is above the hard limit 8/);
  });

  test('/dev holds only the default nodes; a node made with mknod cannot be opened; --device adds one', async () => {
    const r = await runCollect(['sh', '-c', 'ls /dev | tr "\\n" " "; echo; mknod /dev/kmsg2 c 1 11 && echo made; head -c 1 /dev/kmsg2 >/dev/null && echo read-host-kmsg'], { stateDir: state() });
    expect(r.stdout).toBe('fd full mqueue null ptmx pts random shm stderr stdin stdout tty urandom zero \nmade\n');
    expect(r.stderr).toMatch(/kmsg2: Operation not permitted/);

    if (!fs.existsSync('/dev/fuse') || !fs.existsSync('/dev/loop0')) {
      console.warn('skipped the --device half: this host has no /dev/fuse or /dev/loop0');
      return;
    }
    const added = await runCollect(['sh', '-c', 'stat -c "%t:%T" /dev/fuse; exec 3<>/dev/fuse && echo fuse-opened; dd if=/dev/xdisk of=/dev/null count=1 2>/dev/null && echo xdisk-read; true > /dev/xdisk || echo xdisk-no-write'], {
      stateDir: state(),
      devices: ['/dev/fuse', '/dev/loop0:/dev/xdisk:r'],
    });
    expect(added.stdout).toBe('a:e5\nfuse-opened\nxdisk-read\nxdisk-no-write\n');
    await expect(runCollect(['true'], { stateDir: state(), devices: ['/etc/passwd:/dev/passwd'] })).rejects.toThrow(/devices\[0\]: \/etc\/passwd is not a character or block device/);
    await expect(runCollect(['true'], { stateDir: state(), devices: ['/dev/fuse:/fuse'] })).rejects.toThrow(/\/fuse: devices go under \/dev/);
    await expect(runCollect(['true'], { stateDir: state(), devices: ['/dev/nothing-here'] })).rejects.toThrow(/no such device on the host/);
  });

  test('--privileged gets the host\'s devices and may open them', async () => {
    const r = await runCollect(['sh', '-c', '[ -c /dev/loop-control ] && echo loop-control; head -c 1 /dev/kmsg >/dev/null && echo kmsg-read'], { stateDir: state(), privileged: true });
    expect(r.stdout).toBe(`${fs.existsSync('/dev/loop-control') ? 'loop-control\n' : ''}kmsg-read\n`);
  });

  test('--read-only with --tmpfs /tmp: only the tmpfs is writable, nosuid, nodev and noexec', async () => {
    const r = await runCollect(['sh', '-c', 'touch /x 2>/dev/null || echo root-ro; touch /tmp/x && echo tmp-rw; grep " /tmp " /proc/self/mountinfo | cut -d" " -f6,8,10'], {
      stateDir: state(),
      readOnly: true,
      tmpfs: { '/tmp': 'size=1m' },
    });
    expect(r.stdout).toBe('root-ro\ntmp-rw\nrw,nosuid,nodev,noexec,relatime tmpfs rw,size=1024k\n');
  });

  test('CVE-2024-21626: a host directory fd of the runtime cannot become the working directory', async () => {
    // The attack: -w /proc/self/fd/N, N a directory fd the runtime holds while it sets up.
    const held = fs.openSync(tmp(), 'r');
    try {
      const err = await runCollect(['ls'], { stateDir: state(), cwd: `/proc/self/fd/${held}` }).then(
        () => null,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(SyscallError);
      expect(err).toMatchObject({ syscall: 'chdir', code: 'ENOENT' });
      const fds = await runCollect(['ls', '/proc/self/fd'], { stateDir: state() });
      expect(fds.stdout.trim().split('\n').sort()).toEqual(['0', '1', '2', '3']);
    } finally {
      fs.closeSync(held);
    }
  });

  test('CVE-2019-5736: while the child is still Node, a container process cannot open its /proc/PID/exe', async () => {
    const paused = pausedBeforeExec(state(), { dumpable: false });
    try {
      const probe = await runCollect(['sh', '-c', `head -c 4 /proc/${paused.pid}/exe | od -An -c; readlink /proc/${paused.pid}/exe || echo no-link`], { stateDir: state(), pid: 'host' });
      expect(probe.stdout).not.toContain('E   L   F');
      expect(probe.stdout).toContain('no-link');
      expect(probe.stderr).toMatch(/Permission denied/);
    } finally {
      paused.release();
    }
    // The same probe against a child that stays dumpable (the naive runtime) reads the host's node binary.
    const naive = pausedBeforeExec(state(), { dumpable: true });
    try {
      const probe = await runCollect(['sh', '-c', `head -c 4 /proc/${naive.pid}/exe | od -An -c`], { stateDir: state(), pid: 'host' });
      expect(probe.stdout).toContain('E   L   F');
    } finally {
      naive.release();
    }
  });

  test('CVE-2021-30465: a symlinked mount destination is resolved inside the root', async () => {
    const rootfs = path.join(tmp(), 'linked-rootfs');
    execFileSync('cp', ['-a', busyboxRootfs(), rootfs]);
    const outside = path.join(tmp(), 'outside');
    fs.mkdirSync(outside);
    // Absolute and with .. beyond the root: followed on the host it names `outside`.
    fs.symlinkSync(`/../../../../../..${outside}`, path.join(rootfs, 'data'));
    try {
      const r = await runCollect(['sh', '-c', `grep " ${outside} " /proc/self/mountinfo | cut -d" " -f5,9; echo hi > /data/f && cat ${outside}/f`], {
        stateDir: state(),
        rootfs,
        tmpfs: { '/data': '' },
      });
      expect(r.stdout).toBe(`${outside} tmpfs\nhi\n`);
      // Nothing reached the host's directory.
      expect(fs.readdirSync(outside)).toEqual([]);
    } finally {
      fs.rmSync(rootfs, { recursive: true, force: true });
    }
  });

  test('CVE-2021-30465: a destination swapped for a symlink after it was resolved is resolved in the root again when mounted', async () => {
    const rootfs = path.join(tmp(), 'raced-rootfs');
    execFileSync('cp', ['-a', busyboxRootfs(), rootfs]);
    const outside = path.join(tmp(), 'raced-outside');
    fs.mkdirSync(outside);
    fs.mkdirSync(path.join(rootfs, 'data'));
    try {
      // The plan is built while /data is a directory...
      const spec = buildSpec({ rootfs, args: ['sh', '-c', `grep " /data " /proc/self/mountinfo | cut -d" " -f5,9`], tmpfs: { '/data': '' } }, 'raced00000000000');
      const plan = buildContainerPlan(spec, { stdio: [-1, -1, -1], dieWithParent: true, pivot: true, cgroupJoin: [] });
      // ...and before the child mounts, /data becomes a link out of the root (the race's winning move).
      fs.rmdirSync(path.join(rootfs, 'data'));
      fs.symlinkSync(`/../../../../../..${outside}`, path.join(rootfs, 'data'));
      const err = (() => {
        try {
          const spawned = spawnContainer(spec, plan);
          fs.closeSync(spawned.pidfd);
          return null;
        } catch (e) {
          return e;
        }
      })();
      // Inside the root the link names <root>/<outside>, which does not exist: the mount fails, and never lands on the host's directory.
      expect(err).toBeInstanceOf(SyscallError);
      expect(err).toMatchObject({ syscall: 'mount', code: 'ENOENT', path: path.join(rootfs, 'data') });
    } finally {
      fs.rmSync(rootfs, { recursive: true, force: true });
    }
  });
});

/**
 * A real container's plan, stopped on a sync point right before its
 * execve, in its own PID namespace: its capabilities are the container's
 * already, but it is still a copy of this Node process. `dumpable: true` leaves out the
 * runtime's PR_SET_DUMPABLE step, as a naive runtime would.
 */
function pausedBeforeExec(stateDir: string, options: { dumpable: boolean }): { pid: number; release(): void } {
  fs.mkdirSync(stateDir, { recursive: true });
  const native = loadNative();
  const spec = buildSpec({ rootfs: busyboxRootfs(), args: ['true'] }, 'paused0000000000');
  const plan = buildContainerPlan(spec, { stdio: [-1, -1, -1], dieWithParent: true, pivot: true, cgroupJoin: [] });
  let steps: PlanStep[] = plan.steps;
  if (options.dumpable) steps = steps.filter((s) => s.detail !== 'PR_SET_DUMPABLE');
  const at = steps.findIndex((s) => s.op === 'Exec');
  steps = [...steps.slice(0, at), { op: 'SyncSignal', args: [77], phase: 'test' }, { op: 'SyncWait', phase: 'test' }, ...steps.slice(at)];
  const [parentEnd, childEnd] = native.socketPair();
  const spawned = native.spawn(serializePlan(steps), { cloneFlags: plan.cloneFlags, mode: 'fork', syncFd: childEnd, parentSyncFd: parentEnd });
  fs.closeSync(childEnd);
  if (native.syncWait(parentEnd, 10_000) !== 77) throw new Error('the paused child did not reach its sync point');
  return {
    pid: spawned.pid,
    release() {
      native.syncRelease(parentEnd, 1);
      fs.closeSync(parentEnd);
      native.readChildError(spawned.errorFd);
      native.waitExit(spawned.pidfd, true);
      fs.closeSync(spawned.pidfd);
    },
  };
}
