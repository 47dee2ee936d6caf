#!/usr/bin/env node
'use strict';
// Start-time benchmark: tsrun (library and CLI) side by side with runc, crun,
// `unshare ... chroot` and `node -e 0`, all on one busybox root filesystem
// built for this run in a temp dir (removed at the end, also on failure or
// Ctrl-C). Run as root after `npm run build`:
//
//   npm run bench                  full run (a few minutes)
//   npm run bench -- --quick       fewer iterations, a smoke test
//   npm run bench -- --json [FILE] also write the results as JSON (to FILE,
//                                  or to stdout with the table on stderr)
//
// The library is timed in child node processes (scripts/bench/lib-worker.js):
// one with an empty heap, one with TSRUN_BENCH_HEAP_MIB of live JS objects,
// same flags. Command-line tools are timed with hyperfine -N (no shell),
// each runc/crun run with its own container id. The library's targets are
// ratios to crun and to the unshare floor, so the two workers, runc, crun
// and the floor are timed in rounds, a block of each per round; for the CLI
// target, tsrun's CLI and `node -e 0` are timed in alternation
// (scripts/bench/cmd-loop.js), one pair per round.
//
// Environment: TSRUN_BENCH_RUNS (library runs, default 200),
// TSRUN_BENCH_CLI_RUNS (per command-line tool, default 100),
// TSRUN_BENCH_PAIRS (alternating pairs of tsrun's CLI and node -e 0,
// default 300: a pair's difference spreads over tens of milliseconds on a
// host where each node start parses NODE_EXTRA_CA_CERTS, and the median of
// 100 moved by ~4 ms from one benchmark run to the next),
// TSRUN_BENCH_LEAK_RUNS (default 1000), TSRUN_BENCH_HEAP_MIB (default 2048),
// TSRUN_BENCH_NO_HYPERFINE=1 (time commands with a Node loop instead),
// TSRUN_BENCH_CRUN_WORKAROUND=0 (do not try crun in a mount namespace
// without the hybrid cgroup2 mount).
//
// Targets are reported, not asserted: the exit code is 0 when they fail.
// It is 1 when the leak check finds growth, when tsrun itself fails to run,
// or when something was left behind (mounts, processes, containers).
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const readline = require('node:readline');
const { summarize, fmtMs } = require('./stats');
const { spawnP, spawnTracked, stopChildren, which, firstLine, shellQuote } = require('./proc');
const { cleanupAll } = require('./cleanup');

const REPO = path.resolve(__dirname, '..', '..');
const DIST = path.join(REPO, 'dist');
const BIN = path.join(REPO, 'bin', 'tsrun');
const MAKE_ROOTFS = path.join(REPO, 'scripts', 'make-busybox-rootfs.sh');
const WORKER = path.join(__dirname, 'lib-worker.js');
const CMD_LOOP = path.join(__dirname, 'cmd-loop.js');
const CGROUP2_HYBRID_MOUNT = '/sys/fs/cgroup/unified';
// crun 1.8 refuses any hybrid host whose cgroup2 mount has a controller.
// In a private mount namespace without that mount, it sees a v1 host.
const HIDE_CGROUP2 = ['unshare', '--mount', '--propagation', 'private', 'sh', '-c', `umount ${CGROUP2_HYBRID_MOUNT} && exec "$@"`, 'sh'];

function usage() {
  return `usage: node scripts/bench/start.js [--quick] [--json [FILE]]
  --quick        fewer iterations (smoke run)
  --json [FILE]  write the results as JSON to FILE, or to stdout (the table then goes to stderr)
env: TSRUN_BENCH_RUNS, TSRUN_BENCH_CLI_RUNS, TSRUN_BENCH_PAIRS, TSRUN_BENCH_LEAK_RUNS, TSRUN_BENCH_HEAP_MIB,
     TSRUN_BENCH_NO_HYPERFINE=1, TSRUN_BENCH_CRUN_WORKAROUND=0
`;
}

function parseArgs(argv) {
  const opts = { quick: false, json: null };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--quick') opts.quick = true;
    else if (a === '--json') opts.json = argv[i + 1] !== undefined && !argv[i + 1].startsWith('-') ? argv[++i] : '-';
    else if (a.startsWith('--json=')) opts.json = a.slice('--json='.length) || '-';
    else if (a === '-h' || a === '--help') {
      process.stdout.write(usage());
      process.exit(0);
    } else {
      process.stderr.write(`start.js: unknown argument ${JSON.stringify(a)}\n${usage()}`);
      process.exit(2);
    }
  }
  return opts;
}

function envInt(name, fallback) {
  const value = process.env[name];
  if (value === undefined || value === '') return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) {
    process.stderr.write(`start.js: ${name}=${JSON.stringify(value)} is not a positive integer\n`);
    process.exit(2);
  }
  return n;
}

