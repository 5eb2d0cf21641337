import { isInvalidArgument } from '@berth/errdefs';
import { COUNT_LABEL, EXPLICITLY_STOPPED_LABEL, POLICY_LABEL, parsePolicy, shouldRestart } from './policy';

describe('restart policies (containerd runtime/restart)', () => {
  it.each([
    ['', { name: 'always', maximumRetryCount: 0 }],
    ['always', { name: 'always', maximumRetryCount: 0 }],
    ['no', { name: 'no', maximumRetryCount: 0 }],
    ['unless-stopped', { name: 'unless-stopped', maximumRetryCount: 0 }],
    ['on-failure', { name: 'on-failure', maximumRetryCount: 0 }],
    ['on-failure:5', { name: 'on-failure', maximumRetryCount: 5 }],
  ])('parses %j', (text, want) => {
    expect(parsePolicy(text)).toEqual(want);
  });

  it.each([
    ['always:3', 'restart policy "always" not support max retry count'],
    ['on-failure:x', 'invalid max retry count: x'],
    ['sometimes', 'restart policy "sometimes" not supported'],
  ])('refuses %j as InvalidArgument', (text, message) => {
    let err: unknown;
    try {
      parsePolicy(text);
    } catch (e) {
      err = e;
    }
    expect(isInvalidArgument(err)).toBe(true);
    expect((err as Error).message).toBe(message);
  });

  it.each([
    [0, {}, true],
    [0, { [POLICY_LABEL]: 'no' }, false],
    [0, { [POLICY_LABEL]: 'on-failure' }, false],
    [1, { [POLICY_LABEL]: 'on-failure' }, true],
    [1, { [POLICY_LABEL]: 'on-failure:2', [COUNT_LABEL]: '1' }, true],
    [1, { [POLICY_LABEL]: 'on-failure:2', [COUNT_LABEL]: '2' }, false],
    [1, { [POLICY_LABEL]: 'on-failure:2', [COUNT_LABEL]: 'many' }, false],
    [0, { [POLICY_LABEL]: 'unless-stopped' }, true],
    [0, { [POLICY_LABEL]: 'unless-stopped', [EXPLICITLY_STOPPED_LABEL]: 'true' }, false],
    [0, { [POLICY_LABEL]: 'unless-stopped', [EXPLICITLY_STOPPED_LABEL]: 'no' }, true],
    [0, { [POLICY_LABEL]: 'bogus' }, false],
  ])('exit %i with %j: restart %s', (exit, labels, want) => {
    expect(shouldRestart(exit, labels as Record<string, string>)).toBe(want);
  });
});
