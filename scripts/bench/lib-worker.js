'use strict';
// One Node process that runs tsrun containers through the library, for
// scripts/bench/start.js. Started as
//   node [--max-old-space-size=4096 --expose-gc] lib-worker.js '<config json>'
// config: { mode: 'start' | 'leak', dist, rootfs, stateDir, runs, warmup, heapMiB }
//
// mode 'leak': runs `warmup` + `runs` containers, prints one JSON line (the
// result) on stdout and exits.
// mode 'start': grows its heap to `heapMiB`, runs `warmup` containers and
// prints {"ready":...}; then serves JSON lines on stdin:
//   {"cmd":"run","n":N}  -> {"start":[ms...],"exit":[ms...]}
//   {"cmd":"finish"}     -> {"heapAfter":...} and exits
// so that start.js can interleave blocks of runs of two workers (empty and
// big heap) and a slow phase of the host hits both alike.
// Every reply has "ok"; errors are {"ok":false,"error":...}. Progress goes
// to stderr. EOF on stdin means start.js died: the worker exits.
const fs = require('node:fs');
const path = require('node:path');
const readline = require('node:readline');

const config = JSON.parse(process.argv[2]);
const { run } = require(path.join(config.dist, 'index.js'));

function send(message) {
  process.stdout.write(`${JSON.stringify({ ok: true, ...message })}\n`);
}

function parentGone() {
  process.stderr.write('lib-worker: stdin closed (start.js went away), exiting\n');
  process.exit(2);
}

// On SIGINT/SIGTERM, finish the container being waited for (so that none
// is orphaned) and stop before the next one.
let interrupted = null;
let inRun = false;
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    interrupted = signal;
    if (!inRun) process.exit(130);
  });
}
function checkInterrupted() {
  if (interrupted) throw new Error(`interrupted by ${interrupted}`);
}

const now = () => process.hrtime.bigint();
const ms = (a, b) => Number(b - a) / 1e6;
const sleep = (t) => new Promise((resolve) => setTimeout(resolve, t));

/** Live JS objects kept until the end, so the heap stays at its size while containers start. */
let ballast = [];

/**
 * Grows the V8 heap (not off-heap memory: no Buffers or typed arrays) to
 * `mib` MiB of live objects: a quarter as small objects, the rest as arrays
 * of doubles (64 Ki elements each, 512 KiB of heap per array, stored inline
 * in V8's own FixedDoubleArray). Every page is written, so it is all touched.
 */
function growHeap(mib) {
  const target = mib * 1024 * 1024;
  const started = now();
  const heapUsed = () => process.memoryUsage().heapUsed;
  const N = 65536;
  while (heapUsed() < target / 4) {
    const objects = new Array(N);
    for (let i = 0; i < N; i++) objects[i] = { id: i, value: i * 0.5, next: null };
    for (let i = 1; i < N; i++) objects[i - 1].next = objects[i];
    ballast.push(objects);
  }
  while (heapUsed() < target) {
    const doubles = new Array(N);
    for (let i = 0; i < N; i++) doubles[i] = i + 0.5;
    ballast.push(doubles);
  }
  return ms(started, now());
}

function gc() {
  if (typeof global.gc === 'function') global.gc();
}

function memory() {
  const m = process.memoryUsage();
  const mib = (b) => Math.round((b / 1048576) * 10) / 10;
  return { heapUsedMiB: mib(m.heapUsed), heapTotalMiB: mib(m.heapTotal), rssMiB: mib(m.rss), externalMiB: mib(m.external) };
}

async function runOne() {
  checkInterrupted();
  inRun = true;
  try {
    const t0 = now();
    const container = await run({ rootfs: config.rootfs, args: ['/bin/true'], stdio: 'ignore', autoRemove: true, stateDir: config.stateDir });
    const t1 = now();
    const result = await container.wait();
    const t2 = now();
    if (result.exitCode !== 0) throw new Error(`/bin/true exited with ${JSON.stringify(result)}`);
    return { start: ms(t0, t1), exit: ms(t0, t2) };
  } finally {
    inRun = false;
  }
}

