// Runs a bundled CLI (dist/cli/NAME.js) through V8's code cache. Compiling
// the bundle's functions is a large part of start-up; the cache holds them
// already compiled. V8 compiles a function when it first runs, so a cache
// holds what the command that wrote it ran: each command gets its own
// (dist/cli/NAME.js.COMMAND.cache), written after its first run that
// succeeded and did no one-time work (and again whenever V8 rejects it, e.g.
// after a Node upgrade): a usage error or a failed start runs a fraction of
// the command's code, and a cache written then would leave the rest to be
// compiled at every later start. It is only an optimisation: when it
// cannot be read or written, or the command word is guessed wrong, the CLI
// runs the same, only slower.
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const vm = require('node:vm');
const Module = require('node:module');

/** The command word, after the global options; `valueOptions` are those that take a separate value. */
function commandWord(args, valueOptions) {
  for (let i = 0; i < args.length; i++) {
    if (valueOptions.includes(args[i])) i++;
    else if (!args[i].startsWith('-')) return /^[a-z][a-z0-9-]{0,31}$/.test(args[i]) ? args[i] : 'other';
  }
  return 'none';
}

module.exports = function runBundle(name, valueOptions) {
  const bundle = path.join(__dirname, '..', 'dist', 'cli', `${name}.js`);
  const cacheFile = `${bundle}.${commandWord(process.argv.slice(2), valueOptions)}.cache`;

  let cachedData;
  try {
    cachedData = fs.readFileSync(cacheFile);
  } catch {
    cachedData = undefined;
  }
  const script = new vm.Script(Module.wrap(fs.readFileSync(bundle, 'utf8')), { filename: bundle, cachedData });
  const cli = { exports: {} };
  script.runInThisContext().call(cli.exports, cli.exports, Module.createRequire(bundle), cli, bundle, path.dirname(bundle));

  function saveCodeCache() {
    if (cachedData && !script.cachedDataRejected) return;
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
  cli.exports.main(process.argv).then((steadyState) => {
    if (steadyState && !process.exitCode) saveCodeCache();
  });
};
