import { ociReferenceName, prefixRef, strictPlatformMatcher } from './index';

describe('archive naming and strict platforms', () => {
  it.each([
    ['docker.io/library/busybox:1.36', '1.36'],
    ['localhost:5000/app:v1', 'v1'],
    ['example.com/a/b:1@sha256:abc', '1@sha256:abc'],
    ['example.com/a@sha256:abc', '@sha256:abc'],
    ['example.com/a', ''],
    ['localhost:5000', ''],
    ['busybox:latest', 'busybox:latest'],
  ])('the ref name of %s is %j', (name, want) => {
    expect(ociReferenceName(name)).toBe(want);
  });

  it.each<[string, string, boolean, string]>([
    ['1.0', 'example.com/app', true, 'example.com/app:1.0'],
    ['example.com/app:2', 'example.com/app', true, 'example.com/app:2'],
    ['example.com/app/sub:2', 'example.com/app', true, 'example.com/app/sub:2'],
    ['example.com/apple:2', 'example.com/app', true, ''],
    ['other.io/x:1', 'example.com/app', true, ''],
    ['other.io/x:1', 'example.com/app', false, 'other.io/x:1'],
    ['1.0', '', false, ''],
  ])('prefixRef(%j, %j, %j) is %j', (ref, prefix, check, want) => {
    expect(prefixRef(ref, prefix, check)).toBe(want);
  });

  it('matches exactly the platforms given, normalized, earlier ones first', () => {
    const m = strictPlatformMatcher(['linux/arm64', 'linux/amd64']);
    expect(m.match({ os: 'linux', architecture: 'aarch64' })).toBe(true);
    expect(m.match({ os: 'linux', architecture: 'arm', variant: 'v8' })).toBe(false);
    expect(m.match({ os: 'linux', architecture: 'amd64', variant: 'v1' })).toBe(true);
    expect(m.match({ os: 'linux', architecture: 'amd64', variant: 'v3' })).toBe(false);
    expect(m.rank({ os: 'linux', architecture: 'arm64' })).toBeLessThan(m.rank({ os: 'linux', architecture: 'amd64' }));
  });
});
