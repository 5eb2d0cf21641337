import { context } from '@berth/context';
import { CanceledError, DeadlineExceededError, UnknownError } from '@berth/errdefs';
import type { Differ } from './differ';
import { DiffService } from './plugins';

describe('DiffService: an apply whose caller went away', () => {
  /** A differ whose apply first lets the test abort the call, then fails. */
  const failing = (abort: (ac: AbortController) => void): Differ => ({
    apply: async (ctx) => {
      abort(controller);
      ctx.signal.throwIfAborted();
      throw new UnknownError('apply failed on its own');
    },
    compare: async () => {
      throw new UnknownError('unused');
    },
  });
  let controller: AbortController;

  it.each([
    ['the client cancelled', (ac: AbortController) => ac.abort(new CanceledError('call cancelled by the client')), [['ns', 'lease-1']]],
    ['the deadline passed', (ac: AbortController) => ac.abort(new DeadlineExceededError('call deadline exceeded')), [['ns', 'lease-1']]],
    ['the daemon stopped it (another reason)', (ac: AbortController) => ac.abort(new Error('closing')), []],
    ['it failed by itself', () => undefined, []],
  ])('%s: the call\'s lease is released only when the caller is gone', async (_what, abort, released) => {
    controller = new AbortController();
    const calls: string[][] = [];
    const svc = new DiffService([failing(abort)], { onAbandoned: async (ns, lease) => void calls.push([ns, lease]) });
    await expect(svc.apply(context({ namespace: 'ns', lease: 'lease-1', signal: controller.signal }), { mediaType: '', digest: 'sha256:x', size: 0 }, [])).rejects.toThrow();
    expect(calls).toEqual(released);
  });

  it('does nothing without a lease', async () => {
    controller = new AbortController();
    const calls: string[][] = [];
    const svc = new DiffService([failing((ac) => ac.abort(new CanceledError('gone')))], { onAbandoned: async (ns, lease) => void calls.push([ns, lease]) });
    await expect(svc.apply(context({ namespace: 'ns', signal: controller.signal }), { mediaType: '', digest: 'sha256:x', size: 0 }, [])).rejects.toThrow();
    expect(calls).toEqual([]);
  });
});
