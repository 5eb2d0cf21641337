// Records the git revision of the build in dist/revision.json for the Version API.
const { execFileSync } = require('node:child_process');
const { writeFileSync, mkdirSync } = require('node:fs');
const { join } = require('node:path');
let revision = 'unknown';
try {
  revision = execFileSync('git', ['rev-parse', 'HEAD'], { cwd: __dirname, stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim();
  const dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], { cwd: __dirname, stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim();
  if (dirty) revision += '.m';
} catch {
  // Not a git checkout: leave "unknown".
}
mkdirSync(join(__dirname, '..', 'dist'), { recursive: true });
writeFileSync(join(__dirname, '..', 'dist', 'revision.json'), JSON.stringify({ revision }) + '\n');
