import { restartDecisions } from '../examples/restart-decisions';

describe('README example: restart decisions', () => {
  it("follows containerd's policies and counts, and reports a bad policy", () => {
    expect(restartDecisions()).toEqual({
      decisions: [
        '(always) exit 0: restart',
        'on-failure exit 0: leave',
        'on-failure:3 exit 1 after 2: restart',
        'on-failure:3 exit 1 after 3: leave',
        'no exit 137: leave',
        'sometimes exit 1: leave',
      ],
      reported: ['restart policy "sometimes" not supported'],
    });
  });
});
