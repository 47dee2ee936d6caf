'use strict';
// Times commands run N times each, for scripts/bench/start.js: when
// hyperfine is not installed, and to time two commands in alternation (a
// round runs each once, the order flipped every other round), so that both
// meet the same host. Usage: node cmd-loop.js '<json>'
// json: { commands: [[argv...], ...], runs, warmup, idPrefix } — "{id}" in an
// argv is replaced by a fresh id per run. Prints { times: [[ms...], ...] }
// (one list per command) on stdout; exits 1 (with the command's stderr) as
// soon as one run fails.
const { spawnSync } = require('node:child_process');

const { commands, runs, warmup, idPrefix = 'run' } = JSON.parse(process.argv[2]);
const times = commands.map(() => []);
for (let round = 0; round < warmup + runs; round++) {
  const id = round < warmup ? `${idPrefix}w${round}` : `${idPrefix}${round - warmup}`;
  const order = commands.map((_, i) => i);
  if (round % 2 === 1) order.reverse();
  for (const c of order) {
    const args = commands[c].map((a) => a.split('{id}').join(commands.length > 1 ? `${id}-${c}` : id));
    const t0 = process.hrtime.bigint();
    const r = spawnSync(args[0], args.slice(1), { stdio: ['ignore', 'ignore', 'pipe'] });
    const t1 = process.hrtime.bigint();
    if (r.error || r.status !== 0) {
      process.stderr.write(r.error ? `${r.error.message}\n` : r.stderr);
      process.stderr.write(`cmd-loop: ${args.join(' ')} failed (status ${r.status}, signal ${r.signal})\n`);
      process.exit(1);
    }
    if (round >= warmup) times[c].push(Number(t1 - t0) / 1e6);
  }
}
process.stdout.write(`${JSON.stringify({ times })}\n`);
