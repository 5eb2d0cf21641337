import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { BUSYBOX_IMAGE, buildBusyboxImage } from '@berth/fixtures';
import { unmountAll } from '@berth/mount';
import { tempDir } from '@berth/testing';
import * as ts from 'typescript';

const REPO = resolve(__dirname, '../../..');

/** The @berth packages `names` need, themselves included. */
function closure(names: readonly string[]): string[] {
  const seen = new Set<string>();
  const todo = [...names];
  while (todo.length > 0) {
    const n = todo.pop()!;
    if (seen.has(n)) continue;
    seen.add(n);
    const pkg = JSON.parse(readFileSync(join(REPO, 'packages', n, 'package.json'), 'utf8'));
    for (const d of Object.keys(pkg.dependencies ?? {})) if (d.startsWith('@berth/')) todo.push(d.slice('@berth/'.length));
  }
  return [...seen].sort();
}

type LockEntry = { dependencies?: Record<string, string>; optionalDependencies?: Record<string, string>; peerDependencies?: Record<string, string>; link?: boolean };

/**
 * A lockfile for an app that depends on the packed tarballs, with the third-party packages they
 * need pinned as the workspace's lockfile pins them: `npm ci --offline` then installs from npm's
 * cache, so the test needs no registry.
 */
function lockFor(tarballs: Record<string, string>): { pkg: object; lock: object } {
  const ws = JSON.parse(readFileSync(join(REPO, 'package-lock.json'), 'utf8')).packages as Record<string, LockEntry>;
  const packages: Record<string, unknown> = { '': { name: 'packed-app', version: '1.0.0', dependencies: {} as Record<string, string> } };
  const stack: Array<[string, string]> = [];
  for (const [name, file] of Object.entries(tarballs)) {
    const entry = ws[`packages/${name}`];
    (packages[''] as { dependencies: Record<string, string> }).dependencies[`@berth/${name}`] = `file:${file}`;
    packages[`node_modules/@berth/${name}`] = { version: '0.1.0', resolved: `file:${file}`, license: 'Apache-2.0', dependencies: entry.dependencies };
    for (const d of Object.keys(entry.dependencies ?? {})) if (!d.startsWith('@berth/')) stack.push(['', d]);
  }
  // Node's lookup: <from>/node_modules/<dep>, then up the tree.
  const find = (from: string, dep: string): string | undefined => {
    for (let base = from; ; ) {
      const key = `${base ? `${base}/` : ''}node_modules/${dep}`;
      if (ws[key]) return key;
      if (!base) return undefined;
      const i = base.lastIndexOf('/node_modules/');
      base = i >= 0 ? base.slice(0, i) : '';
    }
  };
  while (stack.length > 0) {
    const [from, dep] = stack.pop()!;
    const key = find(from, dep);
    if (!key || packages[key] || ws[key].link) continue;
    packages[key] = ws[key];
    const e = ws[key];
    for (const d of [...Object.keys(e.dependencies ?? {}), ...Object.keys(e.optionalDependencies ?? {}), ...Object.keys(e.peerDependencies ?? {})]) stack.push([key, d]);
  }
  const root = packages[''] as { dependencies: Record<string, string> };
  return {
    pkg: { name: 'packed-app', version: '1.0.0', private: true, dependencies: root.dependencies },
    lock: { name: 'packed-app', version: '1.0.0', lockfileVersion: 3, requires: true, packages },
  };
}

/**
 * Library mode, as a user outside the workspace gets it: `npm pack` of the packages the images
 * README example needs, `npm ci` of the tarballs into a fresh folder under /tmp, and the
 * example run there (compiled to JavaScript as printed), resolving @berth/* from that folder only.
 */
describe('packed packages installed outside the workspace', () => {
  const work = tempDir('berth-packed-');

  afterAll(async () => {
    await unmountAll(work.path, { lazyFallback: true });
    work.remove();
  });

  it('run the content + images example', async () => {
    const names = closure(['content', 'context', 'diff', 'images', 'mount', 'snapshots']);
    const packDir = join(work.path, 'pack');
    const app = join(work.path, 'app');
    execFileSync('mkdir', ['-p', packDir, app]);
    const tarballs: Record<string, string> = {};
    for (const n of names) {
      const out = execFileSync('npm', ['pack', '--silent', '--pack-destination', packDir], { cwd: join(REPO, 'packages', n) }).toString().trim().split('\n').pop()!;
      tarballs[n] = join('..', 'pack', out);
    }
    const listed = execFileSync('tar', ['tzf', join(packDir, 'berth-content-0.1.0.tgz')]).toString();
    expect(listed).toContain('package/dist/index.d.ts');
    expect(listed).not.toMatch(/package\/src\/|tsbuildinfo|\.test\.js/);

    const { pkg, lock } = lockFor(tarballs);
    writeFileSync(join(app, 'package.json'), JSON.stringify(pkg, null, 2));
    writeFileSync(join(app, 'package-lock.json'), JSON.stringify(lock, null, 2));
    execFileSync('npm', ['ci', '--offline', '--no-audit', '--no-fund', '--loglevel=error'], { cwd: app, stdio: 'pipe' });
    expect(readdirSync(join(app, 'node_modules/@berth')).sort()).toEqual(names);

    const example = readFileSync(join(REPO, 'packages/images/examples/unpack-tarball.ts'), 'utf8');
    const js = ts.transpileModule(example, { compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2022, esModuleInterop: true } });
    writeFileSync(join(app, 'unpack-tarball.js'), js.outputText);
    writeFileSync(
      join(app, 'run.js'),
      `const { unpackTarball } = require('./unpack-tarball.js');
const { statSync } = require('node:fs');
const [tar, root, rootfs] = process.argv.slice(2);
unpackTarball(tar, root, rootfs).then((name) => {
  const mode = (statSync(rootfs + '/bin/busybox').mode & 0o777).toString(8);
  const outside = Object.keys(require.cache).filter((k) => k.includes('/@berth/') && !k.startsWith(__dirname));
  process.stdout.write(JSON.stringify({ name, mode, outside }));
});
`,
    );
    const tar = await buildBusyboxImage(join(work.path, 'fixtures'));
    const out = execFileSync(process.execPath, ['run.js', tar, join(work.path, 'root'), join(work.path, 'rootfs')], { cwd: app }).toString();
    expect(JSON.parse(out)).toEqual({ name: BUSYBOX_IMAGE, mode: '755', outside: [] });
  }, 180_000);
});
