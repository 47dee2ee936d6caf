'use strict';
// The two checks yargs makes of its own invariants (shim.assert), without
// loading node:assert, whose first load costs the CLI ~6 ms at every start.
// Bundled in place of `assert` for yargs only (scripts/build-cli.js).
function check(ok, actual, expected, operator, message) {
  if (ok) return;
  const error = new Error(message ?? `Expected ${String(actual)} ${operator} ${String(expected)}`);
  error.code = 'ERR_ASSERTION';
  throw error;
}

exports.strictEqual = (actual, expected, message) => check(Object.is(actual, expected), actual, expected, '===', message);
exports.notStrictEqual = (actual, expected, message) => check(!Object.is(actual, expected), actual, expected, '!==', message);
