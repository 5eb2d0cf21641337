import fc from 'fast-check';
import { kindOf } from '@berth/errdefs';
import { MAX_LENGTH, isValid, validate } from './identifiers';

describe('identifiers: properties', () => {
  const ids = fc.oneof(
    fc.string({ unit: 'binary', maxLength: 100 }),
    fc.array(fc.constantFrom('a', 'Z', '0', '.', '_', '-', '--', '..', 'é', '\uD800', ' ', '/'), { maxLength: 90 }).map((p) => p.join('')),
  );

  it('validate takes any string: accepted, or InvalidArgument; isValid agrees', () => {
    fc.assert(fc.property(ids, (id) => {
      let accepted = true;
      try {
        validate(id);
      } catch (err) {
        expect({ kind: kindOf(err), error: String(err) }).toMatchObject({ kind: 'invalid-argument' });
        accepted = false;
      }
      expect(isValid(id)).toBe(accepted);
      if (accepted) expect(id.length).toBeLessThanOrEqual(MAX_LENGTH);
    }), { numRuns: 3000 });
  });
});
