// The CLIs' loader. scripts/write-launchers.js copies loadCli's source into
// each launcher (bin/tsrun, bin/tsrun-oci), so that a start loads no module
// of its own before the bundle: a require() of a separate loader file cost
// ~1.5 ms of every start (resolving, reading and compiling it), and its
// path calls were enough to make V8 optimize path's normalizeString on a
// background thread, ~3 ms more before the process could exit.
'use strict';

/**
 * Runs a bundled CLI (dist/cli/NAME.js) through V8's code cache. Compiling
 * the bundle's functions is a large part of start-up; the cache holds them
 * already compiled. V8 compiles a function when it first runs, so a cache
 * holds what the command that wrote it ran: each command gets its own
 * (dist/cli/NAME.js.COMMAND.cache), written after its first run that
 * succeeded and did no one-time work (and again whenever V8 rejects it, e.g.
 * after a Node upgrade): a usage error or a failed start runs a fraction of
 * the command's code, and a cache written then would leave the rest to be
 * compiled at every later start. It is only an optimisation: when it
 * cannot be read or written, or the command word is guessed wrong, the CLI
 * runs the same, only slower.
 *
 * `bundle` is an absolute path; the bundle is one function expression of
 * CommonJS's module parameters (scripts/build-cli.js), which Node's own
 * wrapping would have copied (450 KiB) to compile. `valueOptions` are the
 * global options that take a separate value, for finding the command word.
 * `addon` is the native addon's path: it reads the bundle into a string V8
 * uses without a copy of its own and maps the cache (native/file_map.cc),
 * and the CLI then uses it rather than loading it again; without it, fs
 * reads both. A launcher holds this function alone: it uses nothing else
 * from this file.
 */
function loadCli(bundle, valueOptions, addon) {
  const fs = require('node:fs');
  const vm = require('node:vm');
  const Module = require('node:module');

  let native;
  try {
    const loaded = { exports: {} };
    process.dlopen(loaded, addon);
    native = loaded.exports;
  } catch {
    native = undefined;
  }
  const files = typeof native?.readOneByteString === 'function' ? native : undefined;

  const args = process.argv.slice(2);
  let command = 'none';
  for (let i = 0; i < args.length; i++) {
    if (valueOptions.includes(args[i])) i++;
    else if (!args[i].startsWith('-')) {
      command = /^[a-z][a-z0-9-]{0,31}$/.test(args[i]) ? args[i] : 'other';
      break;
    }
  }
  const cacheFile = `${bundle}.${command}.cache`;

  let cachedData;
  try {
    cachedData = files ? files.mapReadOnly(cacheFile) : fs.readFileSync(cacheFile);
  } catch {
    cachedData = undefined;
  }
  const script = new vm.Script(files ? files.readOneByteString(bundle) : fs.readFileSync(bundle, 'utf8'), { filename: bundle, cachedData });
  // V8 has copied what it needed; the mapping goes with the array.
  const hadCache = cachedData !== undefined;
  cachedData = undefined;
  const cli = { exports: {} };
  script.runInThisContext().call(cli.exports, cli.exports, Module.createRequire(bundle), cli, bundle, bundle.slice(0, bundle.lastIndexOf('/')));

  function saveCodeCache() {
    if (hadCache && !script.cachedDataRejected) return;
    const tmp = `${cacheFile}.${process.pid}.tmp`;
    try {
      fs.writeFileSync(tmp, script.createCachedData());
      fs.renameSync(tmp, cacheFile);
    } catch {
      fs.rmSync(tmp, { force: true });
    }
  }

  // main resolves to false after one-time work (a seccomp program compiled
  // for the shared cache, say); a failure sets process.exitCode.
  cli.exports.main(process.argv, native).then((steadyState) => {
    if (steadyState && !process.exitCode) saveCodeCache();
  });
}

module.exports = { loadCli };
