import { namespacesSeen } from '../examples/call-context';

describe('README example: a call context', () => {
  it('names the namespace a store acts in, and refuses a call without one', () => {
    expect(namespacesSeen(new AbortController().signal)).toEqual(['builds', 'default', 'namespace is required: failed precondition']);
  });
});
