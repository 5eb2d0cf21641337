import { STATUS_CODES, type IncomingHttpHeaders } from 'node:http';
import { rootCertificates } from 'node:tls';
import type { Readable } from 'node:stream';
import type { Agent, Dispatcher } from 'undici';
import { BerthError, FailedPreconditionError, UnavailableError } from '@berth/errdefs';
import { abortError, throwIfAborted } from './abort';
import { parseAuthChallenges } from './auth-challenge';
import { RegistryAuth, type CredentialsProvider, type TokenRequest, type TokenResponse } from './auth';
import type { RegistryHost } from './hosts';
import { nsParam } from './hosts-config';
import { RegistryResponseError, parseRegistryErrors } from './response-error';

/** How many redirects one request follows before giving up. */
export const MAX_REDIRECTS = 10;
/** Most of an error body read into an error message. */
const ERROR_BODY_LIMIT = 64 * 1024;

/** Settings of the transport shared by the resolver, fetcher and pusher. */
export interface RegistryHttpOptions {
  /** Where credentials come from when a host asks; anonymous when omitted. */
  credentials?: CredentialsProvider;
  /** The User-Agent header. */
  userAgent: string;
  /** TCP connect plus TLS handshake limit in milliseconds, for hosts without `dialTimeoutMs`. */
  connectTimeoutMs: number;
  /** Longest wait in milliseconds for the next bytes from a registry (response headers, each body chunk). */
  idleTimeoutMs: number;
}

/** A request body: bytes, or a function that opens a fresh stream (so the request can be re-sent). */
export type RequestBody = Uint8Array | (() => Readable | Promise<Readable>);

/** One request to a registry endpoint. Give `path` (under the API root) or `url` (one the registry handed out). */
export interface RegistryRequest {
  host: RegistryHost;
  method: 'GET' | 'HEAD' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  /** Path below the host's API root, starting with `/`: `/library/busybox/manifests/latest`. Gets `?ns=` on mirrors. */
  path?: string;
  /** Query parameters for `path` requests. */
  query?: ReadonlyArray<readonly [string, string]>;
  /** An absolute URL from the registry (an upload `Location`), used as is; authorized only on the host's own origin. */
  url?: URL;
  headers?: Record<string, string>;
  body?: RequestBody;
  /** Token scopes the request needs (`repository:<name>:pull`). */
  scopes: readonly string[];
  signal?: AbortSignal;
  /** Follow 301/302/303/307/308 (GET and HEAD only). Default true. */
  followRedirects?: boolean;
  /** Override of the idle timeout while waiting for the response headers (uploads the registry must hash). */
  headersTimeoutMs?: number;
}

/** A registry's answer. The caller consumes or dumps `body`. */
export interface RegistryResponse {
  readonly method: string;
  /** The URL that answered, after redirects. */
  readonly url: URL;
  readonly status: number;
  readonly statusText: string;
  readonly headers: IncomingHttpHeaders;
  readonly body: Dispatcher.ResponseData['body'];
  /** Returns a header's (first) value. */
  header(name: string): string | undefined;
  /** Reads the rest of the body (bounded) into a {@link RegistryResponseError}. */
  error(): Promise<RegistryResponseError>;
}

/**
 * Turns what a request or a body read threw into an errdefs error: Canceled or DeadlineExceeded
 * when the caller's signal fired, Unavailable (naming the URL and, for timeouts, the limit) for
 * connection failures, resets and timeouts. Errors that already have a kind pass through.
 */
