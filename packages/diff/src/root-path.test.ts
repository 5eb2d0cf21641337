import * as fs from 'node:fs';
import { join } from 'node:path';
import { cleanComponents, resolveInRoot } from './root-path';
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
  ])('%s -> <root>/%s', (path, want) => {
    expect(resolveInRoot(root, path)).toBe(want === '' ? root : join(root, want));
  });

  it('stops symlink loops', () => {
    expect(() => resolveInRoot(root, 'loop1/x')).toThrow(/too many symlinks/);
  });

  it('cleans archive paths lexically, clamped at the root', () => {
    expect(cleanComponents('./a/../../b/./c/')).toEqual(['b', 'c']);
  });
});
