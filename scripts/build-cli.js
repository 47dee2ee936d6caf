#!/usr/bin/env node
// Bundles each compiled CLI (dist/cli/main.js, dist/cli/oci/main.js) and
// everything it imports into one file, dist/cli/tsrun.js and
// tsrun-oci.js. Resolving and reading ~150 modules one by one is a third of
// `tsrun run`'s start-up; the library (dist/index.js) stays unbundled.
// What a CLI loads only on a slow path stays out of its bundle, whose
// every byte each start reads: pino (loaded by the first log record that
// passes the level) for both, and for tsrun, yargs (loaded for --help, a
// usage error or a command line the fast parse leaves to it; see
// src/cli/argv.ts), 180 KiB together. tsrun-oci parses every command line
// with yargs, so it keeps yargs, with the edits below. Each bundle is one
// function expression of CommonJS's module parameters, run by the loader in
// its launcher (scripts/cli-loader.js), not by require(), and ASCII only:
// the loader reads it as a one-byte string, byte for character.
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
 * Two edits to the yargs bundled in tsrun-oci, which containerd and podman
 * start for every container operation; each must find its text, or the
 * build fails and names it.
 * - yargs reads process.stdout.columns when it loads, and creating
 *   process.stdout costs every command a few milliseconds (the stream
 *   modules) even when it prints nothing. The shim's stdColumns becomes a
 *   getter, read only when help is wrapped.
 * - argsert, which checks the arguments of each yargs API call against a
 *   signature string it parses anew every time, only ever warns (it catches
 *   its own error); over the ~90 options of tsrun's `run` it was 6 M of the
 *   parse's 37 M instructions. tsc checks those calls already, so it does
 *   nothing here.
 */
const YARGS_PATCHES = [
  {
    name: 'lazy stdout columns',
    from: /stdColumns:void 0!==process\.stdout\.columns\?process\.stdout\.columns:null/,
    to: 'get stdColumns(){return void 0!==process.stdout.columns?process.stdout.columns:null}',
  },
  {
    name: 'argsert does nothing',
    from: /function h\(t,s,i\)\{try\{let n=0;.*?catch\(t\)\{console\.warn\(t\.stack\)\}\}/,
    to: 'function h(){}',
  },
];
const yargsPatches = {
  name: 'yargs-patches',
  setup(build) {
    build.onLoad({ filter: /[\\/]node_modules[\\/]yargs[\\/]build[\\/]index\.cjs$/ }, (args) => {
      let source = fs.readFileSync(args.path, 'utf8');
      for (const patch of YARGS_PATCHES) {
        if (!patch.from.test(source)) return { errors: [{ text: `yargs patch "${patch.name}": ${args.path} no longer matches ${patch.from}; update it for this yargs version` }] };
        source = source.replace(patch.from, patch.to);
      }
      return { contents: source, loader: 'js' };
    });
  },
};
const bundles = [
  { entry: path.join(root, 'dist', 'cli', 'main.js'), outfile: path.join(root, 'dist', 'cli', 'tsrun.js'), external: ['pino', 'yargs', 'yargs/*', 'yargs-parser'] },
  { entry: path.join(root, 'dist', 'cli', 'oci', 'main.js'), outfile: path.join(root, 'dist', 'cli', 'tsrun-oci.js'), external: ['pino'] },
];
Promise.all(
  bundles.map(({ entry, outfile, external }) => {
    // V8 checks a code cache against the source's length, not its content:
    // no cache of the previous bundle may outlive it (see scripts/cli-loader.js).
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
      external,
      minify: true,
      sourcemap: true,
      banner: { js: '(function (exports, require, module, __filename, __dirname) {' },
      footer: { js: '\n})' },
      logLevel: 'warning',
      plugins: [yargsAssertShim, yargsPatches],
    }).then(() => {
      const bytes = fs.readFileSync(outfile);
      const offset = bytes.findIndex((byte) => byte > 0x7f);
      if (offset >= 0) {
        // esbuild escapes strings and identifiers, not regular expressions' text.
        const context = bytes.subarray(Math.max(0, offset - 40), offset + 20).toString();
        throw new Error(`${outfile}: a byte outside ASCII at offset ${offset} (...${context}...); write it as an escape in the source`);
      }
    });
  }),
).catch((err) => {
  if (err?.message) process.stderr.write(`build-cli: ${err.message}\n`);
  process.exit(1);
});
