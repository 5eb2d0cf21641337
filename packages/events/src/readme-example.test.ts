import { createdInBuilds } from '../examples/subscribe-filtered';

describe('README example: a filtered subscription', () => {
  it('hears only the matching events, in the order they were published', async () => {
    expect(await createdInBuilds(['a:1', 'b:2'])).toEqual(['builds /images/create a:1', 'builds /images/create b:2']);
  });
});
