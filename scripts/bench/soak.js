#!/usr/bin/env node
'use strict';
// Soak: many containers from one Node process (the library) and from the
// CLI, sequentially and concurrently, with a mix of exits: 0, non-zero,
// killed by a signal, killed by the OOM killer. Reports what the host and
// the process hold before and after (mounts, cgroups, fds, network
// namespaces held, threads, zombies, veths, staging, containers) and the
// Node process's RSS over the sequential runs. Run as root after
// `npm run build`:
//
//   node scripts/bench/soak.js                     1,000 + 100, library and CLI
//   node scripts/bench/soak.js --sequential 50 --concurrent 10 --cli-sequential 10 --cli-concurrent 5
//   node scripts/bench/soak.js --json FILE         also write the report as JSON
//   node scripts/bench/soak.js --v8-default-young-generation
//
// Exit code 1 when anything leaked, when a container ended otherwise than
// its kind says, or when the RSS of the last hundred sequential runs is more
// than 10% above the first hundred's (only checked with 200 runs or more).
//
// The RSS is judged with V8's young generation at a fixed size: 8 MiB per
// semi-space, the size V8 (Node 20, 64-bit) grows it to by itself. Left to
// V8, it starts at a quarter of that and doubles in steps once enough
// objects have survived its scavenges, at a point of the run that depends
// on everything the process did before (here around run 300-500); and after
// a full collection V8 may shrink it again. Those steps, up to 12 MiB,
// measure V8's sizing, not what tsrun keeps. The soak re-runs itself with
// the size fixed (--min/--max-semi-space-size); --v8-default-young-generation
// keeps V8's own sizing, and the report shows the young generation apart
// either way.
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const v8 = require('node:v8');
const { cleanupAll, mountsUnder, cgroupsNamed } = require('./cleanup');

const REPO = path.resolve(__dirname, '..', '..');
const BIN = path.join(REPO, 'bin', 'tsrun');
const MAKE_ROOTFS = path.join(REPO, 'scripts', 'make-busybox-rootfs.sh');

function parseArgs(argv) {
  const opts = { sequential: 1000, concurrent: 100, cliSequential: 1000, cliConcurrent: 100, json: null, v8Default: false };
  const numeric = { '--sequential': 'sequential', '--concurrent': 'concurrent', '--cli-sequential': 'cliSequential', '--cli-concurrent': 'cliConcurrent' };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (numeric[a]) {
      const n = Number(argv[++i]);
      if (!Number.isInteger(n) || n < 0) throw new Error(`${a} needs a count, not ${JSON.stringify(argv[i])}`);
      opts[numeric[a]] = n;
    } else if (a === '--v8-default-young-generation') {
      opts.v8Default = true;
    } else if (a === '--json') {
      opts.json = argv[++i];
      if (!opts.json) throw new Error('--json needs a file');
    } else {
      throw new Error(`unknown argument ${JSON.stringify(a)} (see the comment at the top of scripts/bench/soak.js)`);
    }
  }
  return opts;
}

/** The mix, in turn: what each container runs and how it must end. */
const KINDS = [
  { name: 'exit 0', args: ['true'], expect: { exitCode: 0 } },
  { name: 'exit 3', args: ['sh', '-c', 'exit 3'], expect: { exitCode: 3 } },
  // An init ignores SIGKILL sent from inside its PID namespace: this one runs in the host's.
  { name: 'SIGKILL', args: ['sh', '-c', 'kill -9 $$'], pid: 'host', expect: { exitCode: 137, oomKilled: false } },
  // The shell's variable grows past the 8 MiB limit.
  { name: 'OOM', args: ['sh', '-c', 'x=$(yes 0123456789abcdef | head -c 64000000); echo ${#x}'], memory: '8m', expect: { exitCode: 137, oomKilled: true } },
];

function kindOf(n) {
  return KINDS[n % KINDS.length];
}

function count(dir) {
  try {
    return fs.readdirSync(dir).length;
  } catch {
    return 0;
  }
}

function zombies() {
  const found = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (fields[0] === 'Z' && Number(fields[1]) === process.pid) found.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return found.length;
}

function veths() {
  return fs.readdirSync('/sys/class/net').filter((dev) => fs.existsSync(`/sys/class/net/${dev}/device`) === false && /^veth/.test(dev)).length;
}

/** Container cgroups under the soak's parent, in every hierarchy. */
function containerCgroups(parent) {
  return cgroupsNamed(parent).reduce((sum, dir) => sum + fs.readdirSync(dir, { withFileTypes: true }).filter((e) => e.isDirectory()).length, 0);
}

/**
 * Open fds, apart from those of network namespaces: the library keeps one
 * spare (setSpareNetworkNamespace), made during a run; more than one is a leak.
 */
