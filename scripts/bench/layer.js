#!/usr/bin/env node
'use strict';
// Layer benchmark: tsrun's applyLayer side by side with GNU tar and umoci on
// a Debian minbase root filesystem, and tsrun's diffLayer (commit) side by
// side with `tar -c` on an upper dir where 10,000 files changed. Run as root
// after `npm run build`:
//
//   node scripts/bench/layer.js [--runs N] [--work DIR] [--no-fresh-fs] [--cache DIR]
//
//   --runs N       timed runs of each tool (default 5; the median is reported)
//   --work DIR     where the temp dirs go (default: the OS temp dir)
//   --no-fresh-fs  write the trees in --work itself (a tmpfs such as
//                  /dev/shm shows the CPU side alone) instead of on a fresh
//                  ext4 filesystem made in a sparse file there
//   --cache DIR    where the minbase tarball is kept between runs (default
//                  /var/cache/tsrun-bench); it is built once with
//                  `mmdebstrap --variant=minbase bookworm`, which downloads
//                  from Debian's mirror.
//
// Where the trees go decides much of the result. By default they are
// written to a fresh ext4 filesystem (a loop device with direct I/O over a
// sparse file in --work, mounted in a mount namespace of this benchmark's
// own), nothing is removed before the end, and before each run the trees
// written so far leave the page cache:
// - ext4 skips the inodes freed in the last minutes when it allocates
//   (recently_deleted()): just after 8,700 files had been removed,
//   extracting the layer took 8-10 s of system time instead of 0.6 s,
//   whichever tool ran;
// - on this VM, with the page cache growing by 200 MB a run, each run was
//   slower than the one before (1.4 s to 3 s over six), whichever tool ran.
//
// Apply: each tool extracts the same gzip blob into a new empty dir, as
// root, keeping ownership, modes, devices and xattrs: tsrun applyLayer
// (timed inside a fresh node process, and that process as a whole),
// `tar -xzf` (with --xattrs --xattrs-include='*', which is what applyLayer
// does, and without), and `umoci raw unpack` of a one-layer OCI layout
// around the blob. Rounds are interleaved, and each run starts once the
// disk is idle, so that one tool's writeback does not land in another's
// time.
//
// Commit: diffLayer piped into compress('gzip') into a file, against
// `tar -c --xattrs | gzip -6` into a file; also both uncompressed.
//
// The filesystem and the temp dirs are removed at the end, also on failure
// or Ctrl-C. Targets are reported, not asserted.
const { spawn, spawnSync } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { summarize, fmtMs } = require('./stats');
const { spawnP, stopChildren, which, firstLine } = require('./proc');

const REPO = path.resolve(__dirname, '..', '..');
const DIST = path.join(REPO, 'dist');
const TARGET_RATIO = 1.1;
const CHANGED_FILES = 10_000;

/** Set in the copy of this script that runs in its own mount namespace. */
const IN_NAMESPACE_ENV = 'TSRUN_BENCH_LAYER_NS';

function usage() {
  return 'usage: node scripts/bench/layer.js [--runs N] [--work DIR] [--no-fresh-fs] [--cache DIR]\n';
}

function parseArgs(argv) {
  const opts = { runs: 5, work: os.tmpdir(), freshFs: true, cache: '/var/cache/tsrun-bench' };
  for (let i = 0; i < argv.length; i++) {
    const value = () => {
      if (argv[i + 1] === undefined) fail(`${argv[i]} needs a value\n${usage()}`, 2);
      return argv[++i];
    };
    if (argv[i] === '--runs') {
      opts.runs = Number(value());
      if (!Number.isInteger(opts.runs) || opts.runs < 1) fail(`--runs: not a positive integer\n${usage()}`, 2);
    } else if (argv[i] === '--work') opts.work = path.resolve(value());
    else if (argv[i] === '--no-fresh-fs') opts.freshFs = false;
    else if (argv[i] === '--cache') opts.cache = path.resolve(value());
    else if (argv[i] === '-h' || argv[i] === '--help') {
      process.stdout.write(usage());
      process.exit(0);
    } else fail(`unknown argument ${JSON.stringify(argv[i])}\n${usage()}`, 2);
  }
  return opts;
}

