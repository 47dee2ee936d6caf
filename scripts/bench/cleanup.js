'use strict';
// What a benchmark run may leave behind, found and removed: containers in
// the peers' --root dirs, processes whose root is in the temp dir, mounts
// under it, cgroups named after its containers; then the temp dir itself.
// Everything here is synchronous, so it also runs from process.on('exit').
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

function unescapeMountPath(p) {
  return p.replace(/\\([0-7]{3})/g, (_, oct) => String.fromCharCode(parseInt(oct, 8)));
}

function under(p, dir) {
  return p === dir || p.startsWith(`${dir}/`);
}

/** Mount points in this process's namespace at or below `dir`. */
function mountsUnder(dir) {
  const found = [];
  for (const line of fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const fields = line.split(' ');
    if (fields.length < 5) continue;
    const mountPoint = unescapeMountPath(fields[4]);
    if (under(mountPoint, dir)) found.push(mountPoint);
  }
  return found;
}

/**
 * Live processes (other than this one; zombies are left to their parent)
 * whose root or cwd is in `dir`, whose command line names a path in `dir`
 * (a runc or hyperfine this run started), or whose mount namespace has its
 * `/` made from a directory in `dir` (a container after pivot_root, where
 * /proc/PID/root reads as "/").
 */
function processesUnder(dir) {
  const found = [];
  const nsVerdict = new Map();
  let ownNs = null;
  try {
    ownNs = fs.readlinkSync('/proc/self/ns/mnt');
  } catch {
    // no /proc/self/ns
  }
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
      if (stat.slice(stat.lastIndexOf(')') + 2)[0] === 'Z') continue;
      const root = fs.readlinkSync(`/proc/${entry}/root`);
      const cwd = fs.readlinkSync(`/proc/${entry}/cwd`);
      const cmdline = fs.readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
      let hit = under(root, dir) || under(cwd, dir) || cmdline.some((arg) => arg.includes(`${dir}/`) || arg === dir);
      if (!hit) {
        const ns = fs.readlinkSync(`/proc/${entry}/ns/mnt`);
        if (ns !== ownNs) {
          if (!nsVerdict.has(ns)) {
            const rootLine = fs
              .readFileSync(`/proc/${entry}/mountinfo`, 'utf8')
              .split('\n')
              .map((l) => l.split(' '))
              .find((f) => f.length > 4 && f[4] === '/');
            nsVerdict.set(ns, rootLine ? under(unescapeMountPath(rootLine[3]), dir) : false);
          }
          hit = nsVerdict.get(ns);
        }
      }
      if (hit) {
        let comm = '?';
        try {
          comm = fs.readFileSync(`/proc/${entry}/comm`, 'utf8').trim();
        } catch {
          // exited
        }
        found.push({ pid: Number(entry), comm });
      }
    } catch {
      // exited meanwhile, or a kernel thread
    }
  }
  return found;
}

/** cgroup directories (two levels deep in each v1 hierarchy, and in cgroup2) whose name contains `prefix`. */
function cgroupsNamed(prefix) {
  const found = [];
  const walk = (dir, depth) => {
    let entries;
    try {
      entries = fs.readdirSync(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      if (!e.isDirectory()) continue;
      const p = path.join(dir, e.name);
      if (e.name.includes(prefix)) found.push(p);
      else if (depth > 0) walk(p, depth - 1);
    }
  };
  walk('/sys/fs/cgroup', 2);
  return found;
}

/**
 * peers: [{ argv0: ['runc'] or [...wrap, 'crun'], root }] — containers left
 * in these --root dirs are deleted with `delete -f`. ownMounts: mounts the
 * caller made under tmp on purpose, unmounted without being reported.
 * Returns what was found (and removed); `clean` is true when nothing was.
 */
function cleanupAll({ tmp, idPrefix, peers = [], ownMounts = [] }) {
  const report = { containers: [], processes: [], mounts: [], cgroups: [], removed: false, errors: [] };
  if (!tmp || !fs.existsSync(tmp)) {
    report.removed = true;
    report.clean = true;
    return report;
  }
  for (const { argv0, root } of peers) {
    if (!fs.existsSync(root)) continue;
    let ids = [];
    const list = spawnSync(argv0[0], [...argv0.slice(1), '--root', root, 'list', '-q'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 10000 });
    if (list.status === 0) ids = list.stdout.split('\n').map((s) => s.trim()).filter(Boolean);
    else ids = fs.readdirSync(root).filter((n) => n.startsWith(idPrefix));
    for (const id of ids) {
      report.containers.push(`${argv0[argv0.length - 1]}:${id}`);
      spawnSync(argv0[0], [...argv0.slice(1), '--root', root, 'delete', '-f', id], { stdio: 'ignore', timeout: 10000 });
    }
  }
  // A process orphaned by an interrupted hyperfine (runc, crun, a
  // container) is given a moment to finish on its own first.
  let procs = processesUnder(tmp);
  for (let i = 0; i < 20 && procs.length; i++) {
    spawnSync('sleep', ['0.1']);
    procs = processesUnder(tmp);
  }
  for (const p of procs) {
    report.processes.push(p);
    try {
      process.kill(p.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  if (procs.length) spawnSync('sleep', ['0.2']);
  for (const cg of cgroupsNamed(idPrefix)) {
    report.cgroups.push(cg);
    try {
      fs.rmdirSync(cg);
    } catch (err) {
      report.errors.push(`rmdir ${cg}: ${err.code || err.message}`);
    }
  }
  for (const m of ownMounts) {
    if (!mountsUnder(tmp).includes(m)) continue;
    const r = spawnSync('umount', [m], { encoding: 'utf8', stdio: ['ignore', 'ignore', 'pipe'] });
    if (r.status !== 0) report.errors.push(`umount ${m}: ${(r.stderr || '').trim()}`);
  }
  const mounts = mountsUnder(tmp);
  for (const m of mounts.sort((a, b) => b.length - a.length)) {
    report.mounts.push(m);
    const r = spawnSync('umount', ['-l', m], { encoding: 'utf8', stdio: ['ignore', 'ignore', 'pipe'] });
    if (r.status !== 0) report.errors.push(`umount -l ${m}: ${(r.stderr || '').trim()}`);
  }
  const remaining = mountsUnder(tmp);
  if (remaining.length) {
    report.errors.push(`not removing ${tmp}: still mounted below it: ${remaining.join(', ')}`);
  } else {
    try {
      fs.rmSync(tmp, { recursive: true, force: true, maxRetries: 3 });
      report.removed = !fs.existsSync(tmp);
    } catch (err) {
      report.errors.push(`rm -rf ${tmp}: ${err.message}`);
    }
  }
  report.mountsAfter = mountsUnder(tmp).length;
  report.clean = !report.containers.length && !report.processes.length && !report.mounts.length && !report.cgroups.length && !report.errors.length && report.removed;
  return report;
}

module.exports = { cleanupAll, mountsUnder, processesUnder, cgroupsNamed };
