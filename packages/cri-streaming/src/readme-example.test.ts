import { shout } from '../examples/shout';

jest.setTimeout(60_000);

describe('README example', () => {
  it('serves one exec session over SPDY with a v4 exit status', async () => {
    const r = await shout('hello\nworld\n');
    expect(r.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/exec\/[A-Za-z0-9_-]{8}$/);
    expect({ output: r.output, exitCode: r.exitCode }).toEqual({ output: 'HELLO\nWORLD\n', exitCode: 2 });
  });
});
