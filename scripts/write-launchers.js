#!/usr/bin/env node
// Writes bin/tsrun and bin/tsrun-oci, the CLIs' launchers, for the node
// that runs this script. A `#!/usr/bin/env node` line costs every command
// an exec of env, its locale set-up and a PATH search (~3 ms on the
// benchmark host, a tenth of the CLI's start-up budget), so the launcher
// names its interpreter by absolute path, as Debian's policy asks of
// packaged scripts and as pip writes console scripts. A path a shebang
// cannot hold (whitespace, over 127 bytes) gets the env form. The build
// and npm's install script run this, so an installed copy points at its
// own machine's node; run it again after moving node or this copy of tsrun
// (a launcher also names its bundle and the native addon by absolute path,
// and holds the loader, scripts/cli-loader.js, itself).
// Usage: node scripts/write-launchers.js [DIR] (default: bin/)
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const { loadCli } = require('./cli-loader');

const LAUNCHERS = [
  {
    file: 'tsrun',
    about: 'The Docker-like CLI (src/cli/main.ts). The global options that take a value\n// (GLOBAL_OPTIONS there) let the loader find the command word.',
    bundle: 'tsrun',
    valueOptions: ['--root', '--state', '--log-level', '--log-format', '--log', '--config'],
  },
  {
    file: 'tsrun-oci',
    about: "The OCI runtime CLI with runc's command line (src/cli/oci/main.ts). The global\n// options that take a value let the loader find the command word.",
    bundle: 'tsrun-oci',
    valueOptions: ['--root', '--log', '--log-format', '--rootless', '--criu'],
  },
];

/** The interpreter line for `node`: its absolute path when a shebang can hold it. */
function shebang(node) {
  const direct = `#!${node}`;
  return /\s/.test(node) || Buffer.byteLength(direct) > 127 ? '#!/usr/bin/env node' : direct;
}

/** A launcher's text: `bundle` and `addon` are the absolute paths of the bundle it runs and of the native addon. */
function launcherText(node, about, bundle, valueOptions, addon) {
  return [
    shebang(node),
    "'use strict';",
    "// Written by scripts/write-launchers.js for this machine's node and this copy of tsrun.",
    `// ${about}`,
    `(${loadCli.toString()})(${JSON.stringify(bundle)}, ${JSON.stringify(valueOptions)}, ${JSON.stringify(addon)});`,
    '',
  ].join('\n');
}

function writeLaunchers(binDir) {
  // A clean checkout has no bin/: the launchers are all it holds.
  fs.mkdirSync(binDir, { recursive: true });
  const addon = path.resolve(__dirname, '..', 'build', 'Release', 'tsrun_native.node');
  for (const launcher of LAUNCHERS) {
    const bundle = path.resolve(__dirname, '..', 'dist', 'cli', `${launcher.bundle}.js`);
    const file = path.join(binDir, launcher.file);
    const tmp = `${file}.${process.pid}.tmp`;
    fs.writeFileSync(tmp, launcherText(process.execPath, launcher.about, bundle, launcher.valueOptions, addon), { mode: 0o755 });
    fs.chmodSync(tmp, 0o755);
    fs.renameSync(tmp, file);
  }
}

if (require.main === module) writeLaunchers(process.argv[2] ?? path.join(__dirname, '..', 'bin'));

module.exports = { launcherText };