export function transportError(
  err: unknown,
  method: string,
  url: URL | string,
  limits: { connectTimeoutMs: number; idleTimeoutMs: number },
  signal?: AbortSignal,
): BerthError {
  if (signal?.aborted) return abortError(signal, `${method} ${url}`);
  if (err instanceof BerthError) return err;
  const code = (err as { code?: string } | undefined)?.code;
  const message = err instanceof Error ? err.message : String(err);
  let what: string;
  switch (code) {
    case 'UND_ERR_CONNECT_TIMEOUT':
      what = `connect timeout after ${limits.connectTimeoutMs} ms`;
      break;
    case 'UND_ERR_HEADERS_TIMEOUT':
    case 'UND_ERR_BODY_TIMEOUT':
      what = `no data from the registry for ${limits.idleTimeoutMs} ms`;
      break;
    default:
      what = code && !message.includes(code) ? `${message} (${code})` : message;
  }
  return new UnavailableError(`${method} ${url}: ${what}`, { cause: err });
}

/**
 * The two parts of undici the transport uses, its connection-pooling Agent and its `request`
 * API, loaded with the first agent. undici's index loads every dispatcher, interceptor, cache
 * store and the whole fetch and WebSocket implementation besides: about 125 ms and 19 MiB on
 * a cold start, which the first pull of a fresh daemon paid, against about 30 ms for these two.
 * The version is pinned in package.json, so these module paths are fixed; the remotes tests go
 * through them.
 */
interface UndiciCore {
  Agent: typeof Agent;
  request: (this: Dispatcher, options: Dispatcher.RequestOptions) => Promise<Dispatcher.ResponseData>;
}
let undici: UndiciCore | undefined;
function loadUndici(): UndiciCore {
  undici ??= {
    Agent: require('undici/lib/dispatcher/agent') as typeof Agent,
    request: require('undici/lib/api/api-request') as UndiciCore['request'],
  };
  return undici;
}

/** Sends one request through `agent` with undici's request API. */
function agentRequest(agent: Agent, options: Dispatcher.RequestOptions): Promise<Dispatcher.ResponseData> {
  return loadUndici().request.call(agent, options);
}

/** Reports whether an error is a TLS handshake that met a plain-HTTP server. */
function isTlsProtocolError(err: unknown): boolean {
  const code = (err as { code?: unknown } | undefined)?.code;
  return typeof code === 'string' && (code.startsWith('ERR_SSL_') || code === 'EPROTO');
}

/**
 * The HTTP transport of the registry client: one undici Agent per distinct TLS and dial setting,
 * authorization with one retry after a 401, bounded redirects (a loop fails naming the URL),
 * `?ns=` on mirrors, https-to-http fallback where a host allows it, and errdefs errors for
 * transport failures.
 */
export class RegistryHttp {
  private readonly agents = new Map<string, Agent>();
  /** Hosts that turned out to speak plain HTTP although tried over https first. */
  private readonly plainHttp = new Set<string>();
  /** The last endpoint settings seen per host, so token requests use the host's TLS settings. */
  private readonly endpoints = new Map<string, RegistryHost>();
  readonly auth: RegistryAuth;
  private closed = false;

  constructor(readonly options: RegistryHttpOptions) {
    this.auth = new RegistryAuth({ credentials: options.credentials, send: (host, req) => this.sendTokenRequest(host, req) });
  }

  /** Returns the URL a path request to `host` goes to (scheme after any fallback, `?ns=` added). */
  urlFor(host: RegistryHost, path: string, query: ReadonlyArray<readonly [string, string]> = []): URL {
    const scheme = host.scheme === 'https' && this.plainHttp.has(host.host) ? 'http' : host.scheme;
    const url = new URL(`${scheme}://${host.host}${host.path.replace(/\/$/, '')}${path}`);
    for (const [k, v] of query) url.searchParams.append(k, v);
    const ns = nsParam(host);
    if (ns !== undefined) url.searchParams.set('ns', ns);
    return url;
  }

