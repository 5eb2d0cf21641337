import { isInvalidArgument } from '@berth/errdefs';
import { MAX_LENGTH, PATTERN, isValid, validate } from './index';

const PATTERN_TEXT = '^[A-Za-z0-9]+(?:[._-](?:[A-Za-z0-9]+))*$';
const mustMatch = (quoted: string) => `identifier ${quoted} must match ${PATTERN_TEXT}: invalid argument`;
const tooLong = (quoted: string) => `identifier ${quoted} greater than maximum length (76 characters): invalid argument`;

describe('validate', () => {
  it.each<[string, string]>([
    ['single letter', 'a'],
    ['single digit', '0'],
    ['mixed case and digits', 'Default9'],
    ['each separator', 'a_b.c-d'],
    ['separators between digits', '1.2.3'],
    ['76 characters', 'a'.repeat(76)],
    ['76 with separators', `${'ab.'.repeat(25)}c`],
  ])('accepts %s', (_name, id) => {
    expect(() => validate(id)).not.toThrow();
    expect(isValid(id)).toBe(true);
  });

  // Messages as containerd 1.6.20 printed them for `ctr namespaces create <id>`.
  it.each<[string, string, string]>([
    ['empty', '', 'identifier must not be empty: invalid argument'],
    ['77 characters', 'a'.repeat(77), tooLong(`"${'a'.repeat(77)}"`)],
    // Length is counted in UTF-8 bytes, so 39 two-byte letters are "too long", not "bad characters".
    ['78 bytes of non-ASCII', 'é'.repeat(39), tooLong(`"${'é'.repeat(39)}"`)],
    ['non-ASCII letter', 'é', mustMatch('"é"')],
    ['emoji', 'a😀', mustMatch('"a😀"')],
    ['punctuation', 'Bad!', mustMatch('"Bad!"')],
    ['slash', 'a/b', mustMatch('"a/b"')],
    ['colon', 'a:b', mustMatch('"a:b"')],
    ['space', 'a b', mustMatch('"a b"')],
    ['leading separator', '-a', mustMatch('"-a"')],
    ['leading dot', '.a', mustMatch('".a"')],
    ['trailing separator', 'a-', mustMatch('"a-"')],
    ['trailing dot', 'a.', mustMatch('"a."')],
    ['double separator', 'a..b', mustMatch('"a..b"')],
    ['mixed double separator', 'a._b', mustMatch('"a._b"')],
    ['separator only', '_', mustMatch('"_"')],
    ['trailing newline', 'a\n', mustMatch('"a\\n"')],
    ['tab', 'a\tb', mustMatch('"a\\tb"')],
    ['double quote', 'a"b', mustMatch('"a\\"b"')],
    ['backslash', 'a\\b', mustMatch('"a\\\\b"')],
    ['DEL', 'a\x7fb', mustMatch('"a\\x7fb"')],
    ['zero-width space', 'a\u200bb', mustMatch('"a\\u200bb"')],
  ])('rejects %s', (_name, id, message) => {
    let thrown: unknown;
    try {
      validate(id);
    } catch (err) {
      thrown = err;
    }
    expect(isInvalidArgument(thrown)).toBe(true);
    expect((thrown as Error).message).toBe(message);
    expect(isValid(id)).toBe(false);
  });
});

describe('constants', () => {
  it('match containerd', () => {
    expect(MAX_LENGTH).toBe(76);
    expect(PATTERN.source).toBe(PATTERN_TEXT);
  });
});