function fail(message, code = 1) {
  process.stderr.write(`layer.js: ${message.endsWith('\n') ? message : `${message}\n`}`);
  process.exit(code);
}

// --- the tsrun side, run in a fresh node process per measurement ---

async function worker(mode, args) {
  const { pipeline } = require('node:stream/promises');
  const start = process.hrtime.bigint();
  let result;
  if (mode === 'apply') {
    const { applyLayer } = require(path.join(DIST, 'storage', 'apply.js'));
    const [blob, dir] = args;
    const applied = await applyLayer(fs.createReadStream(blob), dir, { subject: `layer ${path.basename(blob)}` });
    result = { diffID: applied.diffID, entries: applied.entries };
  } else if (mode === 'commit') {
    const { diffLayer } = require(path.join(DIST, 'storage', 'diff.js'));
    const { compress } = require(path.join(DIST, 'storage', 'compression.js'));
    const [upper, out, compression] = args;
    const stages = [diffLayer(upper), ...(compression === 'gzip' ? [compress('gzip')] : []), fs.createWriteStream(out)];
    await pipeline(...stages);
    result = {};
  } else {
    throw new Error(`unknown worker mode ${mode}`);
  }
  const ms = Number(process.hrtime.bigint() - start) / 1e6;
  process.stdout.write(`${JSON.stringify({ ms, ...result })}\n`);
}

// --- helpers ---

