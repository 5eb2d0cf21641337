// Bundles berthd (dist/main.js and the packages it loads, as tsc built them) into dist/berthd.js,
// the file bin/berthd runs. One file instead of about 440 spares the start the module lookups
// (package.json reads, stats, realpaths), which took most of its time; see tools/bench/README.md.
//
// It bundles tsc's output, not the TypeScript sources: tsyringe reads the decorator metadata tsc
// emits, which esbuild does not. What a plugin module shares with the daemon (@berth/plugin and
// what it loads) is bundled too, and handed to plugin modules by src/shared-modules.ts. Left out,
// and loaded from node_modules as before:
// - the code cache, which bin/berthd installs before the bundle compiles;
// - @berth/plugin's native-import.js, the one file that calls import(): the code cache leaves
//   such a file to Node (a script compiled from cached data cannot import on Node 20), and the
//   bundle must not be one;
// - native addons and what wraps them (lmdb loads its binary relative to its own files);
// - what loads only on demand (prom-client with [metrics], undici on a first pull, grpc-js's
//   proto-loader).
const { build } = require('esbuild');
const { readFileSync, realpathSync, writeFileSync } = require('node:fs');
const { dirname, join, relative } = require('node:path');

const APP = join(__dirname, '..');
const OUT = join(APP, 'dist', 'berthd.js');

const CODE_CACHE = ['@berth/compile-cache'];
const NATIVE = ['lmdb', 'msgpackr', 'msgpackr-extract'];
// @grpc/proto-loader: grpc-js loads it for channelz and ORCA, which berthd does not serve.
const ON_DEMAND = ['prom-client', 'undici', '@grpc/proto-loader'];
const EXTERNAL = [...CODE_CACHE, ...NATIVE, ...ON_DEMAND];

/**
 * Gives each bundled module that reads `__dirname` or `__filename` its own file's values (a
 * worker script beside it, a package.json above it), as paths relative to the bundle, so that
 * the checkout can move.
 */
const ownPaths = {
  name: 'own-paths',
  setup(build) {
    build.onLoad({ filter: /\.c?js$/ }, (args) => {
      const source = readFileSync(args.path, 'utf8');
      if (!/\b__(dirname|filename)\b/.test(source)) return undefined;
      const file = relative(dirname(OUT), realpathSync(args.path));
      const prelude = `var __filename = require("node:path").join(__berthBundleDir, ${JSON.stringify(file)}), __dirname = require("node:path").dirname(__filename);\n`;
      return { contents: prelude + source, loader: 'js' };
    });
  },
};

/** Leaves files that call `import()` out of the bundle, required by their path from it. */
const dynamicImports = {
  name: 'dynamic-imports',
  setup(build) {
    build.onResolve({ filter: /^\.\/native-import$/ }, (args) => {
      const file = realpathSync(join(args.resolveDir, 'native-import.js'));
      return { path: `./${relative(dirname(OUT), file)}`, external: true };
    });
  },
};

/** Builds dist/berthd.js and its source map; resolves to esbuild's metafile. */
async function bundle() {
  const result = await build({
    entryPoints: [join(APP, 'dist', 'main.js')],
    outfile: OUT,
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node20',
    external: EXTERNAL.flatMap((name) => [name, `${name}/*`]),
    // Names and layout kept (no minifying): a logged stack trace names functions as the sources do.
    sourcemap: 'linked',
    sourcesContent: false,
    banner: { js: 'const __berthBundleDir = __dirname;' },
    plugins: [dynamicImports, ownPaths],
    metafile: true,
    logLevel: 'warning',
  });
  latin1(OUT);
  return result.metafile;
}

/**
 * Escapes the characters above U+00FF that esbuild leaves in comments and regular expressions
 * (`μs`, `…`). One of them makes V8 hold the whole source, which it keeps for lazy compiling,
 * at two bytes a character: 5.4 MB instead of 2.7. A `\uXXXX` escape means the same character
 * in a comment, a string, a template or a regular expression; a tagged template's raw text
 * would see the escape, and the bundle has none with such a character.
 */
function latin1(file) {
  const source = readFileSync(file, 'utf8');
  const escaped = source.replace(/[\u0100-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  if (escaped !== source) writeFileSync(file, escaped);
}

module.exports = { EXTERNAL, bundle };

if (require.main === module) {
  bundle().catch((err) => {
    process.stderr.write(`bundle: ${err.message}\n`);
    process.exit(1);
  });
}
