#!/usr/bin/env node
'use strict';
// Pull benchmark: `tsrun pull` side by side with `skopeo copy` into an OCI
// layout plus `tar -xzf` of its layers, and with `podman pull`, all from one
// local registry (Debian's docker-registry on 127.0.0.1, started for this
// run). Run as root after `npm run build`:
//
//   node scripts/bench/pull.js [--runs N] [--work DIR] [--cache DIR]
//
//   --runs N     timed runs of each tool per image (default 5; medians are reported)
//   --work DIR   where the temp dir goes (default: the OS temp dir): the
//                registry's storage, the stores and the layouts
//   --cache DIR  where a Debian minbase tarball is looked for
//                (bookworm-minbase.tar, as scripts/bench/layer.js keeps it;
//                default /var/cache/tsrun-bench). Without it, and without
//                mmdebstrap to make one, only busybox is pulled.
//
// Images: busybox (the project's busybox root filesystem) and the minbase
// root filesystem, each imported by tsrun as a one-layer gzip image, saved
// as an OCI archive and pushed to the registry by skopeo. Each run pulls
// into a new, empty destination:
//   tsrun    `tsrun --root STORE pull -q REF`: download, verify, apply
//   library  pullImage() timed inside a fresh node process, without node's
//            start-up and module loading: what a long-running program pays
//   skopeo   `skopeo copy docker://REF oci:DIR` then `tar -xzf` of each
//            layer blob into a rootfs dir (as root, keeping owners)
//   podman   `podman --root R --runroot RR pull -q REF` (its storage is
//            vfs or overlay, as podman picks on this host)
// Rounds are interleaved and `sync` runs (untimed) before each run, so that
// one tool's writeback does not land in another's time.
//
// The registry, the temp dirs and podman's storage are removed at the end,
// also on failure or Ctrl-C. The target (tsrun <= 1.2x skopeo + tar) is
// reported, not asserted.
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const { summarize, fmtMs } = require('./stats');
const { spawnP, spawnTracked, stopChildren, which, firstLine } = require('./proc');
const { cleanupAll } = require('./cleanup');

const REPO = path.resolve(__dirname, '..', '..');
const BIN = path.join(REPO, 'bin', 'tsrun');
const MAKE_ROOTFS = path.join(REPO, 'scripts', 'make-busybox-rootfs.sh');
const TARGET_RATIO = 1.2;

function usage() {
  return 'usage: node scripts/bench/pull.js [--runs N] [--work DIR] [--cache DIR]\n';
}

function fail(message, code = 1) {
  process.stderr.write(`pull.js: ${message.endsWith('\n') ? message : `${message}\n`}`);
  process.exit(code);
}

function parseArgs(argv) {
  const opts = { runs: 5, work: os.tmpdir(), cache: '/var/cache/tsrun-bench' };
  for (let i = 0; i < argv.length; i++) {
    const value = () => {
      if (argv[i + 1] === undefined) fail(`${argv[i]} needs a value\n${usage()}`, 2);
      return argv[++i];
    };
    if (argv[i] === '--runs') {
      opts.runs = Number(value());
      if (!Number.isInteger(opts.runs) || opts.runs < 1) fail(`--runs: not a positive integer\n${usage()}`, 2);
    } else if (argv[i] === '--work') opts.work = path.resolve(value());
    else if (argv[i] === '--cache') opts.cache = path.resolve(value());
    else if (argv[i] === '-h' || argv[i] === '--help') {
      process.stdout.write(usage());
      process.exit(0);
    } else fail(`unknown argument ${JSON.stringify(argv[i])}\n${usage()}`, 2);
  }
  return opts;
}

