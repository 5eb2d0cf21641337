import fc from 'fast-check';
import { kindOf } from '@berth/errdefs';
import { labelsAdaptor, parse, parseAll } from './index';

/** Bad input is refused with InvalidArgument; any other error fails the property, with its text. */
function refusedOnlyAsInvalidArgument(run: () => unknown): void {
  try {
    run();
  } catch (err) {
    expect({ kind: kindOf(err), error: String(err) }).toMatchObject({ kind: 'invalid-argument' });
  }
}

/** Pieces of the filter language, so generated strings get past the first character. */
const TOKENS = [
  'name', 'labels', 'image', '.', ',', '==', '!=', '~=', '=', '!', '~', '"', "'", '`', '\\', '\\"', '\\x4', '\\u00', '\\777', ' ', '\t',
  'a', 'b', 'é', '\u{1F600}', '\uD800', '\uDC00', '(', ')', '[', ']', '{', '}', '*', '+', '?', '|', '^', '$', '\\p{', '(?P<n>', '(?i)', '[[:alpha:]]', '\\Q', '\\z',
];
const filterish = fc.array(fc.constantFrom(...TOKENS), { maxLength: 24 }).map((parts) => parts.join(''));
const anyString = fc.oneof(fc.string({ unit: 'binary', maxLength: 40 }), filterish);

describe('filters: properties', () => {
  it('parse takes any string: a filter, or InvalidArgument', () => {
    fc.assert(fc.property(anyString, (s) => refusedOnlyAsInvalidArgument(() => parse(s))), { numRuns: 3000 });
  });

  it('parseAll takes any list of strings', () => {
    fc.assert(fc.property(fc.array(anyString, { maxLength: 4 }), (list) => refusedOnlyAsInvalidArgument(() => parseAll(list))), { numRuns: 500 });
  });

  it('a parsed filter matches any object without throwing', () => {
    const fields = fc.dictionary(fc.constantFrom('name', 'image', 'a', 'b', '__proto__', 'constructor'), fc.string({ unit: 'binary', maxLength: 8 }));
    const labels = fc.dictionary(fc.oneof(fc.string({ maxLength: 6 }), fc.constantFrom('__proto__', 'constructor', 'toString')), fc.string({ maxLength: 6 }));
    fc.assert(fc.property(filterish, fields, labels, (s, values, labelMap) => {
      let filter;
      try {
        filter = parse(s);
      } catch {
        return;
      }
      expect(typeof filter.match(labelsAdaptor(values, labelMap))).toBe('boolean');
    }), { numRuns: 2000 });
  });
});
