import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

/** The workspace root. */
export const ROOT = join(__dirname, '..', '..', '..');

/** A workspace project, as its package.json and tsconfig.json declare it. */
export interface Project {
  dir: string;
  name: string;
  tags: string[];
  deps: Set<string>;
  devDeps: Set<string>;
  references: Set<string>;
}

/** Reads every project under packages/, apps/ and tools/ of `root`, by package name. */
export function projects(root = ROOT): Map<string, Project> {
  const out = new Map<string, Project>();
  for (const group of ['packages', 'apps', 'tools']) {
    for (const entry of readdirSync(join(root, group))) {
      const dir = join(root, group, entry);
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

/** The TypeScript sources under a project's src/ (declaration files aside). */
export function sources(dir: string): string[] {
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

/** The workspace packages a source text imports (a subpath counts as its package). */
export function importsOf(text: string): string[] {
  return [...text.matchAll(IMPORT)].map((m) => m[1] ?? m[2]);
}

/** Whether a file is test code (tests, their helpers, conformance suites). */
export const isTest = (file: string) => /\.test\.ts$|test-(helpers?|support|bed)\.ts$|testsuite\.ts$/.test(file);

/** Subsystem -> the subsystems it may import (documented, with the reason, in ARCHITECTURE.md). */
export type Edges = Map<string, Set<string>>;

/**
 * Reads the table under "## Subsystem edges" in ARCHITECTURE.md: rows `| from | imports | why |`,
 * short names (`content`, not `@berth/content`), imports separated by commas, `-` for none.
 */
export function parseEdges(markdown: string): Edges {
  const section = markdown.split(/^## /m).find((s) => s.startsWith('Subsystem edges'));
  if (!section) throw new Error('ARCHITECTURE.md has no "## Subsystem edges" section');
  const edges: Edges = new Map();
  for (const line of section.split('\n')) {
    const cells = line.split('|').map((c) => c.trim().replace(/`/g, ''));
    if (cells.length < 4 || cells[1] === 'from' || /^-+$/.test(cells[1])) continue;
    const to = cells[2] === '-' ? [] : cells[2].split(',').map((t) => `@berth/${t.trim()}`);
    edges.set(`@berth/${cells[1]}`, new Set(to));
  }
  return edges;
}

/**
 * What is wrong with production code of `from` importing `target` (nothing: an empty list):
 * - a library never uses an app or a tool; base uses only base; test helpers stay in tests;
 * - a client (`scope:client`) uses only base and wire packages (never a daemon's subsystem);
 * - an example plugin uses only @berth/plugin-sdk, and nothing uses an example;
 * - metadata uses no subsystem, and a subsystem uses another subsystem only along an edge of
 *   `edges` (so @berth/gc, whose row is empty, uses none).
 */
export function problems(from: Project, target: string, to: Project | undefined, edges: Edges): string[] {
  const fromTags = from.tags;
  const toTags = to?.tags ?? [];
  const out: string[] = [];
  if (fromTags.includes('type:lib') && (toTags.includes('type:app') || toTags.includes('type:tool'))) out.push('a library uses an app or tool');
  if (fromTags.includes('scope:base') && !toTags.includes('scope:base')) out.push('a base library uses a non-base project');
  if (!fromTags.includes('scope:testing') && !fromTags.includes('type:tool') && toTags.includes('scope:testing')) out.push('production code uses the test helpers');
  // A client talks to a daemon over its API only: the wire and the base, never a daemon's part.
  if (fromTags.includes('scope:client') && !toTags.includes('scope:base')) out.push('a client library uses more than base and wire packages');
  // An example plugin is written as a third party would: against the SDK alone.
  if (fromTags.includes('scope:example') && target !== '@berth/plugin-sdk') out.push('an example plugin uses more than @berth/plugin-sdk');
  if (toTags.includes('scope:example')) out.push('production code uses an example');
  if (fromTags.includes('scope:metadata') && toTags.includes('scope:subsystem')) out.push('metadata uses a subsystem');
  if (fromTags.includes('scope:subsystem') && toTags.includes('scope:subsystem')) {
    const allowed = edges.get(from.name);
    if (!allowed) out.push(`${from.name} has no row in ARCHITECTURE.md's subsystem edges`);
    else if (!allowed.has(target)) out.push(`${from.name} -> ${target} is not a subsystem edge of ARCHITECTURE.md`);
  }
  return out;
}
