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

describe('withNamespace', () => {
  it('keeps the lease and the signal, and reads the signal only when asked for it', () => {
    const controller = new AbortController();
    let reads = 0;
    const base = {
      namespace: 'default',
      lease: 'l1',
      get signal() {
        reads++;
        return controller.signal;
      },
    };
    const moved = withNamespace(base, 'k8s.io');
    expect(reads).toBe(0);
    expect(moved.namespace).toBe('k8s.io');
    expect(moved.lease).toBe('l1');
    expect(moved.signal).toBe(controller.signal);
    expect(reads).toBe(1);
    controller.abort();
    expect(moved.signal.aborted).toBe(true);
    expect({ ...moved }).toEqual({ namespace: 'k8s.io', lease: 'l1', signal: controller.signal });
  });
});
