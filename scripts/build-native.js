#!/usr/bin/env node
// Builds the addon with node-gyp against the running Node's own headers:
// node-gyp would otherwise download them, and only the npm registry is
// reachable on the hosts tsrun is built on.
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const prefix = path.dirname(path.dirname(process.execPath));
const args = [require.resolve('node-gyp/bin/node-gyp.js'), 'rebuild'];
if (fs.existsSync(path.join(prefix, 'include', 'node', 'node_api.h'))) args.push(`--nodedir=${prefix}`);
const result = spawnSync(process.execPath, args, { cwd: path.join(__dirname, '..'), stdio: 'inherit' });
process.exit(result.status ?? 1);