  /**
   * Sends a request: with the host's headers and authorization, once more after a 401 with new
   * authorization (a second 401 is returned to the caller, never retried), following redirects
   * for GET and HEAD. Throws transport errors (Unavailable), auth failures while getting a token
   * ({@link RegistryAuthError}) and cancellation; every HTTP status is returned.
   */
  async request(req: RegistryRequest): Promise<RegistryResponse> {
    if (this.closed) throw new UnavailableError('registry client is closed');
    throwIfAborted(req.signal);
    const { host } = req;
    this.endpoints.set(host.host, host);
    let url = req.url ?? this.urlFor(host, req.path ?? '/', req.query);
    const home = authority(this.urlFor(host, '/'));
    const onHost = (u: URL) => authority(u) === home;

    let authorization = onHost(url) ? await this.auth.authorize(host.host, req.scopes, req.signal) : undefined;
    let res = await this.sendWithFallback(req, url, authorization);
    url = res.url;
    if (res.status === 401 && onHost(url)) {
      const challenges = parseAuthChallenges(res.headers['www-authenticate']);
      await res.body.dump();
      authorization = await this.auth.reauthorize(host.host, challenges, authorization, req.scopes, req.signal);
      res = await this.sendWithFallback(req, url, authorization);
    }

    if (req.followRedirects === false || (req.method !== 'GET' && req.method !== 'HEAD')) return res;
    const first = url.href;
    const seen = new Set([first]);
    for (let hops = 0; isRedirect(res.status) && res.header('location'); hops++) {
      const next = new URL(res.header('location')!, url);
      await res.body.dump();
      if (seen.has(next.href)) {
        throw new FailedPreconditionError(`${req.method} ${first}: redirect loop at ${next.href}`);
      }
      if (hops + 1 > MAX_REDIRECTS) {
        throw new FailedPreconditionError(`${req.method} ${first}: stopped after ${MAX_REDIRECTS} redirects`);
      }
      seen.add(next.href);
      url = next;
      // Credentials stay with the registry: a redirect to blob storage gets none.
      res = await this.send(req, url, onHost(url) ? authorization : undefined);
    }
    return res;
  }

  private async sendWithFallback(req: RegistryRequest, url: URL, authorization: string | undefined): Promise<RegistryResponse> {
    try {
      return await this.send(req, url, authorization);
    } catch (err) {
      const cause = (err as { cause?: unknown }).cause;
      if (!req.host.fallbackToHttp || url.protocol !== 'https:' || url.hostname !== hostnameOf(req.host) || !isTlsProtocolError(cause)) {
        throw err;
      }
      // Remembered for the host: later requests go straight to http (urlFor).
      this.plainHttp.add(req.host.host);
      const plain = new URL(url.href);
      plain.protocol = 'http:';
      return this.send(req, plain, authorization);
    }
  }

  private async send(req: RegistryRequest, url: URL, authorization: string | undefined): Promise<RegistryResponse> {
    const headers: Record<string, string | string[]> = { 'User-Agent': this.options.userAgent };
    for (const [k, v] of Object.entries(req.host.headers)) headers[k] = [...v];
    Object.assign(headers, req.headers);
    if (authorization) headers.Authorization = authorization;
    const agent = this.agentFor(req.host, url.protocol === 'https:');
    try {
      const body = typeof req.body === 'function' ? await req.body() : req.body;
      const res = await agentRequest(agent, {
        origin: url.origin,
        path: url.pathname + url.search,
        method: req.method,
        headers,
        body: body ?? null,
        signal: req.signal,
        headersTimeout: req.headersTimeoutMs ?? this.options.idleTimeoutMs,
      });
      return new Response(req.method, url, res);
    } catch (err) {
      throw transportError(err, req.method, url, this.limitsFor(req.host), req.signal);
    }
  }

  /** The connect and idle limits that apply to a host. */
  limitsFor(host: RegistryHost): { connectTimeoutMs: number; idleTimeoutMs: number } {
    return { connectTimeoutMs: host.dialTimeoutMs ?? this.options.connectTimeoutMs, idleTimeoutMs: this.options.idleTimeoutMs };
  }

