import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { basename, join, relative } from 'node:path';
import * as ts from 'typescript';
import { ROOT, sources } from './rules';

/**
 * Library mode, for every package under packages/: a manifest fit to publish, and a README whose
 * examples are the files under `examples/`, printed exactly, each imported by a test of the
 * package (which runs it). `npm pack` packs each with its README and built entry.
 */
const packages = readdirSync(join(ROOT, 'packages'))
  .map((name) => join(ROOT, 'packages', name))
  .filter((dir) => existsSync(join(dir, 'package.json')));

const manifest = (dir: string) => JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
const examples = (dir: string) => (existsSync(join(dir, 'examples')) ? readdirSync(join(dir, 'examples')).filter((f) => f.endsWith('.ts')) : []);

describe('every package can be used on its own', () => {
  it('finds the packages', () => {
    expect(packages.length).toBeGreaterThan(30);
  });

  it.each(packages.map((dir) => [basename(dir), dir]))('%s: its package.json has a version, license, files and typed exports', (_name, dir) => {
    const pkg = manifest(dir);
    expect({
      version: /^\d+\.\d+\.\d+/.test(pkg.version ?? ''),
      license: pkg.license,
      description: typeof pkg.description === 'string' && pkg.description.length > 0,
      files: Array.isArray(pkg.files) && pkg.files.includes('dist'),
      main: pkg.exports?.['.']?.types !== undefined && pkg.exports?.['.']?.default !== undefined,
    }).toEqual({ version: true, license: 'Apache-2.0', description: true, files: true, main: true });
    for (const [subpath, entry] of Object.entries<Record<string, string> | string>(pkg.exports)) {
      if (subpath !== './package.json') expect({ subpath, types: typeof entry === 'object' && typeof entry.types === 'string' }).toEqual({ subpath, types: true });
    }
  });

  it.each(packages.map((dir) => [basename(dir), dir]))('%s: its README prints each example exactly, and a test runs it', (name, dir) => {
    const readme = existsSync(join(dir, 'README.md')) ? readFileSync(join(dir, 'README.md'), 'utf8') : '';
    expect(readme.split('\n')[0]).toBe(`# ${manifest(dir).name}`);
    const files = examples(dir);
    expect({ name, examples: files.length > 0 }).toEqual({ name, examples: true });
    const tests = sources(dir)
      .filter((f) => f.endsWith('.test.ts'))
      .map((f) => readFileSync(f, 'utf8'));
    for (const file of files) {
      const code = readFileSync(join(dir, 'examples', file), 'utf8').trim();
      expect({ file, printed: readme.includes(`\`\`\`ts\n${code}\n\`\`\``) }).toEqual({ file, printed: true });
      const stem = file.replace(/\.ts$/, '');
      expect({ file, run: tests.some((t) => t.includes(`examples/${stem}`)) }).toEqual({ file, run: true });
    }
  });

  it('type-checks every example against the built packages, as a user compiles it', () => {
    const files = packages.flatMap((dir) => examples(dir).map((f) => join(dir, 'examples', f)));
    const base = ts.getParsedCommandLineOfConfigFile(join(ROOT, 'tsconfig.base.json'), {}, { ...ts.sys, onUnRecoverableConfigFileDiagnostic: () => undefined })!;
    const options = { ...base.options, noEmit: true, composite: false, incremental: false, declaration: false, declarationMap: false };
    const program = ts.createProgram(files, options);
    const problems = ts.getPreEmitDiagnostics(program).map((d) => ts.flattenDiagnosticMessageText(d.messageText, '\n') + (d.file ? ` (${relative(ROOT, d.file.fileName)})` : ''));
    expect(problems).toEqual([]);
  });

  it('npm pack packs each with its README, its built entry and no tests', () => {
    const args = ['pack', '--dry-run', '--json', '--ignore-scripts', ...packages.map((dir) => `--workspace=${relative(ROOT, dir)}`)];
    const packs: Array<{ name: string; files: Array<{ path: string }> }> = JSON.parse(execFileSync('npm', args, { cwd: ROOT, encoding: 'utf8', maxBuffer: 64 << 20 }));
    const summary = packs.map((p) => {
      const files = p.files.map((f) => f.path);
      return {
        name: p.name,
        readme: files.includes('README.md'),
        entry: files.includes('dist/index.js') && files.includes('dist/index.d.ts'),
        tests: files.filter((f) => /\.test\.|tsbuildinfo/.test(f)),
      };
    });
    expect(summary).toEqual(packages.map((dir) => ({ name: manifest(dir).name, readme: true, entry: true, tests: [] })));
  });
});