/** Runs a command, resolving its wall time in ms; throws with its stderr when it fails. */
async function timed(cmd, args, options) {
  const start = process.hrtime.bigint();
  const result = await spawnP(cmd, args, options);
  const ms = Number(process.hrtime.bigint() - start) / 1e6;
  if (result.code !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${firstLine(result.stderr, `exit ${result.code ?? result.signal}`)}`);
  return { ms, stdout: result.stdout };
}

async function freePort() {
  const server = net.createServer();
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

async function startRegistry(dir) {
  const port = await freePort();
  const config = path.join(dir, 'registry.yml');
  fs.writeFileSync(
    config,
    `version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: ${path.join(dir, 'registry-data')}\nhttp:\n  addr: 127.0.0.1:${port}\n  secret: tsrun-bench\n`,
  );
  // setpriv --pdeathsig: the registry goes with this process however it ends.
  const child = spawnTracked('setpriv', ['--pdeathsig', 'SIGKILL', '--', 'docker-registry', 'serve', config], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d) => (stderr += d));
  const deadline = Date.now() + 15000;
  for (;;) {
    const up = await new Promise((resolve) => {
      const socket = net.connect(port, '127.0.0.1', () => {
        socket.destroy();
        resolve(true);
      });
      socket.on('error', () => resolve(false));
    });
    if (up) return `127.0.0.1:${port}`;
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`docker-registry did not start: ${firstLine(stderr, 'no output')}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Imports a root filesystem tar with tsrun, saves it as an OCI archive and pushes that with skopeo. */
async function seed(tmp, name, rootfsTar, reference) {
  const store = path.join(tmp, `seed-${name}`);
  const archive = path.join(tmp, `${name}.oci.tar`);
  await timed(BIN, ['--root', store, 'import', rootfsTar, `bench/${name}:1`]);
  await timed(BIN, ['--root', store, 'save', '-o', archive, `bench/${name}:1`]);
  await timed('skopeo', ['copy', '-q', '--dest-tls-verify=false', `oci-archive:${archive}`, `docker://${reference}`]);
  fs.rmSync(store, { recursive: true, force: true });
  fs.rmSync(archive, { force: true });
}

/** The tools, each pulling `reference` into a new destination under `dir`; returns the wall time in ms. */
function tools(podman) {
  const list = [
    {
      name: 'tsrun pull',
      async run(reference, dir) {
        return (await timed(BIN, ['--root', path.join(dir, 'store'), 'pull', '-q', reference])).ms;
      },
    },
    {
      name: 'tsrun pullImage() (lib)',
      async run(reference, dir) {
        const { stdout } = await timed(process.execPath, [__filename, '--worker', reference, path.join(dir, 'store')]);
        return JSON.parse(stdout).ms;
      },
    },
    {
      name: 'skopeo copy + tar -xzf',
      async run(reference, dir) {
        const layout = path.join(dir, 'layout');
        const rootfs = path.join(dir, 'rootfs');
        let ms = (await timed('skopeo', ['copy', '-q', '--src-tls-verify=false', `docker://${reference}`, `oci:${layout}:1`])).ms;
        const index = JSON.parse(fs.readFileSync(path.join(layout, 'index.json'), 'utf8'));
        const blob = (digest) => path.join(layout, 'blobs', ...digest.split(':'));
        const manifest = JSON.parse(fs.readFileSync(blob(index.manifests[0].digest), 'utf8'));
        fs.mkdirSync(rootfs);
        for (const layer of manifest.layers) ms += (await timed('tar', ['-xzf', blob(layer.digest), '-C', rootfs, '--same-owner', '--numeric-owner'])).ms;
        return ms;
      },
    },
  ];
  if (podman) {
    list.push({
      name: 'podman pull',
      async run(reference, dir) {
        const storage = ['--root', path.join(dir, 'podman-root'), '--runroot', path.join(dir, 'podman-run')];
        return (await timed('podman', [...storage, 'pull', '-q', '--tls-verify=false', reference])).ms;
      },
      cleanup(dir) {
        const storage = ['--root', path.join(dir, 'podman-root'), '--runroot', path.join(dir, 'podman-run')];
        spawnSync('podman', [...storage, 'rmi', '-a', '-f'], { stdio: 'ignore', timeout: 60000 });
      },
    });
  }
  return list;
}

/** What $NODE_EXTRA_CA_CERTS adds to a node start: medians of `node -e 0` with and without it. */
async function nodeStartCost() {
  const start = async (env) => {
    const samples = [];
    for (let i = 0; i < 5; i++) samples.push((await timed(process.execPath, ['-e', '0'], { env })).ms);
    return summarize(samples).median;
  };
  const without = { ...process.env };
  delete without.NODE_EXTRA_CA_CERTS;
  return (await start(process.env)) - (await start(without));
}

/** The library side: one pull, timed from the call to its result. */
async function worker(reference, root) {
  const { Store, pullImage } = require(path.join(REPO, 'dist', 'index.js'));
  const start = process.hrtime.bigint();
  await pullImage(Store.open(root), reference);
  process.stdout.write(`${JSON.stringify({ ms: Number(process.hrtime.bigint() - start) / 1e6 })}\n`);
}

async function main() {
  if (process.argv[2] === '--worker') return worker(process.argv[3], process.argv[4]);
  const opts = parseArgs(process.argv.slice(2));
  if (process.getuid() !== 0) fail('must run as root (layers keep their owners and device files)');
  if (!fs.existsSync(path.join(REPO, 'dist', 'cli', 'tsrun.js'))) fail('dist/ is missing: run `npm run build` first');
  for (const tool of ['docker-registry', 'skopeo', 'tar', 'setpriv']) if (!which(tool)) fail(`${tool} not found: run scripts/setup.sh`);
  const podman = which('podman') !== null;

  const tmp = fs.mkdtempSync(path.join(opts.work, 'tsrun-pull-bench-'));
  let cleaned = false;
  const cleanup = async () => {
    if (cleaned) return;
    cleaned = true;
    await stopChildren();
    const report = cleanupAll({ tmp, idPrefix: path.basename(tmp) });
    if (!report.clean) process.stderr.write(`pull.js: cleanup: ${JSON.stringify(report)}\n`);
  };
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
    process.on(signal, () => {
      cleanup().finally(() => process.exit(130));
    });
  }

  try {
    const host = await startRegistry(tmp);
    const images = [];
    const busyboxDir = path.join(tmp, 'busybox-rootfs');
    await timed('bash', [MAKE_ROOTFS, busyboxDir]);
    const busyboxTar = path.join(tmp, 'busybox.tar');
    await timed('tar', ['-C', busyboxDir, '-cf', busyboxTar, '.']);
    images.push({ name: 'busybox', tar: busyboxTar });
    let minbase = path.join(opts.cache, 'bookworm-minbase.tar');
    if (!fs.existsSync(minbase) && which('mmdebstrap')) {
      process.stderr.write('pull.js: making a Debian minbase tarball with mmdebstrap (once; kept in the cache dir)\n');
      fs.mkdirSync(opts.cache, { recursive: true });
      await timed('mmdebstrap', ['--variant=minbase', 'bookworm', minbase]);
    }
    if (fs.existsSync(minbase)) images.push({ name: 'debian-minbase', tar: minbase });
    else minbase = null;

    for (const image of images) {
      image.reference = `${host}/${image.name}:1`;
      await seed(tmp, image.name, image.tar, image.reference);
    }

    const list = tools(podman);
    const results = new Map();
    let round = 0;
    for (const image of images) {
      for (let run = 0; run < opts.runs + 1; run++) {
        // Interleaved; the first round of each image warms the page cache and is not counted.
        for (const tool of list) {
          const dir = path.join(tmp, `run-${round++}`);
          fs.mkdirSync(dir);
          spawnSync('sync');
          const ms = await tool.run(image.reference, dir);
          if (run > 0) {
            const key = `${image.name}\t${tool.name}`;
            results.set(key, [...(results.get(key) ?? []), ms]);
          }
          tool.cleanup?.(dir);
          fs.rmSync(dir, { recursive: true, force: true });
        }
      }
    }

    const lines = [];
    lines.push(`pull benchmark: ${opts.runs} runs per tool and image (after one warm-up), local docker-registry on ${host}, work dir ${opts.work}`);
    lines.push(`node ${process.version}, ${os.cpus().length} CPUs, ${os.release()}`);
    lines.push('');
    lines.push(`${'image'.padEnd(16)}${'tool'.padEnd(26)}${'median ms'.padStart(10)}${'min'.padStart(8)}${'max'.padStart(8)}${'vs skopeo+tar'.padStart(15)}`);
    for (const image of images) {
      const base = summarize(results.get(`${image.name}\tskopeo copy + tar -xzf`)).median;
      for (const tool of list) {
        const s = summarize(results.get(`${image.name}\t${tool.name}`));
        lines.push(`${image.name.padEnd(16)}${tool.name.padEnd(26)}${fmtMs(s.median).padStart(10)}${fmtMs(s.min).padStart(8)}${fmtMs(s.max).padStart(8)}${`${(s.median / base).toFixed(2)}x`.padStart(15)}`);
      }
    }
    lines.push('');
    for (const image of images) {
      const tsrun = summarize(results.get(`${image.name}\ttsrun pull`)).median;
      const skopeo = summarize(results.get(`${image.name}\tskopeo copy + tar -xzf`)).median;
      const ratio = tsrun / skopeo;
      const podmanLine = podman ? `, ${(tsrun / summarize(results.get(`${image.name}\tpodman pull`)).median).toFixed(2)}x podman pull` : ', podman n/a';
      lines.push(`${image.name}: tsrun pull+unpack is ${ratio.toFixed(2)}x skopeo copy + tar -xzf (target <= ${TARGET_RATIO}x: ${ratio <= TARGET_RATIO ? 'met' : 'NOT met'})${podmanLine}`);
    }
    if (!minbase) lines.push('debian-minbase: skipped (no bookworm-minbase.tar in the cache dir, and no mmdebstrap)');
    if (process.env.NODE_EXTRA_CA_CERTS) lines.push(`note: NODE_EXTRA_CA_CERTS is set here: every node start (so every tsrun pull) reads that bundle, ${fmtMs(await nodeStartCost())} ms more per start; the times above include it`);
    process.stdout.write(`${lines.join('\n')}\n`);
  } finally {
    await cleanup();
  }
}

main().catch((err) => {
  process.stderr.write(`pull.js: ${err.stack || err.message}\n`);
  process.exitCode = 1;
});
