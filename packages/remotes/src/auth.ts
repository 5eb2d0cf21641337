import { raceAbort } from './abort';
import { type AuthChallenge } from './auth-challenge';
import { RegistryAuthError } from './registry-auth-error';
import { parseRegistryErrors } from './response-error';

/**
 * Credentials for one registry host: a username and password (or personal access token), or an
 * OAuth2 refresh token (Docker's "identity token").
 */
export type RegistryCredentials = { username: string; secret: string } | { refreshToken: string };

/**
 * Returns the credentials for a registry endpoint host (`host[:port]` as dialled, e.g.
 * `registry-1.docker.io` or a mirror's host), or undefined for anonymous access. Called only
 * when a host asks for authentication, at most once per host while the answer keeps working, so
 * it may be slow (berthd asks its client over a stream).
 */
export type CredentialsProvider = (host: string) => Promise<RegistryCredentials | undefined>;

/** An HTTP request to a token server, sent by the registry client's transport. */
export interface TokenRequest {
  method: 'GET' | 'POST';
  url: URL;
  headers: Record<string, string>;
  body?: string;
}

/** What a token server answered. */
export interface TokenResponse {
  status: number;
  statusText: string;
  body: string;
}

/** Sends a token request on behalf of `host` (whose TLS settings apply). */
export type TokenSender = (host: string, request: TokenRequest) => Promise<TokenResponse>;

/** Token lifetime when the token server does not say (the distribution token spec's default). */
const DEFAULT_TOKEN_LIFETIME_S = 60;
/** OAuth2 client id sent with refresh-token grants. */
const CLIENT_ID = 'berth';

interface CachedToken {
  header: string;
  expiresAt: number;
}

interface HostState {
  /** The challenge the host answered with last, without its request-specific scope. */
  challenge?: AuthChallenge;
  credentials?: Promise<RegistryCredentials | undefined>;
}

/**
 * Authorization for registry requests: anonymous, basic, and the bearer-token flow of the
 * distribution token spec. It learns what each host asks for from its first 401 and from then
 * on authorizes requests up front; bearer tokens are cached per host and scope set until they
 * expire and shared between concurrent requests.
 *
 * It never loops: the transport sends a request at most twice (once as it stands, once after
 * {@link reauthorize}), and a token server that refuses ends the operation.
 */
export class RegistryAuth {
  private readonly hosts = new Map<string, HostState>();
  private readonly tokens = new Map<string, CachedToken>();
  private readonly pending = new Map<string, Promise<CachedToken>>();

  constructor(
    private readonly options: {
      credentials?: CredentialsProvider;
      send: TokenSender;
      /** Clock, for token expiry. Default Date.now. */
      now?: () => number;
    },
  ) {}

  private get now(): number {
    return (this.options.now ?? Date.now)();
  }

  private state(host: string): HostState {
    let s = this.hosts.get(host);
    if (!s) this.hosts.set(host, (s = {}));
    return s;
  }

  /**
   * Returns the Authorization header for a request to `host` needing `scopes`
   * (`repository:<name>:pull[,push]`), or undefined while the host has never asked for any.
   * May fetch a bearer token.
   */
  async authorize(host: string, scopes: readonly string[], signal?: AbortSignal): Promise<string | undefined> {
    const challenge = this.hosts.get(host)?.challenge;
    if (!challenge) return undefined;
    if (challenge.scheme === 'basic') return this.basicHeader(host, await raceAbort(this.credentials(host), signal));
    const token = await this.token(host, challenge, normalizeScopes(scopes), signal);
    return token.header;
  }

  /**
   * Handles a 401: remembers the host's challenge, forgets the authorization that failed, and
   * returns the header to retry with. Throws {@link RegistryAuthError} when nothing new can be
   * tried: no supported challenge, no credentials for basic, the same header again, or a token
   * server that refused.
   */
  async reauthorize(
    host: string,
    challenges: readonly AuthChallenge[],
    failed: string | undefined,
    scopes: readonly string[],
    signal?: AbortSignal,
  ): Promise<string> {
    const challenge = challenges.find((c) => c.scheme === 'bearer') ?? challenges.find((c) => c.scheme === 'basic');
    if (!challenge) {
      const offered = challenges.map((c) => c.scheme).join(', ') || 'none';
      throw new RegistryAuthError(host, `${host}: 401 Unauthorized without a supported authentication challenge (offered: ${offered})`, { status: 401 });
    }
    const { scope, ...params } = challenge.params;
    const state = this.state(host);
    state.challenge = { scheme: challenge.scheme, params };

    let header: string | undefined;
    if (challenge.scheme === 'basic') {
      header = this.basicHeader(host, await raceAbort(this.credentials(host), signal));
      if (header === undefined) {
        throw new RegistryAuthError(host, `${host}: authentication required and no credentials were given`, { status: 401 });
      }
    } else {
      const wanted = normalizeScopes([...scopes, ...(scope ? scope.split(' ') : [])]);
      this.forget(host, failed);
      header = (await this.token(host, state.challenge, wanted, signal)).header;
    }
    if (header === failed) {
      // Same credentials as the attempt that was just refused: asking again cannot help.
      state.credentials = undefined;
      throw new RegistryAuthError(host, `${host}: credentials rejected (401 Unauthorized)`, { status: 401 });
    }
    return header;
  }

  /** Drops a cached token that a registry refused, so the next request fetches a fresh one. */
  private forget(host: string, failed: string | undefined): void {
    if (failed === undefined) return;
    for (const [key, token] of this.tokens) {
      if (key.startsWith(`${host}\n`) && token.header === failed) this.tokens.delete(key);
    }
  }