/** Direct children of this process (any thread's), and how many are zombies. */
function children() {
  const pids = [];
  try {
    for (const tid of fs.readdirSync('/proc/self/task')) {
      const text = fs.readFileSync(`/proc/self/task/${tid}/children`, 'utf8').trim();
      if (text) pids.push(...text.split(/\s+/).map(Number));
    }
  } catch {
    // No CONFIG_PROC_CHILDREN: scan /proc for our ppid.
    pids.length = 0;
    for (const entry of fs.readdirSync('/proc')) {
      if (!/^\d+$/.test(entry)) continue;
      try {
        const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
        const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
        if (ppid === process.pid) pids.push(Number(entry));
      } catch {
        // gone
      }
    }
  }
  let zombies = 0;
  for (const pid of pids) {
    try {
      const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
      if (stat.slice(stat.lastIndexOf(')') + 2)[0] === 'Z') zombies++;
    } catch {
      // reaped meanwhile
    }
  }
  return { children: pids.length, zombies, pids };
}

function fdTable() {
  const table = {};
  for (const fd of fs.readdirSync('/proc/self/fd')) {
    try {
      table[fd] = fs.readlinkSync(`/proc/self/fd/${fd}`);
    } catch {
      // the directory fd readdirSync used, already closed
    }
  }
  return table;
}

function countEntries(dir) {
  let n = 0;
  try {
    for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
      n++;
      if (entry.isDirectory()) n += countEntries(path.join(dir, entry.name));
    }
  } catch (err) {
    if (err.code !== 'ENOENT') throw err;
  }
  return n;
}

function snapshot() {
  const fds = fdTable();
  const kids = children();
  return {
    fds: Object.keys(fds).length,
    mounts: fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter(Boolean).length,
    threads: fs.readdirSync('/proc/self/task').length,
    children: kids.children,
    zombies: kids.zombies,
    stateEntries: countEntries(config.stateDir),
    fdTable: fds,
    childPids: kids.pids,
    ...memory(),
  };
}

async function startMode() {
  let allocMs = null;
  if (config.heapMiB > 0) {
    process.stderr.write(`  allocating ${config.heapMiB} MiB of JS heap objects ...\n`);
    allocMs = growHeap(config.heapMiB);
  }
  gc();
  const heapBefore = memory();
  if (config.heapMiB > 0 && heapBefore.heapUsedMiB < config.heapMiB * 0.97) {
    throw new Error(`heap is ${heapBefore.heapUsedMiB} MiB after allocating, wanted ${config.heapMiB} MiB`);
  }
  for (let i = 0; i < config.warmup; i++) await runOne();
  send({ ready: true, pid: process.pid, heapBefore, allocMs });
  const lines = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
  for await (const line of lines) {
    const message = JSON.parse(line);
    if (message.cmd === 'run') {
      const start = [];
      const exit = [];
      for (let i = 0; i < message.n; i++) {
        const t = await runOne();
        start.push(t.start);
        exit.push(t.exit);
      }
      send({ start, exit });
    } else if (message.cmd === 'finish') {
      return { heapAfter: memory(), ballastArrays: ballast.length };
    } else {
      throw new Error(`unknown command ${line}`);
    }
  }
  parentGone();
}

async function leakMode() {
  // start.js gives a pipe as stdin and never writes to it: EOF means it died.
  const stdinStat = fs.fstatSync(0);
  if (stdinStat.isFIFO() || stdinStat.isSocket()) {
    process.stdin.on('end', parentGone);
    process.stdin.on('error', () => {});
    process.stdin.resume();
    process.stdin.unref();
  }
  for (let i = 0; i < config.warmup; i++) await runOne();
  await sleep(200);
  gc();
  const before = snapshot();
  const exit = [];
  const every = Math.max(1, Math.floor(config.runs / 10));
  for (let i = 0; i < config.runs; i++) {
    exit.push((await runOne()).exit);
    if (process.stderr.isTTY && (i + 1) % every === 0) process.stderr.write(`  ${i + 1}/${config.runs}\r`);
  }
  if (process.stderr.isTTY) process.stderr.write('\n');
  await sleep(200);
  gc();
  const after = snapshot();
  // The spare network namespace (one, made during a run) is a new one after every run.
  const isNetns = (target) => typeof target === 'string' && target.startsWith('net:[');
  const newFds = Object.fromEntries(Object.entries(after.fdTable).filter(([fd, target]) => before.fdTable[fd] !== target && !(isNetns(target) && isNetns(before.fdTable[fd]))));
  delete before.fdTable;
  delete after.fdTable;
  return { exit, before, after, newFds };
}

(config.mode === 'leak' ? leakMode() : startMode()).then(
  (result) => {
    send({ pid: process.pid, ...result });
    ballast = null;
    process.exit(0);
  },
  (err) => {
    process.stdout.write(`${JSON.stringify({ ok: false, error: String((err && err.stack) || err) })}\n`);
    process.exit(1);
  },
);