/** Runs a command, resolving its wall time in ms; throws with its stderr when it fails. */
async function timed(cmd, args, options) {
  const start = process.hrtime.bigint();
  const result = await spawnP(cmd, args, options);
  const ms = Number(process.hrtime.bigint() - start) / 1e6;
  if (result.code !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${firstLine(result.stderr, `exit ${result.code ?? result.signal}`)}`);
  return { ms, stdout: result.stdout };
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** `/sys/dev/block/M:m/stat` of the device holding `dir`, or null (tmpfs). */
function blockStatFile(dir) {
  const dev = fs.statSync(dir).dev;
  // glibc's major()/minor() for the low 32 bits, which Linux's numbers fit.
  const file = `/sys/dev/block/${(dev >>> 8) & 0xfff}:${(dev & 0xff) | ((dev >>> 12) & 0xfff00)}/stat`;
  return fs.existsSync(file) ? file : null;
}

/**
 * Before a measurement: writes dirty pages out and waits until the disk has
 * been idle for a second (no request in flight, no busy time added), so the
 * previous run's writeback and the discards of its removal (this host mounts
 * / with `discard`) are not in the next run's time.
 */
async function settle(statFile) {
  spawnSync('sync');
  if (!statFile) return;
  // Fields 9 and 10: requests in flight, milliseconds spent doing I/O.
  const read = () => fs.readFileSync(statFile, 'utf8').trim().split(/\s+/).map(Number);
  const deadline = Date.now() + 60_000;
  for (let before = read(); Date.now() < deadline; ) {
    await sleep(1000);
    const now = read();
    if (now[8] === 0 && now[9] === before[9]) return;
    before = now;
  }
}

function sha256File(file) {
  const hash = crypto.createHash('sha256');
  const fd = fs.openSync(file, 'r');
  const buffer = Buffer.allocUnsafe(1 << 20);
  try {
    for (let n; (n = fs.readSync(fd, buffer, 0, buffer.length, null)) > 0; ) hash.update(buffer.subarray(0, n));
  } finally {
    fs.closeSync(fd);
  }
  return hash.digest('hex');
}

/** The minbase tarball, built once and kept in `cache`. */
async function minbaseTar(cache) {
  const tar = path.join(cache, 'bookworm-minbase.tar');
  if (fs.existsSync(tar)) return tar;
  if (!which('mmdebstrap')) fail('mmdebstrap is not installed (scripts/setup.sh installs it)');
  fs.mkdirSync(cache, { recursive: true });
  // mmdebstrap picks the output format from the name: keep `.tar` at the end.
  const partial = path.join(cache, `.partial-${process.pid}.tar`);
  process.stderr.write('building the Debian bookworm minbase tarball with mmdebstrap (downloads ~40 MB from deb.debian.org, once)...\n');
  const result = await spawnP('mmdebstrap', ['--quiet', '--variant=minbase', '--format=tar', 'bookworm', partial]);
  if (result.code !== 0) {
    fs.rmSync(partial, { force: true });
    fail(`mmdebstrap could not build the minbase tarball (is deb.debian.org reachable?): ${firstLine(result.stderr, `exit ${result.code}`)}`);
  }
  fs.renameSync(partial, tar);
  return tar;
}

/** `tar`, gzipped with `gzip -6 -n` (reproducible), kept next to it. */
async function gzipped(tar) {
  const gz = `${tar}.gz`;
  if (fs.existsSync(gz)) return gz;
  const partial = `${gz}.partial-${process.pid}`;
  const result = await spawnP('sh', ['-c', 'gzip -6 -n -c "$1" > "$2"', 'sh', tar, partial]);
  if (result.code !== 0) {
    fs.rmSync(partial, { force: true });
    fail(`gzip failed: ${firstLine(result.stderr)}`);
  }
  fs.renameSync(partial, gz);
  return gz;
}

/** A one-layer OCI image layout around `blob`, tagged `latest`, for umoci. */
function ociLayout(dir, blob, diffID) {
  const blobs = path.join(dir, 'blobs', 'sha256');
  fs.mkdirSync(blobs, { recursive: true });
  const put = (data) => {
    const hex = crypto.createHash('sha256').update(data).digest('hex');
    fs.writeFileSync(path.join(blobs, hex), data);
    return { digest: `sha256:${hex}`, size: data.length };
  };
  const layerHex = sha256File(blob);
  const layerFile = path.join(blobs, layerHex);
  try {
    fs.linkSync(blob, layerFile);
  } catch {
    fs.copyFileSync(blob, layerFile);
  }
  const arch = { x64: 'amd64', arm64: 'arm64' }[process.arch] ?? process.arch;
  const config = put(Buffer.from(JSON.stringify({ architecture: arch, os: 'linux', config: {}, rootfs: { type: 'layers', diff_ids: [diffID] } })));
  const manifest = put(
    Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config },
        layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: `sha256:${layerHex}`, size: fs.statSync(blob).size }],
      }),
    ),
  );
  fs.writeFileSync(path.join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  fs.writeFileSync(
    path.join(dir, 'index.json'),
    JSON.stringify({
      schemaVersion: 2,
      manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', ...manifest, annotations: { 'org.opencontainers.image.ref.name': 'latest' } }],
    }),
  );
}

/** A deterministic PRNG (mulberry32), so every run commits the same tree. */
function random(seed) {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

/**
 * An overlay upper dir as a container leaves it: CHANGED_FILES files written
 * (text-like content, 100 bytes to 64 KiB, log-distributed) in 200
 * directories, 100 whiteouts and one opaque directory.
 */
function makeUpperDir(upper) {
  const native = require(path.join(REPO, 'build', 'Release', 'tsrun_native.node'));
  const next = random(42);
  const words = ['container', 'layer', 'overlay', 'tar', 'gzip', 'debian', 'root', 'etc', 'usr', 'lib', 'share', 'config', '0', '1', '42', '\n'];
  let bytes = 0;
  for (let i = 0; i < CHANGED_FILES; i++) {
    const dir = path.join(upper, 'srv', `d${String(i % 200).padStart(3, '0')}`);
    if (i < 200) fs.mkdirSync(dir, { recursive: true });
    const size = Math.floor(100 * Math.exp(next() * Math.log(65536 / 100)));
    const parts = [];
    for (let n = 0; n < size; ) {
      const word = words[Math.floor(next() * words.length)];
      parts.push(word, ' ');
      n += word.length + 1;
    }
    const content = parts.join('').slice(0, size);
    fs.writeFileSync(path.join(dir, `f${i}.txt`), content);
    bytes += size;
  }
  fs.mkdirSync(path.join(upper, 'var', 'cache'), { recursive: true });
  for (let i = 0; i < 100; i++) native.mknod(path.join(upper, 'var', 'cache', `gone${i}`), fs.constants.S_IFCHR, 0, 0);
  native.lsetxattr(path.join(upper, 'var', 'cache'), 'trusted.overlay.opaque', Buffer.from('y'), 0);
  return bytes;
}

/** Runs a command to completion; its stdout. Throws with its stderr when it fails. */
function mustRun(cmd, args) {
  const result = spawnSync(cmd, args, { encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${firstLine(result.stderr, result.error?.message ?? `exit ${result.status}`)}`);
  return result.stdout;
}