  private credentials(host: string): Promise<RegistryCredentials | undefined> {
    const state = this.state(host);
    if (!state.credentials) {
      const provider = this.options.credentials;
      state.credentials = provider ? provider(host) : Promise.resolve(undefined);
      // A failing provider is asked again next time rather than cached as failed.
      state.credentials.catch(() => (state.credentials = undefined));
    }
    return state.credentials;
  }

  private basicHeader(host: string, creds: RegistryCredentials | undefined): string | undefined {
    if (creds === undefined) return undefined;
    if (!('username' in creds)) {
      throw new RegistryAuthError(host, `${host}: asks for basic authentication, but only a refresh token was given`);
    }
    return `Basic ${Buffer.from(`${creds.username}:${creds.secret}`).toString('base64')}`;
  }

  private async token(host: string, challenge: AuthChallenge, scopes: string[], signal?: AbortSignal): Promise<CachedToken> {
    const key = `${host}\n${challenge.params.realm ?? ''}\n${challenge.params.service ?? ''}\n${scopes.join(' ')}`;
    const cached = this.tokens.get(key);
    if (cached && cached.expiresAt > this.now) return cached;
    let p = this.pending.get(key);
    if (!p) {
      // Shared by concurrent requests, so it does not take any one caller's signal; each caller
      // stops waiting on its own (raceAbort below), and the transport's timeouts bound the fetch.
      p = this.fetchToken(host, challenge, scopes).then(
        (t) => {
          this.tokens.set(key, t);
          return t;
        },
      );
      const settle = () => this.pending.delete(key);
      p.then(settle, settle);
      this.pending.set(key, p);
    }
    return raceAbort(p, signal);
  }

  private async fetchToken(host: string, challenge: AuthChallenge, scopes: string[]): Promise<CachedToken> {
    const { realm, service } = challenge.params;
    if (!realm) throw new RegistryAuthError(host, `${host}: bearer challenge without a realm`, { status: 401 });
    let url: URL;
    try {
      url = new URL(realm);
    } catch (err) {
      throw new RegistryAuthError(host, `${host}: bearer challenge with an invalid realm "${realm}"`, { cause: err, status: 401 });
    }
    const creds = await this.credentials(host);
    const request: TokenRequest = { method: 'GET', url, headers: { Accept: 'application/json' } };
    if (creds && 'refreshToken' in creds) {
      // OAuth2 refresh-token grant, as Docker sends identity tokens.
      const form = new URLSearchParams({ grant_type: 'refresh_token', refresh_token: creds.refreshToken, client_id: CLIENT_ID });
      if (service) form.set('service', service);
      if (scopes.length) form.set('scope', scopes.join(' '));
      request.method = 'POST';
      request.headers['Content-Type'] = 'application/x-www-form-urlencoded';
      request.body = form.toString();
    } else {
      if (service) url.searchParams.append('service', service);
      for (const s of scopes) url.searchParams.append('scope', s);
      if (creds) {
        url.searchParams.append('account', creds.username);
        request.headers.Authorization = `Basic ${Buffer.from(`${creds.username}:${creds.secret}`).toString('base64')}`;
      }
    }
    const fetchedAt = this.now;
    const res = await this.options.send(host, request);
    if (res.status < 200 || res.status > 299) {
      if (res.status === 401 || res.status === 403) this.state(host).credentials = undefined;
      const details = parseRegistryErrors(res.body).map((e) => `: ${e.code}${e.message ? `: ${e.message}` : ''}`).join('');
      const who = creds ? 'the credentials given were refused' : 'anonymous access was refused';
      throw new RegistryAuthError(
        host,
        `${host}: fetching a token from ${url.origin}${url.pathname} failed (${who}): ${res.status} ${res.statusText}${details}`,
        { status: res.status },
      );
    }
    let body: { token?: unknown; access_token?: unknown; expires_in?: unknown };
    try {
      body = JSON.parse(res.body);
    } catch (err) {
      throw new RegistryAuthError(host, `${host}: token server ${url.origin} answered with invalid JSON`, { cause: err });
    }
    const token = typeof body.token === 'string' && body.token ? body.token : body.access_token;
    if (typeof token !== 'string' || token === '') {
      throw new RegistryAuthError(host, `${host}: token server ${url.origin} answered without a token`);
    }
    const lifetime = typeof body.expires_in === 'number' && body.expires_in > 0 ? body.expires_in : DEFAULT_TOKEN_LIFETIME_S;
    // Renew a little early (a tenth of the lifetime, at most 30 s) so a token does not expire
    // in flight; receipt time, not issued_at, so clock skew with the token server does not matter.
    const margin = Math.min(lifetime * 100, 30_000);
    return { header: `Bearer ${token}`, expiresAt: fetchedAt + lifetime * 1000 - margin };
  }
}

/**
 * Merges scopes (`repository:<name>:<actions>`) naming the same resource, with their actions
 * in sorted order and the scopes sorted, so equal sets give equal cache keys.
 */
export function normalizeScopes(scopes: readonly string[]): string[] {
  const byResource = new Map<string, Set<string>>();
  for (const scope of scopes) {
    const last = scope.lastIndexOf(':');
    if (last <= 0) continue;
    const resource = scope.slice(0, last);
    let actions = byResource.get(resource);
    if (!actions) byResource.set(resource, (actions = new Set()));
    for (const a of scope.slice(last + 1).split(',')) if (a) actions.add(a);
  }
  return [...byResource].map(([resource, actions]) => `${resource}:${[...actions].sort().join(',')}`).sort();
}

/** Returns the scope a repository operation needs: `repository:<name>:pull` or `…:pull,push`. */
export function repositoryScope(repository: string, push = false): string {
  return `repository:${repository}:${push ? 'pull,push' : 'pull'}`;
}