  private agentFor(host: RegistryHost, https: boolean): Agent {
    const dial = host.dialTimeoutMs ?? this.options.connectTimeoutMs;
    const tls = https ? host.tls : undefined;
    const key = JSON.stringify({
      dial,
      ca: tls?.ca?.map(String),
      certs: tls?.clientCerts?.map((c) => [String(c.cert), String(c.key)]),
      skip: tls?.skipVerify ?? false,
    });
    let agent = this.agents.get(key);
    if (!agent) {
      const connect: Record<string, unknown> = { timeout: dial };
      if (tls?.ca?.length) connect.ca = [...rootCertificates, ...tls.ca.map(String)];
      if (tls?.clientCerts?.length) {
        connect.cert = tls.clientCerts.map((c) => c.cert);
        connect.key = tls.clientCerts.map((c) => c.key);
      }
      if (tls?.skipVerify) connect.rejectUnauthorized = false;
      agent = new (loadUndici().Agent)({ connect, headersTimeout: this.options.idleTimeoutMs, bodyTimeout: this.options.idleTimeoutMs });
      this.agents.set(key, agent);
    }
    return agent;
  }

  private async sendTokenRequest(hostKey: string, req: TokenRequest): Promise<TokenResponse> {
    const host = this.endpoints.get(hostKey);
    if (!host) throw new UnavailableError(`no endpoint settings for ${hostKey}`);
    const agent = this.agentFor(host, req.url.protocol === 'https:');
    try {
      const res = await agentRequest(agent, {
        origin: req.url.origin,
        path: req.url.pathname + req.url.search,
        method: req.method,
        headers: { 'User-Agent': this.options.userAgent, ...req.headers },
        body: req.body ?? null,
      });
      const body = await readText(res.body, ERROR_BODY_LIMIT * 16);
      return { status: res.statusCode, statusText: res.statusText || STATUS_CODES[res.statusCode] || '', body };
    } catch (err) {
      throw transportError(err, req.method, `${req.url.origin}${req.url.pathname}`, this.limitsFor(host));
    }
  }

  /** Aborts requests still in flight and closes every connection. */
  async close(): Promise<void> {
    this.closed = true;
    const agents = [...this.agents.values()];
    this.agents.clear();
    await Promise.all(agents.map((a) => a.destroy().catch(() => undefined)));
  }
}

/** `hostname:port` with the scheme's default port filled in, to compare origins across URLs. */
function authority(u: URL): string {
  return `${u.hostname}:${u.port || (u.protocol === 'https:' ? '443' : '80')}`;
}

function hostnameOf(host: RegistryHost): string {
  return new URL(`http://${host.host}`).hostname;
}

function isRedirect(status: number): boolean {
  return status === 301 || status === 302 || status === 303 || status === 307 || status === 308;
}

/** Reads a body as text, at most `limit` bytes; the rest is dropped. */
export async function readText(body: Readable, limit: number): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body as AsyncIterable<Buffer>) {
    if (size < limit) chunks.push(chunk.subarray(0, limit - size));
    size += chunk.length;
  }
  return Buffer.concat(chunks).toString('utf8');
}

class Response implements RegistryResponse {
  readonly status: number;
  readonly statusText: string;
  readonly headers: IncomingHttpHeaders;
  readonly body: Dispatcher.ResponseData['body'];

  constructor(
    readonly method: string,
    readonly url: URL,
    data: Dispatcher.ResponseData,
  ) {
    this.status = data.statusCode;
    this.statusText = data.statusText || STATUS_CODES[data.statusCode] || '';
    this.headers = data.headers;
    this.body = data.body;
  }

  header(name: string): string | undefined {
    const v = this.headers[name.toLowerCase()];
    return Array.isArray(v) ? v[0] : v;
  }

  async error(): Promise<RegistryResponseError> {
    let text = '';
    try {
      text = this.method === 'HEAD' ? '' : await readText(this.body, ERROR_BODY_LIMIT);
    } catch {
      // The status is what matters; a body that fails to arrive adds nothing.
    }
    return new RegistryResponseError(this.method, this.url.href, this.status, this.statusText, parseRegistryErrors(text));
  }
}
