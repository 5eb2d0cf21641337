import { readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { type Project, ROOT, importsOf, isTest, parseEdges, problems, projects, sources } from './rules';

/**
 * The workspace's module boundaries, checked from the sources (this repo keeps Nx plugin-free,
 * so this plays the part of an enforce-module-boundaries lint rule):
 * - every `@berth/<pkg>` a project imports is declared in its package.json, and production
 *   imports also as a TypeScript project reference (so `tsc -b` builds in the right order);
 * - tags: `scope:base` libraries use only base libraries; libraries never use apps or tools;
 *   `scope:testing` is for tests only; a `scope:example` plugin uses only @berth/plugin-sdk, and
 *   nothing in production uses it;
 * - subsystems: `scope:metadata` uses none, and a `scope:subsystem` package uses another only
 *   along an edge of the table in ARCHITECTURE.md (the rules themselves are in rules.ts).
 */
const EDGES = parseEdges(readFileSync(join(ROOT, 'ARCHITECTURE.md'), 'utf8'));

describe('module boundaries', () => {
  const all = projects();
  const byDir = new Map([...all.values()].map((p) => [p.dir, p]));

  const cases = [...all.values()].flatMap((p) =>
    sources(p.dir).flatMap((file) => {
      const found: Array<[string, string, string, boolean]> = [];
      for (const target of importsOf(readFileSync(file, 'utf8'))) {
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

  it.each(cases.filter(([, , , test]) => !test))('%s: %s may use %s (tags, subsystem edges)', (name, _file, target) => {
    expect(problems(all.get(name)!, target, all.get(target), EDGES)).toEqual([]);
  });

  it('uses every subsystem edge ARCHITECTURE.md declares, and declares a row for every subsystem', () => {
    const used = new Set(cases.filter(([, , , test]) => !test).map(([from, , to]) => `${from} -> ${to}`));
    const unused = [...EDGES].flatMap(([from, tos]) => [...tos].filter((to) => !used.has(`${from} -> ${to}`)).map((to) => `${from} -> ${to}`));
    expect(unused).toEqual([]);
    const subsystems = [...all.values()].filter((p) => p.tags.includes('scope:subsystem')).map((p) => p.name);
    expect(subsystems.filter((n) => !EDGES.has(n))).toEqual([]);
    expect([...EDGES.keys()].filter((n) => !subsystems.includes(n))).toEqual([]);
  });
});

describe('the boundary rules catch violations', () => {
  const lib = (name: string, scope: string): Project => ({ dir: '', name, tags: ['type:lib', scope], deps: new Set(), devDeps: new Set(), references: new Set() });
  const edges = parseEdges(`# x\n## Subsystem edges\n\n| from | imports | why |\n| --- | --- | --- |\n| gc | - | hooks only |\n| images | content, \`diff\` | layers |\n`);
  const gc = lib('@berth/gc', 'scope:subsystem');
  const images = lib('@berth/images', 'scope:subsystem');
  const content = lib('@berth/content', 'scope:subsystem');
  const metadata = lib('@berth/metadata', 'scope:metadata');

  it('reads the edge table', () => {
    expect(edges).toEqual(new Map([['@berth/gc', new Set()], ['@berth/images', new Set(['@berth/content', '@berth/diff'])]]));
  });

  it.each([
    ['gc imports content', gc, content, ['@berth/gc -> @berth/content is not a subsystem edge of ARCHITECTURE.md']],
    ['content imports images (edges have a direction)', content, images, ['@berth/content has no row in ARCHITECTURE.md\'s subsystem edges']],
    ['metadata imports content', metadata, content, ['metadata uses a subsystem']],
    ['a base package imports metadata', lib('@berth/log', 'scope:base'), metadata, ['a base library uses a non-base project']],
    ['a subsystem imports the test helpers', gc, lib('@berth/testing', 'scope:testing'), ['production code uses the test helpers']],
    ['the client imports a subsystem', lib('@berth/client', 'scope:client'), content, ['a client library uses more than base and wire packages']],
  ])('%s', (_what, from, to, expected) => {
    expect(problems(from, to.name, to, edges)).toEqual(expected);
  });

  it.each([
    ['images imports content (a declared edge)', images, content],
    ['gc imports metadata (the layer below)', gc, metadata],
    ['the client imports a wire package', lib('@berth/client', 'scope:client'), lib('@berth/grpc', 'scope:base')],
  ])('allows %s', (_what, from, to) => {
    expect(problems(from, to.name, to, edges)).toEqual([]);
  });

  it("finds a violation in a source's text", () => {
    // Put together at run time, so that this file's own scan does not see the imports.
    const text = ['import { BlobRecord } from', "'@berth/content';\nconst s = require(", "'@berth/snapshots/plugins');\n"].join(' ');
    expect(importsOf(text).flatMap((t) => problems(gc, t, lib(t, 'scope:subsystem'), edges))).toEqual([
      '@berth/gc -> @berth/content is not a subsystem edge of ARCHITECTURE.md',
      '@berth/gc -> @berth/snapshots is not a subsystem edge of ARCHITECTURE.md',
    ]);
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
