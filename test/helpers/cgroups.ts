import * as fs from 'node:fs';
import * as path from 'node:path';
import { CGROUP_PARENT_ENV, defaultCgroupParent } from '../../src/linux/cgroups';
import type { CgroupOps } from '../../src/linux/cgroups';

/** Writes files (name -> content) into dir, making it first. */
export function setFixture(dir: string, files: Record<string, string>): void {
  fs.mkdirSync(dir, { recursive: true });
  for (const [name, content] of Object.entries(files)) fs.writeFileSync(path.join(dir, name), content);
}

export function readFixture(dir: string, name: string): string {
  return fs.readFileSync(path.join(dir, name), 'utf8');
}

const V1_FILES: Record<string, Record<string, string>> = {
  cpu: { 'cpu.shares': '1024\n', 'cpu.cfs_quota_us': '-1\n', 'cpu.cfs_period_us': '100000\n', 'cpu.stat': 'nr_periods 0\nnr_throttled 0\nthrottled_time 0\n' },
  cpuacct: { 'cpuacct.usage': '0\n', 'cpuacct.usage_user': '0\n', 'cpuacct.usage_sys': '0\n', 'cpuacct.stat': 'user 0\nsystem 0\n' },
  cpuset: { 'cpuset.cpus': '\n', 'cpuset.mems': '\n' },
  memory: {
    'memory.limit_in_bytes': '9223372036854771712\n',
    'memory.memsw.limit_in_bytes': '9223372036854771712\n',
    'memory.soft_limit_in_bytes': '9223372036854771712\n',
    'memory.usage_in_bytes': '0\n',
    'memory.max_usage_in_bytes': '0\n',
    'memory.failcnt': '0\n',
    'memory.oom_control': 'oom_kill_disable 0\nunder_oom 0\noom_kill 0\n',
    'memory.stat': 'cache 0\nrss 0\ntotal_inactive_file 0\n',
  },
  pids: { 'pids.max': 'max\n', 'pids.current': '0\n' },
  blkio: { 'blkio.bfq.weight': '100\n', 'blkio.throttle.io_service_bytes_recursive': 'Total 0\n' },
  freezer: { 'freezer.state': 'THAWED\n' },
};

/**
 * A fake cgroup v1 tree as this host has it: <root>/<controller> for each
 * controller, and <root>/unified as the hybrid cgroup2 mount. Every level of
 * `<parent>/<id>` exists with the files a new kernel cgroup has (the fake
 * cannot make them appear on mkdir); a new cpuset is empty, as in v1.
 */
export function fakeV1Tree(root: string, id: string, options: { parent?: string; controllers?: string[]; unified?: boolean; files?: Record<string, Record<string, string>> } = {}): void {
  const parent = options.parent ?? defaultCgroupParent();
  const controllers = options.controllers ?? Object.keys(V1_FILES);
  for (const controller of controllers) {
    const files = { ...V1_FILES[controller], ...options.files?.[controller], 'cgroup.procs': '' };
    setFixture(path.join(root, controller), { ...files, ...(controller === 'cpuset' ? { 'cpuset.cpus': '0-3\n', 'cpuset.mems': '0\n' } : {}) });
    setFixture(path.join(root, controller, parent), files);
    setFixture(path.join(root, controller, parent, id), files);
  }
  if (options.unified) {
    const files = { 'cgroup.procs': '', 'cgroup.kill': '', 'cgroup.freeze': '0\n', 'cgroup.events': 'populated 0\nfrozen 0\n', 'cgroup.controllers': '' };
    setFixture(path.join(root, 'unified'), files);
    setFixture(path.join(root, 'unified', parent), files);
    setFixture(path.join(root, 'unified', parent, id), files);
  }
}

const V2_FILES: Record<string, string> = {
  'cgroup.procs': '',
  'cgroup.controllers': 'cpuset cpu io memory pids\n',
  'cgroup.subtree_control': '\n',
  'cgroup.kill': '',
  'cgroup.freeze': '0\n',
  'cgroup.events': 'populated 0\nfrozen 0\n',
  'cpu.weight': '100\n',
  'cpu.max': 'max 100000\n',
  'cpu.stat': 'usage_usec 0\nuser_usec 0\nsystem_usec 0\nnr_periods 0\nnr_throttled 0\nthrottled_usec 0\n',
  'cpuset.cpus': '\n',
  'cpuset.mems': '\n',
  'memory.max': 'max\n',
  'memory.swap.max': 'max\n',
  'memory.low': '0\n',
  'memory.current': '0\n',
  'memory.peak': '0\n',
  'memory.stat': 'anon 0\nfile 0\ninactive_file 0\n',
  'memory.events': 'low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\noom_group_kill 0\n',
  'pids.max': 'max\n',
  'pids.current': '0\n',
  'io.weight': 'default 100\n',
  'io.stat': '',
};

