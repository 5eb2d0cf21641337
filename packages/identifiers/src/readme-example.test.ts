import { checkNames } from '../examples/check-names';

describe('README example: checking identifiers', () => {
  it('accepts containerd identifiers and explains the rest as containerd does', () => {
    expect(checkNames(['web-1', 'ns.prod_2', '', 'has space', 'a'.repeat(77)])).toEqual([
      'web-1: ok',
      'ns.prod_2: ok',
      'identifier must not be empty: invalid argument',
      'identifier "has space" must match ^[A-Za-z0-9]+(?:[._-](?:[A-Za-z0-9]+))*$: invalid argument',
      `identifier "${'a'.repeat(77)}" greater than maximum length (76 characters): invalid argument`,
    ]);
  });
});
