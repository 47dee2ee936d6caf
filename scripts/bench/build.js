#!/usr/bin/env node
'use strict';
// Build benchmark: `tsrun build` of one Dockerfile from the project's
// busybox image, cold (--no-cache), fully cached, and after one copied
// file changed (a rebuild from its ADD step on), side by side with
// `podman build` (vfs storage, runc) of the same Dockerfile from the same
// image, loaded from tsrun's `save`. Run as root after `npm run build`:
//
//   node scripts/bench/build.js [--runs N] [--work DIR]
//
//   --runs N    timed runs of each case (default 5; medians are reported)
//   --work DIR  where the temp dir goes (default: the OS temp dir)
//
// The Dockerfile: FROM busybox, ENV, a RUN that writes 2 MB, COPY of a
// 4 MB file, ADD of a script, WORKDIR, CMD. "library" times build()
// inside one node process (no start-up): what a long-running program pays
// for a cached build. The issue's target (a fully cached build well under
// a second) is reported, not asserted. The temp dir, podman's storage and
// anything left mounted are removed at the end, also on failure or Ctrl-C.
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { summarize, fmtMs } = require('./stats');
const { spawnP, stopChildren, which, firstLine } = require('./proc');
const { cleanupAll } = require('./cleanup');

const REPO = path.resolve(__dirname, '..', '..');
const BIN = path.join(REPO, 'bin', 'tsrun');
const MAKE_ROOTFS = path.join(REPO, 'scripts', 'make-busybox-rootfs.sh');
const CACHED_TARGET_MS = 1000;

const DOCKERFILE = `FROM busybox:bench
ENV GREETING=hello APP=/app
RUN mkdir -p $APP && dd if=/dev/zero of=$APP/blob bs=1024 count=2048 2>/dev/null
COPY data.bin /data/
ADD start.sh /usr/local/bin/
WORKDIR /app
CMD ["start.sh"]
`;

function fail(message, code = 1) {
  process.stderr.write(`build.js: ${message.endsWith('\n') ? message : `${message}\n`}`);
  process.exit(code);
}

function parseArgs(argv) {
  const opts = { runs: 5, work: os.tmpdir() };
  for (let i = 0; i < argv.length; i++) {
    const value = () => argv[++i] ?? fail(`${argv[i - 1]} needs a value`, 2);
    if (argv[i] === '--runs') opts.runs = Number(value());
    else if (argv[i] === '--work') opts.work = value();
    else fail(`unknown option ${argv[i]}\nusage: node scripts/bench/build.js [--runs N] [--work DIR]`, 2);
  }
  if (!Number.isInteger(opts.runs) || opts.runs < 1) fail('--runs takes a positive whole number', 2);
  return opts;
}

function run(cmd, args, options = {}) {
  const result = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 1 << 28, ...options });
  if (result.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${firstLine(result.stderr, result.error?.message ?? `exit ${result.status}`)}`);
  return result.stdout;
}

async function timed(cmd, args, options) {
  const t0 = process.hrtime.bigint();
  const result = await spawnP(cmd, args, options);
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (result.code !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${firstLine(result.stderr, `exit ${result.code}`)}`);
  return ms;
}