function fdCounts() {
  const targets = fs.readdirSync('/proc/self/fd').map((fd) => {
    try {
      return fs.readlinkSync(`/proc/self/fd/${fd}`);
    } catch {
      return '';
    }
  });
  const netns = targets.filter((t) => t.startsWith('net:[')).length;
  return { fds: targets.length - netns, netns };
}

/** What can leak, in this process and on the host. */
function snapshot(tmp, parent) {
  return {
    mounts: mountsUnder(tmp).length,
    cgroups: containerCgroups(parent),
    ...fdCounts(),
    threads: count('/proc/self/task'),
    zombies: zombies(),
    veths: veths(),
    staging: count(path.join(tmp, 'store', 'tmp')),
    containers: count(path.join(tmp, 'store', 'containers')) - (fs.existsSync(path.join(tmp, 'store', 'containers', 'names')) ? 1 : 0),
  };
}

/**
 * The process's memory in MiB: RSS, and where it is. V8's spaces are
 * their resident pages (garbage included): the young generation ("new"),
 * which V8 grows in steps as objects survive its scavenges, whatever
 * survives; the old generation, which holds what lives longer until a
 * full collection; code. "other" is the rest of the RSS: the binary,
 * malloc (the addon, libuv's threads) and buffers.
 */
function memorySample() {
  const spaces = Object.fromEntries(v8.getHeapSpaceStatistics().map((s) => [s.space_name, s.physical_space_size / 2 ** 20]));
  const rss = process.memoryUsage().rss / 2 ** 20;
  const v8Total = v8.getHeapStatistics().total_physical_size / 2 ** 20;
  return { rss, heapUsed: process.memoryUsage().heapUsed / 2 ** 20, newSpace: spaces.new_space, oldSpace: spaces.old_space, code: spaces.code_space, other: rss - v8Total };
}

