import fc from 'fast-check';
import { kindOf } from '@berth/errdefs';
import { applyLabelUpdate, validateSnapshotLabels } from './labels';

describe('applyLabelUpdate: properties', () => {
  const key = fc.oneof(fc.constantFrom('constructor', 'toString', '__proto__', 'a', 'b'), fc.string({ unit: 'binary', maxLength: 10 }));
  const labels = fc.dictionary(key, fc.oneof(fc.constant(''), fc.string({ maxLength: 6 })), { maxKeys: 3 }).map((d) => Object.fromEntries(Object.entries(d)));
  const paths = fc.array(fc.oneof(fc.constant('labels'), key.map((k) => `labels.${k}`), fc.string({ maxLength: 12 })), { maxLength: 3 });

  it('takes any field paths and labels: each labels.<k> copies the own value given (empty deletes), or InvalidArgument', () => {
    fc.assert(fc.property(labels, labels, paths, (current, given, fieldpaths) => {
      let next: Record<string, string>;
      try {
        validateSnapshotLabels(given);
        next = applyLabelUpdate(current, given, fieldpaths, 'snap');
      } catch (err) {
        expect(`${kindOf(err)}: ${String(err)}`).toMatch(/^invalid-argument: /);
        return;
      }
      for (const v of Object.values(next)) expect(typeof v).toBe('string');
      if (fieldpaths.length === 0 || fieldpaths.includes('labels')) return;
      const want = new Map(Object.entries(current).filter(([, v]) => v !== ''));
      for (const k of fieldpaths.map((p) => p.slice('labels.'.length))) {
        const v = Object.prototype.hasOwnProperty.call(given, k) ? given[k] : '';
        if (v === '') want.delete(k);
        else want.set(k, v);
      }
      expect(new Map(Object.entries(next))).toEqual(want);
    }), { numRuns: 2000 });
  });
});