/** A fake unified (cgroup v2) tree: the root, `<parent>`, and `<parent>/<id>` with a new cgroup's files. */
export function fakeV2Tree(root: string, id: string, options: { parent?: string; files?: Record<string, string>; omit?: string[] } = {}): void {
  const parent = options.parent ?? defaultCgroupParent();
  const files = { ...V2_FILES, ...options.files };
  for (const name of options.omit ?? []) delete files[name];
  setFixture(root, files);
  setFixture(path.join(root, parent), files);
  setFixture(path.join(root, parent, id), files);
}

function errnoError(code: string, errno: number, syscall: string, target: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`${code}: ${syscall} '${target}'`), { code, errno: -errno, syscall, path: target });
}

/** Every cgroup.procs file under root. */
function procsFiles(root: string): string[] {
  const found: string[] = [];
  const walk = (dir: string): void => {
    for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, entry.name);
      if (entry.isDirectory()) walk(p);
      else if (entry.name === 'cgroup.procs') found.push(p);
    }
  };
  walk(root);
  return found;
}

/**
 * Plays the kernel for a fake tree: rmdir is EBUSY while the cgroup has
 * processes or sub-cgroups, a SIGKILL takes the pid out of every
 * cgroup.procs (unless it is in `immortal`), and time is virtual.
 */
export function fakeOps(root: string, immortal: number[] = []): CgroupOps & { killed: number[]; removed: string[] } {
  let clock = 0;
  const ops = {
    killed: [] as number[],
    removed: [] as string[],
    rmdir(dir: string): void {
      if (!fs.existsSync(dir)) throw errnoError('ENOENT', 2, 'rmdir', dir);
      const busy = fs.readdirSync(dir, { withFileTypes: true }).some((e) => e.isDirectory()) || (fs.existsSync(path.join(dir, 'cgroup.procs')) && readFixture(dir, 'cgroup.procs').trim() !== '');
      if (busy) throw errnoError('EBUSY', 16, 'rmdir', dir);
      fs.rmSync(dir, { recursive: true });
      ops.removed.push(dir);
    },
    kill(pid: number, signal: number): void {
      ops.killed.push(pid);
      if (signal !== 9 || immortal.includes(pid)) return;
      for (const file of procsFiles(root)) {
        const left = fs.readFileSync(file, 'utf8').split('\n').filter((l) => l.trim() !== '' && Number(l) !== pid);
        fs.writeFileSync(file, left.map((l) => `${l}\n`).join(''));
      }
    },
    async sleep(ms: number): Promise<void> {
      clock += ms;
    },
    now: () => clock,
  };
  return ops;
}

/**
 * This test run's parent cgroup (see global-setup.ts) in every hierarchy,
 * and the container cgroups in it, for the leak checks.
 */
export function hostTsrunCgroups(root = '/sys/fs/cgroup'): string[] {
  const parent = defaultCgroupParent();
  const found: string[] = [];
  const walk = (dir: string, depth: number): void => {
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const entry of entries) {
      if (!entry.isDirectory()) continue;
      const p = path.join(dir, entry.name);
      if (entry.name === parent) {
        found.push(p);
        for (const child of fs.readdirSync(p, { withFileTypes: true })) if (child.isDirectory()) found.push(path.join(p, child.name));
      } else if (depth < 3) walk(p, depth + 1);
    }
  };
  walk(root, 0);
  return found.sort();
}

/**
 * For tests of the default parent ("tsrun") on fake trees: lifts this run's
 * $TSRUN_CGROUP_PARENT (global-setup.ts) for the file, and puts it back.
 */
export function useBuiltInCgroupParent(): void {
  const saved = process.env[CGROUP_PARENT_ENV];
  beforeAll(() => {
    delete process.env[CGROUP_PARENT_ENV];
  });
  afterAll(() => {
    if (saved !== undefined) process.env[CGROUP_PARENT_ENV] = saved;
  });
}