const opts = parseArgs(process.argv.slice(2));
const settings = {
  quick: opts.quick,
  libRuns: envInt('TSRUN_BENCH_RUNS', opts.quick ? 20 : 200),
  libWarmup: opts.quick ? 3 : 10,
  libBlock: opts.quick ? 5 : 20,
  heapMiB: envInt('TSRUN_BENCH_HEAP_MIB', 2048),
  cliRuns: envInt('TSRUN_BENCH_CLI_RUNS', opts.quick ? 10 : 100),
  cliWarmup: opts.quick ? 2 : 5,
  pairRuns: envInt('TSRUN_BENCH_PAIRS', opts.quick ? 10 : 300),
  leakRuns: envInt('TSRUN_BENCH_LEAK_RUNS', opts.quick ? 100 : 1000),
  leakWarmup: 10,
  hyperfine: process.env.TSRUN_BENCH_NO_HYPERFINE === '1' ? null : which('hyperfine'),
  crunWorkaround: process.env.TSRUN_BENCH_CRUN_WORKAROUND !== '0',
};

const tableOut = opts.json === '-' ? process.stderr : process.stdout;
const print = (s = '') => tableOut.write(`${s}\n`);
const progress = (s) => stopping || process.stderr.write(`# ${s}\n`);

const idPrefix = `tsrun-bench-${process.pid}-`;
// tsrun's containers go under a parent cgroup of this run's (inherited by the workers and the CLI),
// which the cleanup removes: the default parent would outlive the run.
process.env.TSRUN_CGROUP_PARENT = `${idPrefix}tsrun`;
const state = { tmp: null, peers: [], cleanup: null };
let hyperfineFiles = 0;
/** Set by a signal: children are being stopped, nothing new starts. */
let stopping = false;

function runCleanup() {
  if (state.cleanup) return state.cleanup;
  // The parent outlives its containers by design (as Docker's does); this run's goes once empty,
  // and one that is not empty (a container's cgroup left in it) is reported below.
  try {
    require(path.join(DIST, 'linux', 'cgroups')).removeCgroupParent();
  } catch {
    // Not built, or not root: nothing of tsrun ran.
  }
  // Once the peers' containers are gone: cleanupAll deletes them from their roots on it first.
  state.cleanup = cleanupAll({ tmp: state.tmp, idPrefix, peers: state.peers, ownMounts: state.runDir ? [state.runDir] : [] });
  return state.cleanup;
}

// ---------------------------------------------------------------- host facts

function cgroupMode() {
  const TMPFS = 0x01021994;
  const CGROUP2 = 0x63677270;
  try {
    if (fs.statfsSync('/sys/fs/cgroup').type === CGROUP2) return 'v2 (unified)';
    let hybrid = false;
    try {
      hybrid = fs.statfsSync(CGROUP2_HYBRID_MOUNT).type === CGROUP2;
    } catch {
      hybrid = false;
    }
    if (fs.statfsSync('/sys/fs/cgroup').type === TMPFS) {
      if (!hybrid) return 'v1 (legacy)';
      let controllers = '';
      try {
        controllers = fs.readFileSync(path.join(CGROUP2_HYBRID_MOUNT, 'cgroup.controllers'), 'utf8').trim();
      } catch {
        controllers = '?';
      }
      return `v1 hybrid (cgroup2 at ${CGROUP2_HYBRID_MOUNT} with: ${controllers || 'no controllers'})`;
    }
  } catch {
    // no /sys/fs/cgroup
  }
  return 'unknown';
}

function isHybrid() {
  try {
    return fs.statfsSync('/sys/fs/cgroup').type === 0x01021994 && fs.statfsSync(CGROUP2_HYBRID_MOUNT).type === 0x63677270;
  } catch {
    return false;
  }
}

async function version(cmd, args = ['--version']) {
  if (!which(cmd)) return null;
  const r = await spawnP(cmd, args);
  return firstLine(r.stdout || r.stderr, '?');
}

// ------------------------------------------------------------- measurements

/** Runs lib-worker.js in 'leak' mode in its own node process and returns its JSON result. */
async function libWorker(config, nodeFlags) {
  const r = await spawnP(process.execPath, [...nodeFlags, WORKER, JSON.stringify({ dist: DIST, ...config })], { stdio: ['pipe', 'pipe', 'inherit'] });
  const line = r.stdout.trim().split('\n').pop();
  let result;
  try {
    result = JSON.parse(line);
  } catch {
    throw new Error(`lib-worker exited with ${r.code ?? r.signal} and no result${r.stdout ? `: ${r.stdout.slice(-500)}` : ''}`);
  }
  if (!result.ok) throw new Error(`lib-worker: ${result.error}`);
  return result;
}

/**
 * Starts lib-worker.js in 'start' mode: { ready() -> its first message,
 * request(message) -> its reply, kill() }. Replies with ok: false reject.
 */