/** A node process that builds `runs` times with the library and prints each build() time (ms), one a line. */
const LIBRARY_WORKER = `
const { build } = require(process.argv[1]);
(async () => {
  const [context, root, runs] = process.argv.slice(2);
  for (let i = 0; i < Number(runs); i++) {
    const t0 = process.hrtime.bigint();
    const { steps } = await build({ context, root, tags: ['bench:lib'] });
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    if (!steps.filter((s) => s.layer).every((s) => s.cached)) throw new Error('a step was not cached');
    console.log(ms);
  }
})().catch((err) => { console.error(err.message); process.exit(1); });
`;

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  if (process.getuid() !== 0) fail('run as root');
  if (!fs.existsSync(path.join(REPO, 'dist', 'index.js'))) fail('run `npm run build` first');
  const tmp = fs.mkdtempSync(path.join(opts.work, 'tsrun-bench-build-'));
  // RUN steps' containers go under a parent cgroup of this run's, removed below: the default parent would outlive the run.
  process.env.TSRUN_CGROUP_PARENT = `tsrun-bench-build-${process.pid}`;
  const podmanArgs = [
    '--root', path.join(tmp, 'podman', 'root'), '--runroot', path.join(tmp, 'podman', 'run'), '--tmpdir', path.join(tmp, 'podman', 'tmp'),
    '--storage-driver', 'vfs', '--events-backend', 'none', '--runtime', 'runc', '--cgroup-manager', 'cgroupfs',
  ];
  const podmanEnv = { ...process.env, XDG_CONFIG_HOME: path.join(tmp, 'podman', 'config') };
  let cleaned = false;
  const cleanup = async () => {
    if (cleaned) return;
    cleaned = true;
    await stopChildren();
    if (which('podman') && fs.existsSync(path.join(tmp, 'podman'))) spawnSync('podman', [...podmanArgs, 'system', 'reset', '--force'], { stdio: 'ignore', env: podmanEnv, timeout: 120000 });
    require(path.join(REPO, 'dist', 'linux', 'cgroups')).removeCgroupParent();
    const report = cleanupAll({ tmp, idPrefix: process.env.TSRUN_CGROUP_PARENT });
    if (!report.clean) process.stderr.write(`cleanup: ${JSON.stringify(report)}\n`);
  };
  for (const signal of ['SIGINT', 'SIGTERM']) process.once(signal, () => cleanup().then(() => process.exit(130)));
  try {
    const root = path.join(tmp, 'store');
    const tsrun = (...args) => [BIN, ['--root', root, ...args]];
    run(MAKE_ROOTFS, [path.join(tmp, 'rootfs')]);
    run('tar', ['-C', path.join(tmp, 'rootfs'), '-cf', path.join(tmp, 'busybox.tar'), '.']);
    run(...tsrun('import', '-c', 'CMD ["sh"]', path.join(tmp, 'busybox.tar'), 'busybox:bench'));
    const context = path.join(tmp, 'context');
    fs.mkdirSync(context);
    fs.writeFileSync(path.join(context, 'Dockerfile'), DOCKERFILE);
    fs.writeFileSync(path.join(context, 'data.bin'), Buffer.alloc(4 * 1024 * 1024, 7));
    const script = path.join(context, 'start.sh');
    let edits = 0;
    const editScript = () => fs.writeFileSync(script, `#!/bin/sh\necho "$GREETING" ${++edits}\n`, { mode: 0o755 });
    editScript();

    const results = [];
    const measure = async (name, method, before, [cmd, args], options) => {
      const samples = [];
      for (let i = 0; i < opts.runs; i++) {
        before?.();
        spawnSync('sync');
        samples.push(await timed(cmd, args, options));
      }
      results.push({ name, method, ...summarize(samples) });
    };
    const build = (...extra) => tsrun('build', '-q', ...extra, '-t', 'bench:app', context);
    // One build first, so that the cached cases find every step.
    run(...build());
    await measure('tsrun build, cold (--no-cache)', 'CLI', null, build('--no-cache'));
    await measure('tsrun build, fully cached', 'CLI', null, build());
    await measure('tsrun build, script edited', 'CLI, from the ADD step', editScript, build());
    const worker = await spawnP(process.execPath, ['-e', LIBRARY_WORKER, path.join(REPO, 'dist', 'index.js'), context, root, String(opts.runs)]);
    if (worker.code !== 0) throw new Error(`library worker: ${firstLine(worker.stderr)}`);
    results.push({ name: 'tsrun build(), fully cached', method: 'library, in-process', ...summarize(worker.stdout.trim().split('\n').map(Number)) });

    let podmanNote;
    if (!which('podman')) {
      podmanNote = 'podman is not installed';
    } else {
      const archive = path.join(tmp, 'busybox.oci.tar');
      run(...tsrun('save', '-o', archive, 'busybox:bench'));
      try {
        run('podman', [...podmanArgs, 'load', '-i', archive], { env: podmanEnv });
        const podman = (...extra) => ['podman', [...podmanArgs, 'build', '-q', '--network', 'none', '--ulimit', 'nofile=1024:1024', '--ulimit', 'nproc=1024:1024', ...extra, '-t', 'bench:app', context]];
        run(...podman(), { env: podmanEnv });
        await measure('podman build, cold (--no-cache)', 'CLI, vfs', null, podman('--no-cache'), { env: podmanEnv });
        await measure('podman build, fully cached', 'CLI, vfs', null, podman(), { env: podmanEnv });
        await measure('podman build, script edited', 'CLI, vfs, from the ADD step', editScript, podman(), { env: podmanEnv });
      } catch (err) {
        podmanNote = `podman build: ${err.message}`;
      }
    }

    const host = `kernel ${os.release()}, ${os.cpus().length} CPUs, load ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`;
    const lines = [`tsrun build benchmark — ${new Date().toISOString()}`, `host: ${host}`, '', `${'name'.padEnd(36)} ${'runs'.padStart(5)} ${'median ms'.padStart(10)} ${'min'.padStart(8)} ${'max'.padStart(8)}  method`];
    for (const r of results) lines.push(`${r.name.padEnd(36)} ${String(r.runs).padStart(5)} ${fmtMs(r.median).padStart(10)} ${fmtMs(r.min).padStart(8)} ${fmtMs(r.max).padStart(8)}  ${r.method}`);
    if (podmanNote) lines.push(`  podman: n/a (${podmanNote})`);
    const cached = results.find((r) => r.name === 'tsrun build, fully cached');
    lines.push('', `target: a fully cached build under ${CACHED_TARGET_MS} ms (CLI median ${fmtMs(cached.median)} ms): ${cached.median < CACHED_TARGET_MS ? 'met' : 'MISSED'}`);
    process.stdout.write(`${lines.join('\n')}\n`);
  } finally {
    await cleanup();
  }
}

main().catch((err) => fail(err.stack ?? String(err)));
