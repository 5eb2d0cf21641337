import { parseAuthChallenges } from './auth-challenge';
import { normalizeScopes } from './auth';

describe('parseAuthChallenges', () => {
  it('reads a bearer challenge with quoted parameters', () => {
    expect(
      parseAuthChallenges('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull"'),
    ).toEqual([
      {
        scheme: 'bearer',
        params: { realm: 'https://auth.docker.io/token', service: 'registry.docker.io', scope: 'repository:library/busybox:pull' },
      },
    ]);
  });

  it('reads several challenges in one header and across headers', () => {
    expect(parseAuthChallenges(['Basic realm="r1", Bearer realm="https://t/x",  error="insufficient_scope"', 'Negotiate'])).toEqual([
      { scheme: 'basic', params: { realm: 'r1' } },
      { scheme: 'bearer', params: { realm: 'https://t/x', error: 'insufficient_scope' } },
      { scheme: 'negotiate', params: {} },
    ]);
  });

  it('handles unquoted values, escapes, mixed case and scopes with spaces', () => {
    expect(parseAuthChallenges('BEARER Realm=https://t/token, Scope="repository:a:pull repository:b:pull,push", x="a\\"b"')).toEqual([
      { scheme: 'bearer', params: { realm: 'https://t/token', scope: 'repository:a:pull repository:b:pull,push', x: 'a"b' } },
    ]);
  });

  it('returns nothing for no header', () => {
    expect(parseAuthChallenges(undefined)).toEqual([]);
    expect(parseAuthChallenges('')).toEqual([]);
  });
});

describe('normalizeScopes', () => {
  it('merges actions per resource and sorts', () => {
    expect(normalizeScopes(['repository:b:push', 'repository:a:pull', 'repository:b:pull', 'repository:a:pull'])).toEqual([
      'repository:a:pull',
      'repository:b:pull,push',
    ]);
  });

  it('keeps names with colons (registry:catalog:*, hosts with ports)', () => {
    expect(normalizeScopes(['registry:catalog:*', 'repository:x:y/z:pull'])).toEqual(['registry:catalog:*', 'repository:x:y/z:pull']);
  });
});