function startWorkerServer(config, nodeFlags) {
  const child = spawnTracked(process.execPath, [...nodeFlags, WORKER, JSON.stringify({ dist: DIST, ...config })], { stdio: ['pipe', 'pipe', 'inherit'] });
  if (!child) throw new Error('stopping');
  const queued = [];
  const waiting = [];
  let closed = null;
  const deliver = (message) => {
    const waiter = waiting.shift();
    if (waiter) waiter(message);
    else queued.push(message);
  };
  readline.createInterface({ input: child.stdout, crlfDelay: Infinity }).on('line', (line) => {
    try {
      deliver(JSON.parse(line));
    } catch {
      deliver({ ok: false, error: `unexpected output: ${line.slice(0, 200)}` });
    }
  });
  child.stdin.on('error', () => {});
  child.on('error', (err) => {
    closed = closed || `lib-worker could not start: ${err.message}`;
    for (const waiter of waiting.splice(0)) waiter({ ok: false, error: closed });
  });
  child.on('close', (code, signal) => {
    closed = closed || `lib-worker exited (${code ?? signal}) without answering`;
    for (const waiter of waiting.splice(0)) waiter({ ok: false, error: closed });
  });
  const next = () =>
    new Promise((resolve) => {
      if (queued.length) resolve(queued.shift());
      else if (closed) resolve({ ok: false, error: closed });
      else waiting.push(resolve);
    }).then((message) => {
      if (!message.ok) throw new Error(message.error);
      return message;
    });
  return {
    ready: next,
    request(message) {
      if (!closed) child.stdin.write(`${JSON.stringify(message)}\n`);
      return next();
    },
    kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    },
  };
}

/**
 * Times `argv` run `runs` times in sequence (after `warmup` runs), from
 * spawn to exit. With ids, "{id}" in argv becomes a fresh container id per
 * run. `wrap` is prefixed to the timing tool (hyperfine or cmd-loop.js), so
 * that e.g. all runs share one prepared mount namespace.
 * Returns { times (ms), method }.
 */
async function timeCommand(argv, { runs, warmup, wrap = [], ids = false, tag }) {
  const idBase = `${idPrefix}${tag}-`;
  if (settings.hyperfine) {
    const command = argv.map(shellQuote).join(' ');
    const hyperfine = async (args) => {
      const file = path.join(state.tmp, `hyperfine-${++hyperfineFiles}.json`);
      const full = [...wrap, settings.hyperfine, '-N', '--style', 'none', '--export-json', file, ...args, command];
      const r = await spawnP(full[0], full.slice(1));
      if (r.code !== 0) throw new Error(`hyperfine: ${firstLine(r.stderr, `exit ${r.code ?? r.signal}`)}`);
      const json = JSON.parse(fs.readFileSync(file, 'utf8'));
      fs.rmSync(file, { force: true });
      return json.results.flatMap((res) => res.times.map((t) => t * 1000));
    };
    if (!ids) return { times: await hyperfine(['--warmup', String(warmup), '--runs', String(runs)]), method: 'hyperfine -N' };
    // One hyperfine "benchmark" of one run per id, so every container has its own id.
    const list = (prefix, n) => Array.from({ length: n }, (_, i) => `${idBase}${prefix}${i}`).join(',');
    if (warmup > 0) await hyperfine(['--runs', '1', '-L', 'id', list('w', warmup)]);
    return { times: await hyperfine(['--runs', '1', '-L', 'id', list('', runs)]), method: 'hyperfine -N, one id per run' };
  }
  return { times: (await commandLoop([argv], { runs, warmup, wrap, idPrefix: idBase }))[0], method: 'node spawnSync loop' };
}

/** Times `commands` with scripts/bench/cmd-loop.js, in alternation when there are several: one list of times each. */
async function commandLoop(commands, { runs, warmup, wrap = [], idPrefix: loopIdPrefix = `${idPrefix}loop-` }) {
  const full = [...wrap, process.execPath, CMD_LOOP, JSON.stringify({ commands, runs, warmup, idPrefix: loopIdPrefix })];
  const r = await spawnP(full[0], full.slice(1));
  if (r.code !== 0) throw new Error(`cmd-loop: ${firstLine(r.stderr, `exit ${r.code ?? r.signal}`)}`);
  return JSON.parse(r.stdout).times;
}

/** One run with stderr captured: { ok, reason }. */
async function preflight(argv, wrap = []) {
  const full = [...wrap, ...argv];
  const r = await spawnP(full[0], full.slice(1));
  if (r.code === 0) return { ok: true };
  return { ok: false, reason: firstLine(r.stderr, r.code === null ? `could not start (${r.signal || 'error'})` : `exit code ${r.code}`) };
}

// ------------------------------------------------------------------ the run

function resultRow(key, label, times, method, extra = {}) {
  return { key, label, unit: 'ms', ...summarize(times), method, ...extra };
}

function naRow(key, label, reason, extra = {}) {
  return { key, label, na: true, reason, ...extra };
}

