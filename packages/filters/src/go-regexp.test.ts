import { GoRegexpError, compileGoRegexp } from './go-regexp';

describe('compileGoRegexp', () => {
  // [Go pattern, input, whether Go's MatchString is true]. Every pattern here was also run as
  // `ctr plugins ls 'id~=<pattern>'` against containerd 1.6.20 with the same outcome.
  it.each<[string, string, boolean]>([
    ['over', 'overlayfs', true],
    ['^over', 'xoverlayfs', false],
    ['fs$', 'overlayfs', true],
    ['fs$', 'fs\n', false],
    ['(?i)OVER', 'overlayfs', true],
    ['(?i)(?s)O.ER', 'o\ner', true],
    ['(?s:o.er)', 'o\ner', true],
    ['o.er', 'o\ner', false],
    ['o.er', 'o\rer', true],
    ['(?m)^b$', 'a\nb\nc', true],
    ['(?m)^b$', 'a\rb\rc', false],
    ['^b$', 'a\nb', false],
    ['(?U)o+', 'oo', true],
    ['(?P<x>over)', 'overlayfs', true],
    ['[[:alpha:]]', 'a', true],
    ['^[[:digit:]]+$', '123', true],
    ['^[[:punct:]]+$', '!-/[`{~', true],
    ['[[:alpha:]]', ':', false],
    ['[]a]', ']', true],
    ['\\pL', 'é', true],
    ['^\\p{Greek}$', 'λ', true],
    ['^\\PL$', '1', true],
    ['^\\p{Lu}$', 'a', false],
    ['\\Aover', 'overlayfs', true],
    ['fs\\z', 'overlayfs', true],
    ['^.{3}$', 'abc', true],
    ['^.{4,}$', 'abc', false],
    ['a{', 'a{', true],
    ['x}', 'x}', true],
    ['\\x{6f}ver', 'over', true],
    ['\\x6fver', 'over', true],
    ['\\157ver', 'over', true],
    ['\\Q.*\\E', 'a.*b', true],
    ['\\Q.*\\E', 'ab', false],
    ['\\-\\:\\/', '-:/', true],
    ['^\\s$', '\u000b', false],
    ['^\\s$', '\t', true],
    ['^\\S$', '\u00a0', true],
    ['😀', 'a😀', true],
    ['^.$', '😀', true],
  ])('%j on %j → %s', (pattern, input, expected) => {
    expect(compileGoRegexp(pattern).test(input)).toBe(expected);
  });

  // Invalid in Go 1.19 (so containerd's `~=` never matches), or Go syntax JS cannot express.
  it.each<[string]>([
    ['['],
    ['('],
    ['a**'],
    ['\\1'],
    ['\\8'],
    ['\\q'],
    ['(?<x>a)'],
    ['(?=a)'],
    ['(?!a)'],
    ['a{1001}'],
    ['[[:foo:]]'],
    ['[[:^alpha:]]'],
    ['(?i:a)'],
    ['a(?i)b'],
    ['\\'],
  ])('rejects %j', (pattern) => {
    expect(() => compileGoRegexp(pattern)).toThrow(GoRegexpError);
  });
});
