import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';

/**
 * The workspace's module boundaries, checked from the sources (this repo keeps Nx plugin-free,
 * so this plays the part of an enforce-module-boundaries lint rule):
 * - every `@berth/<pkg>` a project imports is declared in its package.json, and production
 *   imports also as a TypeScript project reference (so `tsc -b` builds in the right order);
 * - tags: `scope:base` libraries use only base libraries; libraries never use apps or tools;
 *   `scope:testing` is for tests only; a `scope:example` plugin uses only @berth/plugin-sdk, and
 *   nothing in production uses it.
 */
const ROOT = join(__dirname, '..', '..', '..');

interface Project {
  dir: string;
  name: string;
  tags: string[];
  deps: Set<string>;
  devDeps: Set<string>;
  references: Set<string>;
}

function projects(): Map<string, Project> {
  const out = new Map<string, Project>();
  for (const group of ['packages', 'apps', 'tools']) {
    for (const entry of readdirSync(join(ROOT, group))) {
      const dir = join(ROOT, group, entry);
      const pj = join(dir, 'package.json');
      if (!existsSync(pj)) continue;
      const pkg = JSON.parse(readFileSync(pj, 'utf8'));
      const tsconfig = join(dir, 'tsconfig.json');
      const references = new Set<string>();
      if (existsSync(tsconfig)) {
        for (const r of JSON.parse(readFileSync(tsconfig, 'utf8')).references ?? []) references.add(join(dir, r.path));
      }
      out.set(pkg.name, {
        dir,
        name: pkg.name,
        tags: pkg.nx?.tags ?? [],
        deps: new Set(Object.keys(pkg.dependencies ?? {})),
        devDeps: new Set(Object.keys(pkg.devDependencies ?? {})),
        references,
      });
    }
  }
  return out;
}

function sources(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d)) {
      const p = join(d, e);
      if (statSync(p).isDirectory()) walk(p);
      else if (p.endsWith('.ts') && !p.endsWith('.d.ts')) out.push(p);
    }
  };
  if (existsSync(join(dir, 'src'))) walk(join(dir, 'src'));
  return out;
}

const IMPORT = /(?:import|export)\s[^'"]*?from\s+['"](@berth\/[a-z0-9-]+)(?:\/[a-z0-9-]+)?['"]|require\(\s*['"](@berth\/[a-z0-9-]+)(?:\/[a-z0-9-]+)?['"]\s*\)/g;

const isTest = (file: string) => /\.test\.ts$|test-(helpers?|support)\.ts$|testsuite\.ts$/.test(file);

describe('module boundaries', () => {
  const all = projects();
  const byDir = new Map([...all.values()].map((p) => [p.dir, p]));

  const cases = [...all.values()].flatMap((p) =>
    sources(p.dir).flatMap((file) => {
      const found: Array<[string, string, string, boolean]> = [];
      for (const m of readFileSync(file, 'utf8').matchAll(IMPORT)) {
        const target = m[1] ?? m[2];
        if (target !== p.name) found.push([p.name, relative(ROOT, file), target, isTest(file)]);
      }
      return found;
    }),
  );

  it('finds the imports it checks', () => {
    expect(cases.length).toBeGreaterThan(100);
  });

  it.each(cases)('%s: %s imports %s, which is declared', (name, _file, target, test) => {
    const p = all.get(name)!;
    const declared = p.deps.has(target) || (test && p.devDeps.has(target));
    expect({ target, declared }).toEqual({ target, declared: true });
    if (!test) {
      const dep = all.get(target);
      expect(dep).toBeDefined();
      const referenced = [...p.references].some((r) => byDir.get(r)?.name === target);
      expect({ target, referenced }).toEqual({ target, referenced: true });
    }
  });

  it.each(cases.filter(([, , , test]) => !test))('%s: %s may use %s (tags)', (name, _file, target) => {
    const from = all.get(name)!.tags;
    const to = all.get(target)?.tags ?? [];
    const problems: string[] = [];
    if (from.includes('type:lib') && (to.includes('type:app') || to.includes('type:tool'))) problems.push('a library uses an app or tool');
    if (from.includes('scope:base') && !to.includes('scope:base')) problems.push('a base library uses a non-base project');
    if (!from.includes('scope:testing') && !from.includes('type:tool') && to.includes('scope:testing')) problems.push('production code uses the test helpers');
    // An example plugin is written as a third party would: against the SDK alone.
    if (from.includes('scope:example') && target !== '@berth/plugin-sdk') problems.push('an example plugin uses more than @berth/plugin-sdk');
    if (to.includes('scope:example')) problems.push('production code uses an example');
    expect(problems).toEqual([]);
  });
});

/**
 * The metadata database's keys belong to @berth/metadata (schema.ts): other packages build them
 * with its key builders and read them with its parsers (parseObjectKey, parseNamespaceKey), never
 * by position, so the key tree can change in one place.
 */
describe('metadata keys are parsed only by @berth/metadata', () => {
  const POSITIONAL = /\b(?:key|k|lmdbKey)\s*\[\s*\d+\s*\]|\b(?:key|k)\.length\s*[!=]==/;
  const users = [...projects().values()]
    .filter((p) => p.name !== '@berth/metadata')
    .flatMap((p) => sources(p.dir).filter((f) => !isTest(f)))
    .filter((f) => /from\s+['"]@berth\/metadata['"]/.test(readFileSync(f, 'utf8')));

  it('finds the packages that read the metadata database', () => {
    expect(users.length).toBeGreaterThan(5);
  });

  it.each(users.map((f) => [relative(ROOT, f), f]))('%s reads no key by position', (_name, file) => {
    const lines = readFileSync(file, 'utf8')
      .split('\n')
      .map((l, i) => `${i + 1}: ${l.trim()}`)
      .filter((l) => POSITIONAL.test(l));
    expect(lines).toEqual([]);
  });
});
