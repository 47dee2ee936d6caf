#!/usr/bin/env node
// Bundles the compiled CLI (dist/cli/main.js and everything it imports,
// yargs and pino included) into one file, dist/cli/tsrun.js. Resolving and
// reading ~150 modules one by one is a third of `tsrun run`'s start-up; the
// library (dist/index.js) stays unbundled.
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const esbuild = require('esbuild');

const root = path.join(__dirname, '..');

/** yargs's `require("assert")` gets scripts/cli-shims/assert.js; everything else keeps node:assert. */
const yargsAssertShim = {
  name: 'yargs-assert-shim',
  setup(build) {
    build.onResolve({ filter: /^assert$/ }, (args) =>
      args.importer.includes(`${path.sep}node_modules${path.sep}yargs${path.sep}`) ? { path: path.join(__dirname, 'cli-shims', 'assert.js') } : undefined,
    );
  },
};
/**
 * yargs reads process.stdout.columns when it loads, and creating
 * process.stdout costs every command a few milliseconds (the stream
 * modules) even when it prints nothing, as `run` does with inherited stdio.
 * The shim's stdColumns becomes a getter, read only when help is wrapped.
 */
const YARGS_EAGER_COLUMNS = 'stdColumns:void 0!==process.stdout.columns?process.stdout.columns:null';
const yargsLazyColumns = {
  name: 'yargs-lazy-columns',
  setup(build) {
    build.onLoad({ filter: /[\\/]node_modules[\\/]yargs[\\/]build[\\/]index\.cjs$/ }, (args) => {
      const source = fs.readFileSync(args.path, 'utf8');
      if (!source.includes(YARGS_EAGER_COLUMNS)) {
        return { errors: [{ text: `yargs-lazy-columns: ${args.path} no longer holds "${YARGS_EAGER_COLUMNS}"; update the patch for this yargs version` }] };
      }
      return { contents: source.replace(YARGS_EAGER_COLUMNS, 'get stdColumns(){return void 0!==process.stdout.columns?process.stdout.columns:null}'), loader: 'js' };
    });
  },
};
const bundles = [
  { entry: path.join(root, 'dist', 'cli', 'main.js'), outfile: path.join(root, 'dist', 'cli', 'tsrun.js') },
  { entry: path.join(root, 'dist', 'cli', 'oci', 'main.js'), outfile: path.join(root, 'dist', 'cli', 'tsrun-oci.js') },
];
Promise.all(
  bundles.map(({ entry, outfile }) => {
    // V8 checks a code cache against the source's length, not its content:
    // no cache of the previous bundle may outlive it (see bin/run-bundle.js).
    const dir = path.dirname(outfile);
    const caches = new RegExp(`^${path.basename(outfile).replace(/\./g, '\\.')}\\.(.+\\.)?cache$`);
    for (const file of fs.readdirSync(dir)) if (caches.test(file)) fs.rmSync(path.join(dir, file), { force: true });
    return esbuild.build({
      entryPoints: [entry],
      outfile,
      bundle: true,
      platform: 'node',
      target: 'node20',
      format: 'cjs',
      minify: true,
      sourcemap: true,
      logLevel: 'warning',
      plugins: [yargsAssertShim, yargsLazyColumns],
    });
  }),
).catch(() => process.exit(1));
