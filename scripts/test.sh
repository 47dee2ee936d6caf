#!/usr/bin/env bash
# Runs every test from a fresh clone: installs what is missing (apt packages,
# npm dependencies, the build), then the type check and jest. Ends with
# jest's totals on one line, `N passed, N failed, N skipped`.
# Usage: sudo scripts/test.sh [JEST ARGS...]
set -uo pipefail
cd "$(dirname -- "${BASH_SOURCE[0]}")/.."

# npm test builds; setup only installs.
scripts/setup.sh --no-build || { echo "0 passed, 0 failed, 0 skipped (setup failed)"; exit 1; }

results=$(mktemp -d)
trap 'rm -rf -- "$results"' EXIT
npm test -- --json --outputFile="$results/jest.json" "$@"
status=$?

node - "$results/jest.json" <<'NODE' || status=1
const fs = require('node:fs');
let report;
try {
  report = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
} catch {
  console.log('0 passed, 0 failed, 0 skipped (jest did not report: the build or the type check failed)');
  process.exit(1);
}
// A test file that cannot even load counts as a failure, not as nothing.
const brokenFiles = report.testResults.filter((file) => file.status === 'failed' && file.assertionResults.length === 0).length;
const skipped = report.numPendingTests + report.numTodoTests;
console.log(`${report.numPassedTests} passed, ${report.numFailedTests + brokenFiles} failed, ${skipped} skipped`);
process.exit(report.numTotalTests > 0 && report.success ? 0 : 1);
NODE
exit $status
