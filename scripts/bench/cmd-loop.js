'use strict';
// Times a command run N times in sequence, for scripts/bench/start.js when
// hyperfine is not installed. Usage: node cmd-loop.js '<json>'
// json: { argv: [...], runs, warmup, idPrefix } — "{id}" in argv is replaced
// by a fresh id per run. Prints { times: [ms...] } on stdout; exits 1 (with
// the command's stderr) as soon as one run fails.
const { spawnSync } = require('node:child_process');

const { argv, runs, warmup, idPrefix = 'run' } = JSON.parse(process.argv[2]);
const times = [];
for (let i = 0; i < warmup + runs; i++) {
  const id = i < warmup ? `${idPrefix}w${i}` : `${idPrefix}${i - warmup}`;
  const args = argv.map((a) => a.split('{id}').join(id));
  const t0 = process.hrtime.bigint();
  const r = spawnSync(args[0], args.slice(1), { stdio: ['ignore', 'ignore', 'pipe'] });
  const t1 = process.hrtime.bigint();
  if (r.error || r.status !== 0) {
    process.stderr.write(r.error ? `${r.error.message}\n` : r.stderr);
    process.stderr.write(`cmd-loop: ${args.join(' ')} failed (status ${r.status}, signal ${r.signal})\n`);
    process.exit(1);
  }
  if (i >= warmup) times.push(Number(t1 - t0) / 1e6);
}
process.stdout.write(`${JSON.stringify({ times })}\n`);
