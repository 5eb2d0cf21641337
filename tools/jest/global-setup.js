// Tests that start a real berthd run the built daemon (apps/berthd/bin/berthd, which runs the
// bundle dist/berthd.js). Bring the build up to date first so a test never runs stale code; tsc -b
// is incremental, a no-op build takes ~1 s, the bundle about 0.5 s more.
const { execFileSync } = require('node:child_process');
const { join } = require('node:path');

module.exports = async function globalSetup() {
  // Read here, put back by global-teardown.js.
  try {
    globalThis.__berthIpForward = require('node:fs').readFileSync('/proc/sys/net/ipv4/ip_forward', 'utf8').trim();
  } catch {
    globalThis.__berthIpForward = undefined;
  }
  const root = join(__dirname, '..', '..');
  execFileSync(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-b', 'apps/berthd', 'apps/berth', 'packages/testing', 'packages/example-plugin', 'tools/fixtures'], { cwd: root, stdio: 'inherit' });
  execFileSync(process.execPath, [join(root, 'apps/berthd/scripts/stamp-revision.js')], { cwd: root, stdio: 'inherit' });
  execFileSync(process.execPath, [join(root, 'apps/berthd/scripts/bundle.js')], { cwd: root, stdio: 'inherit' });
  execFileSync(process.execPath, [join(root, 'apps/berth/scripts/bundle.js')], { cwd: root, stdio: 'inherit' });
};