/** Entries in a tar file. */
function entriesOf(tar) {
  return mustRun('tar', ['-tf', tar]).split('\n').filter(Boolean).length;
}

/**
 * posix_fadvise(DONTNEED) on every file under `dir` (synced before): the
 * trees written so far leave the page cache, and their inodes and
 * directories stay cached. Node has no fadvise; Python, which the tests
 * need anyway, has.
 */
const EVICT_PAGE_CACHE = `
import os, stat, sys
for root, dirs, files in os.walk(sys.argv[1]):
    for name in files:
        path = os.path.join(root, name)
        # Not the device nodes of a root filesystem: opening one opens the device.
        if not stat.S_ISREG(os.lstat(path).st_mode):
            continue
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        os.close(fd)
`;

function evictPageCache(dir) {
  mustRun('python3', ['-c', EVICT_PAGE_CACHE, dir]);
}

/**
 * A new ext4 filesystem of `bytes` on a loop device over a sparse file in
 * `parent`, mounted at `parent`/fs (in this process's own mount
 * namespace: see rerunInOwnMountNamespace). `dispose` unmounts it and
 * detaches the device.
 */
function freshFilesystem(parent, bytes) {
  const image = path.join(parent, 'ext4.img');
  fs.writeFileSync(image, '');
  fs.truncateSync(image, bytes);
  // Direct I/O: the device's blocks are not cached a second time as the image file's pages.
  const device = mustRun('losetup', ['--find', '--show', '--direct-io=on', image]).trim();
  const mountPoint = path.join(parent, 'fs');
  const dispose = () => {
    // Lazy: a process still using it cannot keep it; detaching a busy device leaves it to go when unused.
    spawnSync('umount', ['--lazy', mountPoint]);
    spawnSync('losetup', ['--detach', device]);
  };
  try {
    // Inode tables and journal are written now, not by ext4lazyinit during the runs.
    mustRun('mkfs.ext4', ['-q', '-E', 'lazy_itable_init=0,lazy_journal_init=0', device]);
    fs.mkdirSync(mountPoint);
    mustRun('mount', [device, mountPoint]);
  } catch (err) {
    dispose();
    throw err;
  }
  return { dir: mountPoint, device, dispose };
}

/**
 * Runs this script again under `unshare --mount --propagation private`:
 * its mount is then seen by no other process (a test's mount leak check,
 * say) and goes with it however it ends. Ctrl-C reaches both processes;
 * the copy cleans up, then this one exits with its status.
 */
function rerunInOwnMountNamespace() {
  const child = spawn('unshare', ['--mount', '--propagation', 'private', process.execPath, __filename, ...process.argv.slice(2)], {
    stdio: 'inherit',
    env: { ...process.env, [IN_NAMESPACE_ENV]: '1' },
  });
  process.on('SIGINT', () => {});
  process.on('SIGTERM', () => child.kill('SIGTERM'));
  child.on('error', (err) => fail(`unshare: ${err.message}`));
  child.on('close', (code, signal) => process.exit(code ?? (signal ? 128 + os.constants.signals[signal] : 1)));
}

// --- the run ---

