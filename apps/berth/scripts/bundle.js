// Bundles the berth CLI (dist/main.js and what it loads, as tsc built them) into dist/berth.js,
// the file bin/berth runs. One file spares each run the module lookups (package.json reads,
// stats, realpaths) of about 150 files: measured here, `berth version` takes 0.24-0.27 s of CPU
// from the bundle against 0.32-0.35 s from the separate files. Requires made inside functions
// stay lazy in the bundle (a command that prints help never runs the gRPC stack's modules).
const { buildSync } = require('esbuild');
const { join } = require('node:path');

const APP = join(__dirname, '..');

// berth-quick.js is `berth version` alone (see src/quick.ts): a bundle of a few kB, where
// berth.js holds the whole command tree and the gRPC stack (2.5 MB, about 70 ms to compile).
for (const [entry, out] of [
  ['main.js', 'berth.js'],
  ['quick.js', 'berth-quick.js'],
]) {
  buildSync({
    entryPoints: [join(APP, 'dist', entry)],
    outfile: join(APP, 'dist', out),
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node20',
    sourcemap: true,
    logLevel: 'warning',
  });
}
