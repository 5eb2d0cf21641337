import * as fs from 'node:fs';
import { join } from 'node:path';
import { RootResolver, confinedComponents, resolveInRoot } from './root-path';
import { tempDir } from './test-helpers';

describe('resolveInRoot', () => {
  let root: string;
  beforeAll(() => {
    root = join(tempDir(), 'root');
    fs.mkdirSync(join(root, 'usr/lib'), { recursive: true });
    fs.symlinkSync('/', join(root, 'toroot'));
    fs.symlinkSync('usr/lib', join(root, 'lib'));
    fs.symlinkSync('../../../../..', join(root, 'usr/up'));
    fs.symlinkSync('/usr/../../lib', join(root, 'abs'));
    fs.symlinkSync('../usr', join(root, 'usr/self'));
    fs.symlinkSync('loop2', join(root, 'loop1'));
    fs.symlinkSync('loop1', join(root, 'loop2'));
  });
  afterAll(() => fs.rmSync(join(root, '..'), { recursive: true, force: true }));

  it.each([
    ['', ''],
    ['/', ''],
    ['../../etc', 'etc'],
    ['toroot/etc/passwd', 'etc/passwd'],
    ['lib/x', 'usr/lib/x'],
    ['lib/../y', 'usr/y'], // `..` after a symlink applies to its target, as securejoin does
    ['usr/up/etc', 'etc'],
    ['abs/z', 'usr/lib/z'],
    ['missing/../usr', 'usr'],
  ])('clamps %s -> <root>/%s', (path, want) => {
    expect(resolveInRoot(root, path)).toBe(want === '' ? root : join(root, want));
  });

  it.each([
    ['lib/x', 'usr/lib/x'],
    ['lib/../y', 'usr/y'],
    ['usr/self/lib', 'usr/lib'],
  ])('confined, follows %s inside -> <root>/%s', (path, want) => {
    expect(resolveInRoot(root, path, { confine: true })).toBe(join(root, want));
  });

  it.each([
    ['toroot/etc/passwd', /"toroot\/etc\/passwd" leads out of the layer root through symlink "toroot" -> "\/"/],
    ['usr/up/etc', /through symlink "usr\/up" -> "..\/..\/..\/..\/.."/],
    ['abs/z', /through symlink "abs" -> "\/usr\/..\/..\/lib"/],
  ])('confined, refuses %s', (path, message) => {
    expect(() => resolveInRoot(root, path, { confine: true })).toThrow(message);
  });

  it('stops symlink loops', () => {
    expect(() => resolveInRoot(root, 'loop1/x')).toThrow(/too many symlinks/);
  });
});

describe('RootResolver', () => {
  let root: string;
  beforeEach(() => {
    root = join(tempDir(), 'root');
    fs.mkdirSync(join(root, 'usr/lib/deep/er'), { recursive: true });
    fs.symlinkSync('usr/lib', join(root, 'lib'));
    fs.symlinkSync('/', join(root, 'toroot'));
    fs.symlinkSync('../..', join(root, 'usr/lib/up'));
  });
  afterEach(() => fs.rmSync(join(root, '..'), { recursive: true, force: true }));

  const PATHS = ['usr', 'usr/lib/deep/er', 'usr/lib/deep/er/missing/x', 'lib', 'lib/deep', 'lib/deep/er/y', 'usr/lib/up/usr', 'toroot/etc', 'missing/a/b'];

  it.each([[false], [true]])('resolves as resolveInRoot does, in any order and when asked again (confine: %s)', (confine) => {
    const resolver = new RootResolver(root, { confine });
    const expected = (p: string) => {
      try {
        return resolveInRoot(root, p, { confine });
      } catch (err) {
        return (err as Error).message;
      }
    };
    const got = (p: string) => {
      try {
        return resolver.resolve(p);
      } catch (err) {
        return (err as Error).message;
      }
    };
    for (const p of [...PATHS, ...[...PATHS].reverse(), ...PATHS]) expect([p, got(p)]).toEqual([p, expected(p)]);
  });

  it('sees a directory replaced by a symlink once invalidated', () => {
    const resolver = new RootResolver(root, { confine: true });
    expect(resolver.resolve('usr/lib/deep/er')).toBe(join(root, 'usr/lib/deep/er'));
    fs.rmSync(join(root, 'usr/lib/deep'), { recursive: true });
    fs.symlinkSync('/etc', join(root, 'usr/lib/deep'));
    resolver.invalidate();
    expect(() => resolver.resolve('usr/lib/deep/er')).toThrow(/through symlink "usr\/lib\/deep" -> "\/etc"/);
  });
});

describe('confinedComponents', () => {
  it('cleans relative archive paths', () => {
    expect(confinedComponents('./a/../b/./c/', 'entry')).toEqual(['b', 'c']);
    expect(confinedComponents('./', 'entry')).toEqual([]);
  });

  it.each([
    ['/etc/passwd', /entry "\/etc\/passwd" is absolute/],
    ['../x', /entry "..\/x" climbs out of the layer root/],
    ['etc/../../x', /entry "etc\/..\/..\/x" climbs out/],
  ])('refuses %s', (path, message) => {
    expect(() => confinedComponents(path, 'entry')).toThrow(message);
  });
});