async function main(opts) {
  if (process.getuid() !== 0) fail('must run as root (ownership, devices, trusted.* xattrs)');
  if (!fs.existsSync(path.join(DIST, 'storage', 'apply.js'))) fail('dist/ is not built: run `npm run build` first');
  const umoci = which('umoci');

  const tar = await minbaseTar(opts.cache);
  const blob = await gzipped(tar);
  const diffID = `sha256:${sha256File(tar)}`;
  fs.mkdirSync(opts.work, { recursive: true });
  const work = fs.mkdtempSync(path.join(opts.work, 'tsrun-bench-layer-'));
  let filesystem;
  const cleanup = () => {
    filesystem?.dispose();
    fs.rmSync(work, { recursive: true, force: true });
  };
  process.on('exit', cleanup);
  for (const signal of ['SIGINT', 'SIGTERM']) {
    process.on(signal, () => {
      stopChildren(500).finally(() => process.exit(130));
    });
  }
  // Every tree stays until the end: room for all of them, and the commit's.
  if (opts.freshFs) filesystem = freshFilesystem(work, (4 * opts.runs + 4) * 2 * fs.statSync(tar).size);
  const trees = filesystem ? filesystem.dir : work;

  const statFile = blockStatFile(trees);
  const print = (s = '') => process.stdout.write(`${s}\n`);
  print(`layer: ${tar} (${(fs.statSync(tar).size / 1e6).toFixed(1)} MB uncompressed, ${(fs.statSync(blob).size / 1e6).toFixed(1)} MB gzip, ${entriesOf(tar)} entries)`);
  const where = filesystem
    ? `a fresh ext4 on ${filesystem.device} (direct I/O) over a sparse file in ${opts.work}`
    : `${trees} (${spawnSync('stat', ['-f', '-c', '%T', trees], { encoding: 'utf8' }).stdout.trim()})`;
  print(`trees written to ${where}; ${opts.runs} runs each, interleaved; node ${process.version}, ${os.cpus().length} CPUs`);

  const layout = path.join(work, 'oci');
  if (umoci) ociLayout(layout, blob, diffID);

  const tools = [
    {
      name: 'tsrun applyLayer (call)',
      run: async (dir) => {
        fs.mkdirSync(dir);
        const { ms, stdout } = await timed(process.execPath, [__filename, '--worker', 'apply', blob, dir]);
        const report = JSON.parse(stdout);
        if (report.diffID !== diffID) throw new Error(`applyLayer's diffID ${report.diffID} is not the tarball's ${diffID}`);
        return { ms: report.ms, process: ms };
      },
    },
    { name: "tar -xzf --xattrs --xattrs-include='*'", run: async (dir) => (fs.mkdirSync(dir), timed('tar', ['-xzf', blob, '-C', dir, '--numeric-owner', '--xattrs', '--xattrs-include=*'])) },
    { name: 'tar -xzf', run: async (dir) => (fs.mkdirSync(dir), timed('tar', ['-xzf', blob, '-C', dir, '--numeric-owner'])) },
    ...(umoci ? [{ name: 'umoci raw unpack', run: (dir) => timed(umoci, ['raw', 'unpack', '--image', `${layout}:latest`, dir]) }] : []),
  ];
  const samples = new Map(tools.map((t) => [t.name, []]));
  const processSamples = [];
  for (let round = 0; round < opts.runs; round++) {
    // Rotate the order so no tool always runs right after the same one.
    for (let k = 0; k < tools.length; k++) {
      const tool = tools[(round + k) % tools.length];
      const dir = path.join(trees, `rootfs-${round}-${k}`);
      await settle(statFile);
      evictPageCache(trees);
      const result = await tool.run(dir);
      samples.get(tool.name).push(result.ms);
      if (result.process !== undefined) processSamples.push(result.process);
    }
  }
  if (!umoci) print('umoci: n/a (not installed)');

  const median = (name) => summarize(samples.get(name)).median;
  const rows = [
    ...tools.map((t) => [t.name, summarize(samples.get(t.name))]),
    ['tsrun applyLayer (node process)', summarize(processSamples)],
  ];
  print();
  print('apply a 170 MB minbase layer (gzip)         median      min      max   ms');
  for (const [name, s] of rows) print(`  ${name.padEnd(40)} ${fmtMs(s.median).padStart(8)} ${fmtMs(s.min).padStart(8)} ${fmtMs(s.max).padStart(8)}`);
  const tsrunCall = median('tsrun applyLayer (call)');
  const tsrunProcess = summarize(processSamples).median;
  print();
  // The target is on medians, of the whole node process; the ratio of the fastest runs shows how much of a miss is noise.
  print(`  ${'ratio of the medians (of the fastest runs)'.padEnd(48)}  call  process`);
  for (const base of ["tar -xzf --xattrs --xattrs-include='*'", 'tar -xzf', ...(umoci ? ['umoci raw unpack'] : [])]) {
    const call = tsrunCall / median(base);
    const proc = tsrunProcess / median(base);
    const fastest = summarize(processSamples).min / summarize(samples.get(base)).min;
    const target = base.startsWith('tar') ? `  target <= ${TARGET_RATIO}: ${proc <= TARGET_RATIO ? 'met' : 'MISSED'}` : '';
    print(`  ${`tsrun / ${base}`.padEnd(48)}  ${call.toFixed(2)}  ${proc.toFixed(2).padStart(7)} (${fastest.toFixed(2)})${target}`);
  }

  // --- commit ---
  const upper = path.join(trees, 'upper');
  fs.mkdirSync(upper);
  const bytes = makeUpperDir(upper);
  print();
  print(`commit an upper dir: ${CHANGED_FILES} files changed (${(bytes / 1e6).toFixed(1)} MB), 100 whiteouts, 1 opaque dir`);
  const out = path.join(trees, 'layer.out');
  const commitTools = [
    // Timed as whole processes, node's start included, like the tar pipelines.
    { name: 'tsrun diffLayer | gzip', run: () => timed(process.execPath, [__filename, '--worker', 'commit', upper, out, 'gzip']) },
    { name: 'tar -c --xattrs | gzip -6', run: () => timed('sh', ['-c', 'tar -C "$1" --numeric-owner --xattrs --xattrs-include="*" -cf - . | gzip -6 -n > "$2"', 'sh', upper, out]) },
    { name: 'tsrun diffLayer (uncompressed)', run: () => timed(process.execPath, [__filename, '--worker', 'commit', upper, out, 'none']) },
    { name: 'tar -c --xattrs (uncompressed)', run: () => timed('tar', ['-C', upper, '--numeric-owner', '--xattrs', '--xattrs-include=*', '-cf', out, '.']) },
  ];
  const commitSamples = new Map(commitTools.map((t) => [t.name, []]));
  for (let round = 0; round < opts.runs; round++) {
    for (const tool of commitTools) {
      await settle(statFile);
      commitSamples.get(tool.name).push((await tool.run()).ms);
      fs.rmSync(out, { force: true });
    }
  }
  print('                                             median      min      max   ms');
  for (const tool of commitTools) {
    const s = summarize(commitSamples.get(tool.name));
    print(`  ${tool.name.padEnd(40)} ${fmtMs(s.median).padStart(8)} ${fmtMs(s.min).padStart(8)} ${fmtMs(s.max).padStart(8)}`);
  }
  const commitRatio = (a, b) => (summarize(commitSamples.get(a)).median / summarize(commitSamples.get(b)).median).toFixed(2);
  print();
  print(`  tsrun / tar, gzip:         ${commitRatio('tsrun diffLayer | gzip', 'tar -c --xattrs | gzip -6')} (tsrun's time includes node's start)`);
  print(`  tsrun / tar, uncompressed: ${commitRatio('tsrun diffLayer (uncompressed)', 'tar -c --xattrs (uncompressed)')}`);
}

if (process.argv[2] === '--worker') {
  worker(process.argv[3], process.argv.slice(4)).catch((err) => {
    process.stderr.write(`${err.stack ?? err}\n`);
    process.exit(1);
  });
} else {
  const opts = parseArgs(process.argv.slice(2));
  if (opts.freshFs && process.env[IN_NAMESPACE_ENV] !== '1') {
    rerunInOwnMountNamespace();
  } else {
    main(opts).catch(async (err) => {
      await stopChildren(500);
      fail(err.stack ?? String(err));
    });
  }
}
