import { isFailedPrecondition, isInvalidArgument } from '@berth/errdefs';
import { context, namespaceRequired, withNamespace } from './index';

describe('namespaceRequired', () => {
  it('returns a valid namespace', () => {
    expect(namespaceRequired(context({ namespace: 'default' }))).toBe('default');
    expect(namespaceRequired(withNamespace(context(), 'k8s.io'))).toBe('k8s.io');
  });

  it.each([undefined, ''])('refuses a missing namespace (%p) with FailedPrecondition', (namespace) => {
    const run = () => namespaceRequired(context({ namespace }));
    expect(run).toThrow('namespace is required: failed precondition');
    try {
      run();
    } catch (err) {
      expect(isFailedPrecondition(err)).toBe(true);
    }
  });

  it('refuses an invalid namespace with InvalidArgument, as containerd words it', () => {
    let err: unknown;
    try {
      namespaceRequired(context({ namespace: 'Bad!' }));
    } catch (e) {
      err = e;
    }
    expect(isInvalidArgument(err)).toBe(true);
    expect((err as Error).message).toBe(
      'namespace validation: identifier "Bad!" must match ^[A-Za-z0-9]+(?:[._-](?:[A-Za-z0-9]+))*$: invalid argument',
    );
  });
});
