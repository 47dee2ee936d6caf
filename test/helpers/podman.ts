import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

/** Where cgroup v1 controllers (and the hybrid cgroup2 mount) are. */
const CGROUP_ROOT = '/sys/fs/cgroup';

export interface TempPodman {
  /** Runs podman on the temp storage; returns stdout, throws with stderr on failure. */
  cli(...args: string[]): string;
  /**
   * `podman run --rm` of `image` with the flags this host needs; the
   * container's output and exit code.
   */
  run(image: string, command: string[]): { stdout: string; stderr: string; status: number | null };
  /** The cgroups podman made for its containers and conmon, in every hierarchy. */
  cgroups(): string[];
  /** The cgroup parent its containers get with run(); pass it as --cgroup-parent /NAME to other runs. */
  cgroupParent: string;
  /** Resets the storage and removes the dirs and the cgroups podman made. */
  dispose(): void;
}

/**
 * podman on storage of its own under `dir` (root, runroot, tmpdir, config;
 * vfs, no events log) and a cgroup parent of its own, so that `dispose`
 * can remove everything it made: nothing of it is left on the host.
 */
export function tempPodman(dir: string, options: { runtime?: string; eventsBackend?: 'none' | 'file' } = {}): TempPodman {
  const global = [
    '--root', path.join(dir, 'root'),
    '--runroot', path.join(dir, 'run'),
    '--tmpdir', path.join(dir, 'tmp'),
    '--storage-driver', 'vfs',
    '--events-backend', options.eventsBackend ?? 'none',
    // crun 1.8 refuses this host's hybrid cgroups; runc takes them.
    '--runtime', options.runtime ?? 'runc',
    '--cgroup-manager', 'cgroupfs',
  ];
  const env = { ...process.env, XDG_CONFIG_HOME: path.join(dir, 'config') };
  const cgroupParent = `podman-test-${process.pid}-${path.basename(dir)}`;
  const cli = (...args: string[]): string => {
    const result = spawnSync('podman', [...global, ...args], { encoding: 'utf8', env, maxBuffer: 1 << 26, timeout: 120_000 });
    if (result.status !== 0) throw new Error(`podman ${args.join(' ')}: ${result.error?.message ?? result.stderr.trim()}`);
    return result.stdout;
  };
  const cgroups = (): string[] =>
    fs
      .readdirSync(CGROUP_ROOT)
      .map((hierarchy) => path.join(CGROUP_ROOT, hierarchy, cgroupParent))
      .filter((cg) => fs.existsSync(cg));
  return {
    cli,
    cgroups,
    cgroupParent,
    run(image, command) {
      const result = spawnSync(
        'podman',
        [
          ...global,
          'run', '--rm', '--network', 'none',
          // Its own parent: podman leaves conmon's cgroup behind, and dispose removes it.
          '--cgroup-parent', `/${cgroupParent}`,
          // podman asks for more files and processes than the current hard
          // limits, and root here lacks CAP_SYS_RESOURCE to raise them.
          '--ulimit', 'nofile=1024:1024', '--ulimit', 'nproc=1024:1024',
          image, ...command,
        ],
        { encoding: 'utf8', env, timeout: 120_000 },
      );
      return { stdout: result.stdout, stderr: result.stderr, status: result.status };
    },
    dispose() {
      try {
        execFileSync('podman', [...global, 'system', 'reset', '--force'], { stdio: 'ignore', env, timeout: 120_000 });
      } finally {
        // A hierarchy may be reached twice (cpu and cpuacct link to one): the first removal wins.
        for (const cgroup of cgroups()) if (fs.existsSync(cgroup)) removeCgroupTree(cgroup);
        fs.rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}

/** Removes a cgroup directory and the cgroups below it, deepest first (rmdir is all a cgroup takes). */
function removeCgroupTree(dir: string): void {
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) if (entry.isDirectory()) removeCgroupTree(path.join(dir, entry.name));
  fs.rmdirSync(dir);
}
