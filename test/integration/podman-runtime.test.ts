import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Store } from '../../src/storage/store';
import { busyboxRootfs, describeAsRoot, useTempDir } from '../helpers/fixtures';
import { checkLeaksAfterEach } from '../helpers/leaks';
import { TempPodman, tempPodman } from '../helpers/podman';

const OCI = process.env.OCI_UNDER_TEST ?? path.resolve(__dirname, '..', '..', 'bin', 'tsrun-oci');

/** Debian's podman, installed when missing (as scripts/setup.sh would). */
function ensurePodman(): boolean {
  if (spawnSync('podman', ['--version']).status === 0) return true;
  const install = spawnSync('apt-get', ['install', '-y', '--no-install-recommends', 'podman'], { stdio: 'ignore', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
  return install.status === 0 && spawnSync('podman', ['--version']).status === 0;
}

const hasPodman = ensurePodman();
if (!hasPodman) {
  // eslint-disable-next-line no-console
  console.warn('podman-runtime tests skipped: podman is not installed and apt-get could not install it');
}
const describeWithPodman = hasPodman ? describeAsRoot : describe.skip;

describeWithPodman('podman with --runtime tsrun-oci', () => {
  let podman: TempPodman;
  // Declared before the temp dir: afterAll hooks run in the order they are
  // declared, and `podman system reset` made the removed temp dir again.
  afterAll(() => {
    podman?.dispose();
  });
  const tmp = useTempDir('tsrun-podman-');
  checkLeaksAfterEach();

  /** The flags this host needs: podman asks for more files and processes than the hard limits allow, and root here cannot raise them. */
  const runFlags = (): string[] => ['--network', 'none', '--cgroup-parent', `/${podman.cgroupParent}`, '--ulimit', 'nofile=20000:20000', '--ulimit', 'nproc=32768:32768'];

  beforeAll(async () => {
    podman = tempPodman(path.join(tmp(), 'podman'), { runtime: OCI, eventsBackend: 'file' });
    // The image: tsrun's own store saves it, podman loads the archive.
    const tar = path.join(tmp(), 'busybox.tar');
    execFileSync('tar', ['-C', busyboxRootfs(), '-cf', tar, '.']);
    const store = Store.open(path.join(tmp(), 'store'));
    await store.importRootfs(tar, 'localhost/busybox:podman', { changes: ['CMD ["sh"]'] });
    const archive = path.join(tmp(), 'busybox-archive.tar');
    await store.save(['localhost/busybox:podman'], archive);
    podman.cli('load', '-i', archive);
  }, 120_000);

  test('run --rm IMAGE echo hi prints hi', () => {
    expect(podman.cli('run', '--rm', ...runFlags(), 'localhost/busybox:podman', 'echo', 'hi')).toBe('hi\n');
  }, 120_000);

  test('run -t: the container has a terminal of its own devpts, whose master conmon got over the console socket', () => {
    const output = podman.cli('run', '--rm', '-t', ...runFlags(), 'localhost/busybox:podman', 'sh', '-c', '[ -t 0 ] && echo tty-in; tty').replace(/\r/g, '');
    expect(output).toBe('tty-in\n/dev/pts/0\n');
  }, 30_000);

  test('run -d, exec, logs, stop: the container ends with 137 or 143 and rm leaves nothing', () => {
    const id = podman.cli('run', '-d', '--name', 'web', ...runFlags(), 'localhost/busybox:podman', 'sh', '-c', 'while true; do echo tick; sleep 1; done').trim();
    try {
      expect(id).toMatch(/^[0-9a-f]{64}$/);
      const ps = podman.cli('exec', 'web', 'ps');
      expect(ps).toMatch(/^\s*1 root +sh -c while true/m);
      expect(podman.cli('exec', 'web', 'sh', '-c', 'echo $((6 * 7))')).toBe('42\n');
      // exec -t: a pty of the container's devpts, sent to conmon over the console socket.
      expect(podman.cli('exec', '-t', 'web', 'sh', '-c', '[ -t 1 ] && tty').replace(/\r/g, '')).toBe('/dev/pts/0\n');
      expect(podman.cli('logs', 'web')).toMatch(/^tick\n/);
      podman.cli('stop', '-t', '2', 'web');
      expect(podman.cli('ps', '-a', '--format', '{{.Names}} {{.Status}}')).toMatch(/^web Exited \((137|143)\)/m);
    } finally {
      podman.cli('rm', '-f', 'web');
    }
    expect(podman.cli('ps', '-a', '-q')).toBe('');
    expect(fs.readFileSync('/proc/self/mountinfo', 'utf8')).not.toContain(id);
  }, 180_000);
});