/** Generates config.json with `runc spec` (or `crun spec`) and points it at the rootfs. */
async function makeBundle(rootfs) {
  const generator = which('runc') ? 'runc' : which('crun') ? 'crun' : null;
  if (!generator) return { error: 'neither runc nor crun is installed' };
  const dir = path.join(state.tmp, 'bundle');
  fs.mkdirSync(dir);
  const r = await spawnP(generator, ['spec'], { cwd: dir });
  if (r.code !== 0) return { error: `${generator} spec: ${firstLine(r.stderr, `exit ${r.code}`)}` };
  const file = path.join(dir, 'config.json');
  const config = JSON.parse(fs.readFileSync(file, 'utf8'));
  config.process.args = ['/bin/true'];
  config.process.terminal = false;
  config.root = { path: rootfs, readonly: false };
  fs.writeFileSync(file, `${JSON.stringify(config, null, 2)}\n`);
  return { dir, generator };
}

async function main() {
  const results = [];
  const errors = [];
  const notes = [];
  const out = { tool: 'tsrun start-time benchmark', date: new Date().toISOString(), settings: { ...settings }, results, notes };

  if (process.getuid() !== 0) throw new Error('must run as root (namespaces, chroot, runc)');
  for (const f of [path.join(DIST, 'index.js'), BIN, MAKE_ROOTFS]) {
    if (!fs.existsSync(f)) throw new Error(`${path.relative(REPO, f)} is missing; run \`npm run build\` first`);
  }

  const nodeOnPath = which('node');
  out.host = {
    kernel: os.release(),
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model,
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    cgroups: cgroupMode(),
    loadavg: os.loadavg().map((l) => l.toFixed(2)).join(' '),
  };
  out.versions = {
    node: `${process.version} (${process.execPath})`,
    nodeOnPath: nodeOnPath ? `${await version('node')} (${nodeOnPath})` : null,
    hyperfine: settings.hyperfine ? await version('hyperfine') : null,
    runc: await version('runc'),
    crun: await version('crun'),
    unshare: await version('unshare'),
  };

  state.tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tsrun-bench-'));
  const rootfs = path.join(state.tmp, 'rootfs');
  progress(`building the busybox rootfs in ${rootfs}`);
  const built = await spawnP('bash', [MAKE_ROOTFS, rootfs]);
  if (built.code !== 0) throw new Error(`make-busybox-rootfs.sh failed: ${built.stderr.trim()}`);
  out.rootfs = rootfs;

  // Every runtime's state (tsrun's --state, runc's and crun's --root) on
  // one tmpfs, as /run is on a standard host: this VM's /run is on its
  // disk, where a state file's write, rename and unlink cost each start
  // ~1 ms more, for whichever runtime keeps its state there.
  state.runDir = path.join(state.tmp, 'run');
  fs.mkdirSync(state.runDir);
  const mounted = await spawnP('mount', ['-t', 'tmpfs', '-o', 'mode=0700,size=64m', 'tsrun-bench-run', state.runDir]);
  if (mounted.code !== 0) throw new Error(`mounting a tmpfs for the runtimes' state on ${state.runDir}: ${mounted.stderr.trim()}`);
  out.stateDirs = `tmpfs at ${state.runDir}`;
  const stateDir = (name) => {
    const dir = path.join(state.runDir, name);
    fs.mkdirSync(dir, { recursive: true });
    return dir;
  };

  // --- the peers on the command line: runc, crun and the unshare floor,
  // each checked by one run before any timing.
  const peers = [];
  const addPeer = async (peer) => {
    const pf = await preflight(peer.argv.map((a) => a.split('{id}').join(`${idPrefix}${peer.key}-preflight`)), peer.wrap);
    if (pf.ok) peers.push({ ...peer, times: [] });
    return pf;
  };
  const bundle = await makeBundle(rootfs);
  if (bundle.error) {
    results.push(naRow('runc', 'runc run', bundle.error));
    results.push(naRow('crun', 'crun run', bundle.error));
  } else {
    out.bundle = { generatedWith: `${bundle.generator} spec`, changes: 'process.args ["/bin/true"], process.terminal false, root { path: <rootfs>, readonly: false }' };
    if (which('runc')) {
      const root = stateDir('runc-root');
      state.peers.push({ argv0: ['runc'], root });
      const pf = await addPeer({ key: 'runc', label: 'runc run', argv: ['runc', '--root', root, 'run', '--bundle', bundle.dir, `${idPrefix}runc-{id}`], wrap: [], ids: true });
      if (!pf.ok) results.push(naRow('runc', 'runc run', pf.reason));
    } else {
      results.push(naRow('runc', 'runc run', 'runc is not installed'));
    }
    if (which('crun')) {
      const root = stateDir('crun-root');
      const argv = (flags) => ['crun', ...flags, '--root', root, 'run', '--bundle', bundle.dir, `${idPrefix}crun-{id}`];
      const attempts = [
        { key: 'crun', label: 'crun run', argv: argv([]), wrap: [] },
        { key: 'crun_nocg', label: 'crun --cgroup-manager=disabled run', argv: argv(['--cgroup-manager=disabled']), wrap: [], note: 'crun made to run with --cgroup-manager=disabled' },
      ];
      if (settings.crunWorkaround && isHybrid()) {
        attempts.push({
          key: 'crun_mntns',
          label: 'crun run, in a mount ns w/o cgroup2',
          argv: argv([]),
          wrap: HIDE_CGROUP2,
          note: `no crun flag gets past its hybrid-cgroup check; measured instead inside one private mount namespace (unshare -m) where ${CGROUP2_HYBRID_MOUNT} is unmounted, so crun sees a plain cgroup v1 host; the namespace is made once per block of runs, outside the timed runs`,
        });
      }
      out.crunAttempts = [];
      for (const attempt of attempts) {
        state.peers.push({ argv0: [...attempt.wrap, 'crun'], root });
        const pf = await addPeer({ ...attempt, ids: true });
        out.crunAttempts.push({ label: attempt.label, ok: pf.ok, reason: pf.reason });
        if (pf.ok) {
          if (attempt.note) notes.push(`${attempt.label}: ${attempt.note}.`);
          break;
        }
        progress(`${attempt.label}: n/a (${pf.reason})`);
        if (attempt.key === 'crun') results.push(naRow('crun', 'crun run', pf.reason));
      }
    } else {
      results.push(naRow('crun', 'crun run', 'crun is not installed'));
    }
  }
  {
    const pf = await addPeer({ key: 'unshare', label: 'unshare+chroot floor', argv: ['unshare', '--fork', '--pid', '--mount', '--uts', '--ipc', '--net', 'chroot', rootfs, '/bin/true'], wrap: [], ids: false });
    if (!pf.ok) results.push(naRow('unshare', 'unshare+chroot floor', pf.reason));
  }

  // --- tsrun library (empty heap and big heap: two worker processes with
  // the same flags) and the peers above, in rounds: each round times a
  // block of each, in an order reversed every round (ABC CBA ...), so that
  // a slow phase of the host falls on all of them. The library's targets
  // are ratios to crun and to the floor, whose medians moved by up to 2x
  // between blocks of runs minutes apart.
  const nodeFlags = [`--max-old-space-size=${Math.max(4096, settings.heapMiB + 1024)}`, '--expose-gc'];
  const heapLabel = settings.heapMiB % 1024 === 0 ? `${settings.heapMiB / 1024} GiB` : `${settings.heapMiB} MiB`;
  const method = `in-process, node ${nodeFlags.join(' ')}`;
  const workers = [
    { tag: 'lib', what: 'library', heapMiB: 0, start: [], exit: [] },
    { tag: 'heap', what: `library, ${heapLabel} heap`, heapMiB: settings.heapMiB, start: [], exit: [] },
  ];
  const rounds = Math.ceil(settings.libRuns / settings.libBlock);
  const peerBlock = Math.ceil(settings.cliRuns / rounds);
  progress(
    `tsrun library: ${settings.libRuns} sequential runs (+${settings.libWarmup} warm-up) in each of two node processes (empty heap, ${heapLabel} heap), in ${rounds} rounds with ${peerBlock} runs (+1 warm-up) of each of ${peers.map((p) => p.label).join(', ') || 'no peer'}`,
  );
  for (const w of workers) {
    try {
      w.server = startWorkerServer({ mode: 'start', rootfs, stateDir: stateDir(`state-${w.tag}`), warmup: settings.libWarmup, heapMiB: w.heapMiB }, nodeFlags);
      w.ready = await w.server.ready();
    } catch (err) {
      w.error = err.message;
      w.server?.kill();
    }
  }
  let order = [...workers.filter((w) => !w.error), ...peers];
  for (let round = 0, done = 0; done < settings.libRuns && order.length; round++) {
    const n = Math.min(settings.libBlock, settings.libRuns - done);
    for (const entry of order) {
      if (entry.server) {
        try {
          const r = await entry.server.request({ cmd: 'run', n });
          entry.start.push(...r.start);
          entry.exit.push(...r.exit);
        } catch (err) {
          entry.error = err.message;
          entry.server.kill();
        }
      } else {
        try {
          const { times, method: how } = await timeCommand(entry.argv, { runs: peerBlock, warmup: 1, wrap: entry.wrap, ids: entry.ids, tag: `${entry.key}-r${round}` });
          entry.times.push(...times);
          entry.method = how;
        } catch (err) {
          entry.error = err.message;
        }
      }
    }
    order = order.filter((entry) => !entry.error).reverse();
    done += n;
  }
  for (const w of workers) {
    const startLabel = `tsrun ${w.what}: run() -> exec'd`;
    const exitLabel = `tsrun ${w.what}: run() -> exit`;
    if (!w.error) {
      try {
        w.end = await w.server.request({ cmd: 'finish' });
      } catch (err) {
        w.error = err.message;
      }
    }
    if (w.error) {
      errors.push(`tsrun ${w.what}: ${w.error}`);
      results.push(naRow(`${w.tag}_start`, startLabel, w.error));
      results.push(naRow(`${w.tag}_exit`, exitLabel, w.error));
      continue;
    }
    const heap = { requestedMiB: w.heapMiB, before: w.ready.heapBefore, after: w.end.heapAfter, allocMs: w.ready.allocMs === null ? null : Math.round(w.ready.allocMs) };
    results.push(resultRow(`${w.tag}_start`, startLabel, w.start, method, { heap }));
    results.push(resultRow(`${w.tag}_exit`, exitLabel, w.exit, method, { heap }));
    if (w.heapMiB) progress(`  heapUsed ${heap.before.heapUsedMiB} MiB before the runs, ${heap.after.heapUsedMiB} MiB after (rss ${heap.after.rssMiB} MiB)`);
  }
  for (const p of peers) {
    const command = [...p.wrap, ...p.argv].join(' ');
    if (p.error) results.push(naRow(p.key, p.label, p.error, { note: p.note }));
    else results.push(resultRow(p.key, p.label, p.times, `${p.method}, in rounds with the library`, { command, note: p.note }));
  }

  // --- tsrun's CLI and node -e 0.
  const cli = { runs: settings.cliRuns, warmup: settings.cliWarmup };
  const measure = async (key, label, argv, { tsrun = false } = {}) => {
    progress(`${label}: ${cli.runs} runs (+${cli.warmup} warm-up)`);
    const pf = await preflight(argv);
    if (!pf.ok) {
      if (tsrun) errors.push(`${label}: ${pf.reason}`);
      results.push(naRow(key, label, pf.reason));
      return;
    }
    try {
      const { times, method: how } = await timeCommand(argv, { ...cli, tag: key });
      results.push(resultRow(key, label, times, how, { command: argv.join(' ') }));
    } catch (err) {
      if (tsrun) errors.push(`${label}: ${err.message}`);
      results.push(naRow(key, label, err.message));
    }
  };

  const cliArgv = [BIN, '--state', stateDir('state-cli'), 'run', '--rm', '--rootfs', rootfs, '/bin/true'];
  await measure('cli', 'tsrun CLI: run --rm /bin/true', cliArgv, { tsrun: true });
  await measure('node', 'node -e 0', ['node', '-e', '0']);
  // The target is a difference of two start times, each ~100 ms on a host
  // whose speed drifts between one block of runs and the next: measured
  // here in alternation, one pair per round, as the median of the pairs'
  // differences.
  if (['cli', 'node'].every((key) => results.some((r) => r.key === key && !r.na))) {
    const pairs = { runs: settings.pairRuns, warmup: settings.cliWarmup };
    progress(`tsrun CLI and node -e 0 in alternation: ${pairs.runs} pairs (+${pairs.warmup} warm-up)`);
    try {
      const [cliTimes, nodeTimes] = await commandLoop([cliArgv, ['node', '-e', '0']], pairs);
      results.push(resultRow('cli_over_node', 'tsrun CLI - node -e 0, in alternation', cliTimes.map((t, i) => t - nodeTimes[i]), 'node spawnSync loop, pairs'));
    } catch (err) {
      errors.push(`tsrun CLI and node -e 0 in alternation: ${err.message}`);
      results.push(naRow('cli_over_node', 'tsrun CLI - node -e 0, in alternation', err.message));
    }
  }

  // --- leak check.
  progress(`leak check: ${settings.leakRuns} sequential library runs in one node process`);
  let leak;
  try {
    const r = await libWorker({ mode: 'leak', rootfs, stateDir: stateDir('state-leak'), runs: settings.leakRuns, warmup: settings.leakWarmup, heapMiB: 0 }, ['--expose-gc']);
    const keys = ['fds', 'mounts', 'threads', 'children', 'zombies', 'stateEntries'];
    const grew = keys.filter((k) => r.after[k] > r.before[k]);
    leak = { runs: settings.leakRuns, before: r.before, after: r.after, checked: keys, grew, newFds: r.newFds, pass: grew.length === 0, exit: summarize(r.exit) };
  } catch (err) {
    leak = { runs: settings.leakRuns, error: err.message, pass: false };
  }
  out.leak = leak;

  // --- targets.
  const get = (key) => results.find((r) => r.key === key && !r.na);
  const lib = get('lib_exit');
  const crunRow = get('crun') || get('crun_nocg') || get('crun_mntns');
  const runcRow = get('runc');
  const ref = crunRow || runcRow;
  const targets = [];
  const ratio = (name, a, b, limit, extra = {}) => {
    const value = a && b ? a.median / b.median : null;
    targets.push({ name, value, unit: 'x', limit, status: value === null ? 'n/a' : value <= limit ? 'PASS' : 'FAIL', ...extra });
  };
  ratio('library / crun CLI', lib, ref, 0.5, {
    against: ref ? ref.label : null,
    note: crunRow ? (crunRow.key === 'crun' ? undefined : 'crun as is: n/a, see above') : runcRow ? 'crun n/a: compared with runc instead' : 'neither crun nor runc could run',
  });
  ratio('library / unshare floor', lib, get('unshare'), 2);
  const paired = get('cli_over_node');
  const diff = paired ? paired.median : null;
  targets.push({ name: 'CLI - node -e 0', value: diff, unit: 'ms', limit: 30, status: diff === null ? 'n/a' : diff <= 30 ? 'PASS' : 'FAIL', note: 'median of alternating pairs' });
  ratio(`heap ${heapLabel} / library`, get('heap_exit'), lib, 2);
  out.targets = targets;
  out.info = {
    libraryOverRunc: lib && runcRow ? lib.median / runcRow.median : null,
    cliOverNodeBlocks: get('cli') && get('node') ? get('cli').median - get('node').median : null,
    heapStartOverStart: get('heap_start') && get('lib_start') ? get('heap_start').median / get('lib_start').median : null,
  };
  out.errors = errors;
  return out;
}

