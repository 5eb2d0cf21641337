import { parseQuickVersion, quickMain } from './quick';

describe('the quick path (berth version without commander or grpc-js)', () => {
  it.each<[string[], ReturnType<typeof parseQuickVersion>]>([
    [['version'], { globals: {}, json: false }],
    [['version', '--json'], { globals: {}, json: true }],
    [['-a', '/s', 'version'], { globals: { address: '/s' }, json: false }],
    [['-a/s', '--namespace', 'x', 'version', '--json'], { globals: { address: '/s', namespace: 'x' }, json: true }],
    [['--address=/s', '-n', 'y', '--connect-timeout', '2', 'version'], { globals: { address: '/s', namespace: 'y', connectTimeout: '2' }, json: false }],
    [['-a', '/one', '-a', '/two', 'version'], { globals: { address: '/two' }, json: false }],
    [['--connect-timeout=0.5', 'version'], { globals: { connectTimeout: '0.5' }, json: false }],
  ])('takes %j', (argv, expected) => {
    expect(parseQuickVersion(argv)).toEqual(expected);
  });

  it.each([
    [[]],
    [['ps']],
    [['version', '--help']],
    [['version', 'extra']],
    [['--help', 'version']],
    [['-a']],
    [['-a', '/s']],
    [['--address', '/s', 'versions']],
    [['--client-version']],
    [['-x', 'version']],
  ])('leaves %j to the full CLI', (argv) => {
    expect(parseQuickVersion(argv)).toBeUndefined();
  });

  it('leaves a connect timeout that is not a number of seconds to the full CLI (which says so)', () => {
    expect(quickMain(['--connect-timeout', 'soon', 'version'])).toBeUndefined();
    expect(quickMain(['--connect-timeout', '-1', 'version'])).toBeUndefined();
  });
});
