// Runs jest with the given arguments and ends with one plain summary line
// ("jest: N passed, N failed, N skipped") that CI can read whatever reporter is in use.
const { spawnSync } = require('node:child_process');
const { mkdtempSync, readFileSync, rmSync } = require('node:fs');
const { tmpdir } = require('node:os');
const { join } = require('node:path');

const dir = mkdtempSync(join(tmpdir(), 'berth-jest-'));
const out = join(dir, 'results.json');
const jest = require.resolve('jest/bin/jest');
const res = spawnSync(process.execPath, [jest, ...process.argv.slice(2), '--json', `--outputFile=${out}`], { stdio: 'inherit' });
let code = res.status ?? 1;
try {
  const r = JSON.parse(readFileSync(out, 'utf8'));
  const skipped = r.numPendingTests + r.numTodoTests;
  console.log(`jest: ${r.numPassedTests} passed, ${r.numFailedTests} failed, ${skipped} skipped`);
  if (r.numTotalTests === 0) code = code || 1;
} catch {
  console.log('jest: 0 passed, 1 failed');
  code = code || 1;
} finally {
  rmSync(dir, { recursive: true, force: true });
}
process.exit(code);