function runCli(args) {
  return new Promise((resolve, reject) => {
    const child = spawn(BIN, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ exitCode: code, stderr }));
  });
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  if (process.getuid() !== 0) throw new Error('the soak runs containers: run it as root');
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tsrun-soak-'));
  const parent = `tsrun-soak-${process.pid}`;
  process.env.TSRUN_CGROUP_PARENT = parent;
  const { run, Store, spareNetworkNamespaceSettled } = require(path.join(REPO, 'dist', 'index.js'));
  const root = path.join(tmp, 'store');
  const stateDir = path.join(tmp, 'state');
  const failures = [];
  const report = { settings: opts, phases: [], failures };
  try {
    const rootfs = path.join(tmp, 'busybox');
    await new Promise((resolve, reject) => {
      const make = spawn('bash', [MAKE_ROOTFS, rootfs], { stdio: ['ignore', 'ignore', 'inherit'] });
      make.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`make-busybox-rootfs.sh exited ${code}`))));
    });
    const tar = path.join(tmp, 'busybox.tar');
    await new Promise((resolve, reject) => {
      const t = spawn('tar', ['-C', rootfs, '-cf', tar, '.'], { stdio: 'inherit' });
      t.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`tar exited ${code}`))));
    });
    await Store.open(root).importRootfs(tar, 'soak:1');

    const check = (where, n, result) => {
      const want = kindOf(n).expect;
      if (result.exitCode !== want.exitCode || (want.oomKilled !== undefined && result.oomKilled !== undefined && result.oomKilled !== want.oomKilled)) {
        failures.push(`${where} #${n} (${kindOf(n).name}): ${JSON.stringify(result)}`);
      }
    };
    const libRun = async (n) => {
      const kind = kindOf(n);
      const container = await run({ image: 'soak:1', root, stateDir, args: kind.args, memory: kind.memory, pid: kind.pid, autoRemove: true, stdio: 'ignore' });
      check('library', n, await container.wait());
    };
    const cliArgs = (n) => {
      const kind = kindOf(n);
      return ['--root', root, '--state', stateDir, 'run', '--rm', ...(kind.memory ? ['-m', kind.memory] : []), ...(kind.pid ? ['--pid', kind.pid] : []), 'soak:1', ...kind.args];
    };

    // Taken once no spare network namespace is being made (its maker is a short-lived child with an fd).
    const settledSnapshot = async () => {
      await spareNetworkNamespaceSettled();
      return snapshot(tmp, parent);
    };
    const phase = async (name, body) => {
      const before = await settledSnapshot();
      const started = Date.now();
      const rss = await body();
      const after = await settledSnapshot();
      const grown = Object.keys(before).filter((k) => (k === 'netns' ? after[k] > 1 : after[k] > before[k]));
      const entry = { name, seconds: (Date.now() - started) / 1000, before, after, grown, ...(rss ? { rss } : {}) };
      report.phases.push(entry);
      process.stderr.write(`# ${name}: ${entry.seconds.toFixed(1)} s, ${grown.length === 0 ? 'nothing grew' : `GREW: ${grown.join(', ')}`}\n`);
    };

    // Node opens its SIGCHLD pipe with the first child process: before the first snapshot, not in a phase.
    await runCli(['--version']);
    await phase(`library, ${opts.sequential} sequential`, async () => {
      const perHundred = [];
      let samples = [];
      for (let n = 0; n < opts.sequential; n++) {
        await libRun(n);
        samples.push(memorySample());
        if (samples.length === 100 || n === opts.sequential - 1) {
          perHundred.push(Object.fromEntries(Object.keys(samples[0]).map((k) => [k, Number((samples.reduce((a, b) => a + b[k], 0) / samples.length).toFixed(1))])));
          samples = [];
        }
      }
      return { firstHundredMiB: perHundred[0].rss, lastHundredMiB: perHundred[perHundred.length - 1].rss, perHundred };
    });
    await phase(`library, ${opts.concurrent} concurrent`, async () => {
      await Promise.all(Array.from({ length: opts.concurrent }, (_, n) => libRun(n)));
    });
    await phase(`CLI, ${opts.cliSequential} sequential`, async () => {
      for (let n = 0; n < opts.cliSequential; n++) check('CLI', n, await runCli(cliArgs(n)));
    });
    await phase(`CLI, ${opts.cliConcurrent} concurrent`, async () => {
      const results = await Promise.all(Array.from({ length: opts.cliConcurrent }, (_, n) => runCli(cliArgs(n))));
      results.forEach((r, n) => check('CLI concurrent', n, r));
    });
  } finally {
    // Also removes the (empty) parent cgroups; a leftover container is reported by the phase that made it.
    report.cleanup = cleanupAll({ tmp, idPrefix: parent, peers: [] });
  }

  const sequential = report.phases[0];
  const rssGrowth = sequential?.rss && opts.sequential >= 200 ? sequential.rss.lastHundredMiB / sequential.rss.firstHundredMiB - 1 : null;
  report.rssGrowth = rssGrowth;
  const leaked = report.phases.filter((p) => p.grown.length > 0);
  const print = (s) => process.stdout.write(`${s}\n`);
  print('phase                                      seconds   mounts cgroups fds netns threads zombies veths staging containers');
  for (const p of report.phases) {
    const cell = (k) => `${p.before[k]}->${p.after[k]}`;
    print(`${p.name.padEnd(42)} ${p.seconds.toFixed(1).padStart(7)}   ${['mounts', 'cgroups', 'fds', 'netns', 'threads', 'zombies', 'veths', 'staging', 'containers'].map(cell).join(' ')}`);
  }
  if (sequential?.rss) {
    const row = (label, key) => print(`${label.padEnd(54)} ${sequential.rss.perHundred.map((h) => h[key]).join(' ')}`);
    print(`rss over the sequential library runs, MiB per hundred${rssGrowth === null ? ' (not judged under 200 runs)' : ` (last/first ${(100 * rssGrowth).toFixed(1)}%)`}:`);
    row('  rss', 'rss');
    row('  V8 heap used (garbage included)', 'heapUsed');
    row('  V8 young generation (resident)', 'newSpace');
    row('  V8 old generation (resident)', 'oldSpace');
    row('  V8 code (resident)', 'code');
    row('  other (binary, malloc, buffers)', 'other');
  }
  for (const f of failures) print(`unexpected end: ${f}`);
  print(`V8 young generation: ${opts.v8Default ? 'sized by V8 (--v8-default-young-generation)' : `fixed, ${FIXED_YOUNG_GENERATION.join(' ')}`}`);
  const ok = leaked.length === 0 && failures.length === 0 && (rssGrowth === null || rssGrowth <= 0.1);
  print(ok ? 'PASS: no leak, every container ended as expected' : 'FAIL');
  if (opts.json) fs.writeFileSync(opts.json, `${JSON.stringify(report, null, 2)}\n`);
  process.exitCode = ok ? 0 : 1;
}

const FIXED_YOUNG_GENERATION = ['--min-semi-space-size=8', '--max-semi-space-size=8'];

/** Runs this script again in a node with the young generation fixed (see the top); null when this is that node, or V8's sizing is asked for. */
function reexecWithFixedYoungGeneration() {
  const args = process.argv.slice(2);
  if (args.includes('--v8-default-young-generation') || FIXED_YOUNG_GENERATION.every((f) => process.execArgv.includes(f))) return null;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...process.execArgv, ...FIXED_YOUNG_GENERATION, __filename, ...args], { stdio: 'inherit' });
    // The child has the terminal's Ctrl-C too; it cleans up and exits.
    for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => child.kill(signal));
    child.on('error', reject);
    child.on('close', (code, signal) => resolve(code ?? 128 + (os.constants.signals[signal] ?? 0)));
  });
}

const reexec = reexecWithFixedYoungGeneration();
(reexec ? reexec.then((code) => (process.exitCode = code)) : main()).catch((err) => {
  process.stderr.write(`soak.js: ${err.stack ?? err}\n`);
  process.exitCode = 1;
});