// ------------------------------------------------------------------ output

function pad(s, n, right = false) {
  s = String(s);
  return right ? s.padStart(n) : s.padEnd(n);
}

function printReport(out) {
  print();
  print(`tsrun start-time benchmark — ${out.date}${settings.quick ? ' (--quick)' : ''}`);
  if (out.host) {
    print(`host: kernel ${out.host.kernel}, ${out.host.cpus} CPUs (${out.host.cpuModel}), ${out.host.memoryGiB} GiB, cgroups ${out.host.cgroups}, load ${out.host.loadavg}`);
    const v = out.versions;
    print(`node ${v.node}; PATH node ${v.nodeOnPath}; ${v.hyperfine || 'no hyperfine'}; runc ${v.runc || 'n/a'}; crun ${v.crun || 'n/a'}; ${v.unshare || ''}`);
  }
  if (out.rootfs) print(`rootfs: busybox (Debian busybox-static), built by scripts/make-busybox-rootfs.sh in ${out.rootfs} (removed at the end)`);
  if (out.stateDirs) print(`runtime state (tsrun --state, runc and crun --root): ${out.stateDirs}, as /run on a standard host`);
  if (out.bundle) print(`OCI bundle: config.json from \`${out.bundle.generatedWith}\`, with ${out.bundle.changes}`);
  print();
  const W = 44;
  print(`${pad('name', W)} ${pad('runs', 5, true)} ${pad('median ms', 10, true)} ${pad('p90 ms', 9, true)} ${pad('min ms', 8, true)}  method`);
  print('-'.repeat(W + 5 + 10 + 9 + 8 + 12 + 20));
  for (const r of out.results || []) {
    if (r.na) print(`${pad(r.label, W)} ${pad('-', 5, true)} ${pad('n/a', 10, true)}  (reason: ${r.reason})`);
    else print(`${pad(r.label, W)} ${pad(r.runs, 5, true)} ${pad(fmtMs(r.median), 10, true)} ${pad(fmtMs(r.p90), 9, true)} ${pad(fmtMs(r.min), 8, true)}  ${r.method}`);
  }
  const heapRow = (out.results || []).find((r) => r.key === 'heap_exit' && !r.na);
  if (heapRow) {
    const h = heapRow.heap;
    print(`  heap worker: process.memoryUsage().heapUsed = ${h.before.heapUsedMiB} MiB before the runs, ${h.after.heapUsedMiB} MiB after (heapTotal ${h.after.heapTotalMiB} MiB, rss ${h.after.rssMiB} MiB, off-heap ${h.after.externalMiB} MiB; allocated in ${(h.allocMs / 1000).toFixed(1)} s)`);
  }
  const libRow = (out.results || []).find((r) => r.key === 'lib_exit' && !r.na);
  if (libRow) print(`  empty-heap worker: heapUsed = ${libRow.heap.before.heapUsedMiB} MiB`);
  for (const a of out.crunAttempts || []) if (!a.ok) print(`  ${a.label}: n/a (reason: ${a.reason})`);
  for (const n of out.notes || []) print(`  note: ${n}`);

  if (out.targets) {
    print();
    print('targets (medians)');
    for (const t of out.targets) {
      const value = t.value === null ? 'n/a' : t.unit === 'ms' ? `${fmtMs(t.value)} ms` : `${t.value.toFixed(2)}x`;
      const limit = t.unit === 'ms' ? `<= ${t.limit} ms` : `<= ${t.limit}x`;
      const against = t.against ? ` [vs ${t.against}]` : '';
      print(`  ${pad(t.name, 28)} ${pad(value, 10, true)}  ${pad(limit, 9)}  ${pad(t.status, 4)}${against}${t.note ? `  (${t.note})` : ''}`);
    }
    if (out.info && out.info.libraryOverRunc !== null) print(`  ${pad('(info) library / runc CLI', 28)} ${pad(`${out.info.libraryOverRunc.toFixed(2)}x`, 10, true)}`);
    if (out.info && out.info.cliOverNodeBlocks !== null) print(`  ${pad('(info) CLI - node -e 0', 28)} ${pad(`${fmtMs(out.info.cliOverNodeBlocks)} ms`, 10, true)}  (medians of the two hyperfine blocks above)`);
    if (out.info && out.info.heapStartOverStart !== null) print(`  ${pad(`(info) heap / library, start`, 28)} ${pad(`${out.info.heapStartOverStart.toFixed(2)}x`, 10, true)}  (run() -> exec'd only)`);
  }

  if (out.leak) {
    const l = out.leak;
    print();
    print(`leak check: ${l.runs} sequential library runs in one node process`);
    if (l.error) print(`  FAIL: ${l.error}`);
    else {
      const names = { fds: 'open fds (/proc/self/fd)', mounts: 'mounts (/proc/self/mountinfo)', threads: 'threads (/proc/self/task)', children: 'child processes', zombies: 'zombie children', stateEntries: 'state dir entries' };
      for (const k of l.checked) print(`  ${pad(names[k] || k, 32)} ${pad(l.before[k], 6, true)} -> ${pad(l.after[k], 6, true)}  ${l.after[k] > l.before[k] ? 'GREW' : 'ok'}`);
      print(`  ${pad('rss MiB (not checked)', 32)} ${pad(l.before.rssMiB, 6, true)} -> ${pad(l.after.rssMiB, 6, true)}`);
      print(`  ${pad('heapUsed MiB (not checked)', 32)} ${pad(l.before.heapUsedMiB, 6, true)} -> ${pad(l.after.heapUsedMiB, 6, true)}`);
      print(`  run -> exit over the leak runs: median ${fmtMs(l.exit.median)} ms, p90 ${fmtMs(l.exit.p90)} ms`);
      const newFds = Object.entries(l.newFds || {});
      if (newFds.length) print(`  new fds (${newFds.length}): ${newFds.slice(0, 10).map(([fd, target]) => `${fd} -> ${target}`).join(', ')}${newFds.length > 10 ? ', ...' : ''}`);
      print(`  ${l.pass ? 'PASS' : 'FAIL'}: ${l.pass ? 'nothing grew' : `grew: ${l.grew.join(', ')}`}`);
    }
  }
  if (out.errors && out.errors.length) {
    print();
    for (const e of out.errors) print(`ERROR: ${e}`);
  }
}

