// Runs a bundled CLI (dist/cli/NAME.js) through V8's code cache. Compiling
// the bundle's functions is a large part of start-up; the cache holds them
// already compiled. It is written after the first command (and again
// whenever V8 rejects it, e.g. after a Node upgrade), and is only an
// optimisation: when it cannot be read or written, the CLI runs the same,
// only slower.
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const vm = require('node:vm');
const Module = require('node:module');

module.exports = function runBundle(name) {
  const bundle = path.join(__dirname, '..', 'dist', 'cli', `${name}.js`);
  const cacheFile = `${bundle}.cache`;

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

  cli.exports.main(process.argv).then(saveCodeCache);
};