function printCleanup(c) {
  print();
  if (!c) return;
  const left = [];
  if (c.containers.length) left.push(`containers ${c.containers.join(', ')}`);
  if (c.processes.length) left.push(`processes ${c.processes.map((p) => `${p.pid} (${p.comm})`).join(', ')}`);
  if (c.mounts.length) left.push(`mounts ${c.mounts.join(', ')}`);
  if (c.cgroups.length) left.push(`cgroups ${c.cgroups.join(', ')}`);
  if (left.length) print(`cleanup: LEFT BEHIND (removed now): ${left.join('; ')}`);
  for (const e of c.errors) print(`cleanup: ERROR: ${e}`);
  print(`cleanup: ${c.clean ? 'nothing left behind; ' : ''}temp dir ${c.removed ? 'removed' : 'NOT removed'}; mounts under it in /proc/self/mountinfo: ${c.mountsAfter ?? 0}`);
}

function writeJson(out) {
  if (!opts.json) return;
  const text = `${JSON.stringify(out, null, 2)}\n`;
  if (opts.json === '-') process.stdout.write(text);
  else {
    fs.writeFileSync(opts.json, text);
    progress(`results written to ${opts.json}`);
  }
}

// ---------------------------------------------------------- signals, exit

async function onSignal(signal) {
  if (stopping) return;
  stopping = true;
  process.stderr.write(`\n# ${signal}: stopping the benchmark's children and cleaning up\n`);
  await stopChildren();
  printCleanup(runCleanup());
  process.exit(128 + (os.constants.signals[signal] || 1));
}
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(signal, () => void onSignal(signal));
// Last resort (an exception thrown outside main): still remove the temp dir.
process.on('exit', () => {
  if (state.tmp && !state.cleanup) runCleanup();
});

main().then(
  async (out) => {
    if (stopping) return;
    printReport(out);
    const cleanup = runCleanup();
    out.cleanup = cleanup;
    printCleanup(cleanup);
    const leakFailed = !out.leak || !out.leak.pass;
    const failed = leakFailed || out.errors.length > 0 || !cleanup.clean;
    out.exitCode = failed ? 1 : 0;
    writeJson(out);
    if (failed) {
      const why = [leakFailed && 'the leak check failed', out.errors.length && 'tsrun failed to run', !cleanup.clean && 'something was left behind'].filter(Boolean);
      print(`exit 1: ${why.join(', ')}`);
    }
    process.exitCode = out.exitCode;
  },
  async (err) => {
    if (stopping) return;
    process.stderr.write(`start.js: ${err && err.stack ? err.stack : err}\n`);
    await stopChildren();
    printCleanup(runCleanup());
    process.exitCode = 1;
  },
);
