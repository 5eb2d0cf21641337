import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { InvalidArgumentError } from '@berth/errdefs';
import { PORTFORWARD_PROTOCOLS, servePortForward } from './portforward';
import { REMOTECOMMAND_PROTOCOLS, type RemoteCommandRequest, serveRemoteCommand } from './remotecommand';
import { DEFAULT_MAX_PENDING, DEFAULT_TOKEN_TTL_MS, RequestCache } from './request-cache';
import type { StreamingRuntime } from './runtime';
import { SpdyConnection } from './spdy-connection';
import { WebSocketConnection, webSocketAccept } from './websocket';
import { WEBSOCKET_REMOTECOMMAND_PROTOCOLS, serveWebSocketRemoteCommand } from './websocket-remotecommand';

/** The fields of CRI's ExecRequest the server uses (a `runtime.v1.ExecRequest` fits). */
export interface ExecRequest {
  containerId: string;
  cmd: string[];
  tty: boolean;
  stdin: boolean;
  stdout: boolean;
  stderr: boolean;
}

/** The fields of CRI's AttachRequest the server uses. */
export type AttachRequest = Omit<ExecRequest, 'cmd'>;

/** The fields of CRI's PortForwardRequest the server uses (`port` is not used over SPDY). */
export interface PortForwardRequest {
  podSandboxId: string;
  port?: number[];
}

/** What Exec, Attach and PortForward answer: where the client connects. */
export interface StreamingUrl {
  url: string;
}

/** The part of @berth/log's Logger the server uses. */
export interface StreamingLogger {
  warn(msg: string, fields?: Record<string, unknown>): void;
  debug?(msg: string, fields?: Record<string, unknown>): void;
}

/** Options of a streaming server. */
export interface StreamingServerOptions {
  /** The runtime that runs commands and reaches ports. */
  runtime: StreamingRuntime;
  /** Address to listen on (containerd's `stream_server_address`). Default `127.0.0.1`. */
  address?: string;
  /** Port to listen on (`stream_server_port`), 0 or "0" for a random one. Default 0. */
  port?: number | string;
  /** How long a client has to create its streams, in ms. Default 30 000. */
  streamCreationTimeoutMs?: number;
  /** How long a URL stays valid, in ms. Default 60 000. */
  tokenTtlMs?: number;
  /** How many URLs may wait for their client at once. Default 1000. */
  maxPendingRequests?: number;
  /**
   * Closes a session after this long without a frame either way, in ms (containerd's
   * `stream_idle_timeout`). Default 4 hours; 0 for never.
   */
  streamIdleTimeoutMs?: number;
  /** How long `close()` lets sessions end before dropping them, in ms. Default 5000. */
  closeGraceMs?: number;
  logger?: StreamingLogger;
}

type Cached = { kind: 'exec' | 'attach'; req: RemoteCommandRequest } | { kind: 'portforward'; podSandboxId: string };

const KINDS = new Set(['exec', 'attach', 'portforward']);

/**
 * containerd's CRI streaming server: Exec, Attach and PortForward validate and cache a request and
 * answer a single-use URL (`http://<address>:<port>/{exec|attach|portforward}/<token>`); the
 * client then upgrades that URL to SPDY/3.1 and speaks Kubernetes' remotecommand (v1-v4) or
 * portforward protocol, which this server serves through a StreamingRuntime.
 */
export class StreamingServer {
  private readonly cache: RequestCache<Cached>;
  private readonly sessions = new Set<{ conn: { destroy(): void }; done: Promise<void> }>();
  private readonly stopping = new AbortController();
  private readonly creationTimeout: number;
  private readonly idleTimeout: number;
  private readonly logger: StreamingLogger;
  private closed?: Promise<void>;

  private constructor(
    private readonly server: http.Server,
    private readonly runtime: StreamingRuntime,
    private readonly options: StreamingServerOptions,
    /** The base URL clients are sent to, e.g. `http://127.0.0.1:41235`. */
    readonly baseUrl: string,
  ) {
    this.cache = new RequestCache(options.tokenTtlMs ?? DEFAULT_TOKEN_TTL_MS, options.maxPendingRequests ?? DEFAULT_MAX_PENDING);
    this.creationTimeout = options.streamCreationTimeoutMs ?? 30_000;
    this.idleTimeout = options.streamIdleTimeoutMs ?? 4 * 60 * 60_000;
    this.logger = options.logger ?? { warn: () => undefined };
    server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
      try {
        this.onRequest(req, res);
      } catch (err) {
        this.logger.warn('streaming request failed', { error: String(err) });
        res.destroy();
      }
    });
    server.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
      try {
        this.onUpgrade(req, socket, head);
      } catch (err) {
        this.logger.warn('streaming upgrade failed', { error: String(err) });
        socket.destroy();
      }
    });
    server.on('error', (err: Error) => this.logger.warn('streaming server error', { error: err.message }));
    server.on('clientError', (_err: Error, socket: Duplex) => {
      if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
      socket.destroy();
    });
  }

  /**
   * Starts listening. The URL host is the listen address (for 0.0.0.0 or ::, the loopback
   * address of that family, so that a URL is always dialable here).
   */
  static async start(options: StreamingServerOptions): Promise<StreamingServer> {
    const address = options.address ?? '127.0.0.1';
    const port = Number(options.port ?? 0);
    if (!Number.isInteger(port) || port < 0 || port > 65535) throw new InvalidArgumentError(`stream server port ${JSON.stringify(options.port)} is not a port number`);
    const server = http.createServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, address, () => {
        server.off('error', reject);
        resolve();
      });
    });
    const bound = server.address() as AddressInfo;
    let host = bound.address;
    if (host === '0.0.0.0') host = '127.0.0.1';
    if (host === '::') host = '::1';
    const base = `http://${host.includes(':') ? `[${host}]` : host}:${bound.port}`;
    return new StreamingServer(server, options.runtime, options, base);
  }

  /** The port the server listens on. */
  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  /** Number of upgraded sessions running. */
  get sessionCount(): number {
    return this.sessions.size;
  }

  /**
   * Validates an exec request as containerd does and returns its URL.
   * @throws InvalidArgumentError for an empty container id, tty with stderr, or no stream at all.
   */
  getExec(req: ExecRequest): StreamingUrl {
    validate(req, 'or');
    const { containerId, cmd, tty, stdin, stdout, stderr } = req;
    return this.url('exec', { kind: 'exec', req: { kind: 'exec', containerId, cmd: [...(cmd ?? [])], tty, stdin, stdout, stderr } });
  }

  /**
   * Validates an attach request as containerd does and returns its URL.
   * @throws InvalidArgumentError for an empty container id, tty with stderr, or no stream at all.
   */
  getAttach(req: AttachRequest): StreamingUrl {
    validate(req, 'and');
    const { containerId, tty, stdin, stdout, stderr } = req;
    return this.url('attach', { kind: 'attach', req: { kind: 'attach', containerId, cmd: [], tty, stdin, stdout, stderr } });
  }

  /**
   * Validates a port-forward request and returns its URL.
   * @throws InvalidArgumentError for an empty sandbox id.
   */
  getPortForward(req: PortForwardRequest): StreamingUrl {
    if (!req.podSandboxId) throw new InvalidArgumentError('missing required pod_sandbox_id', { bare: true });
    return this.url('portforward', { kind: 'portforward', podSandboxId: req.podSandboxId });
  }

  private url(kind: string, cached: Cached): StreamingUrl {
    if (this.closed) throw new InvalidArgumentError('streaming server is closed', { bare: true });
    return { url: `${this.baseUrl}/${kind}/${this.cache.insert(cached)}` };
  }

  /** Looks the path's token up (consuming it); undefined (a 404) for anything else. */
  private lookup(rawUrl: string | undefined): Cached | undefined {
    const path = (rawUrl ?? '').split('?')[0];
    const m = /^\/([a-z]+)\/([A-Za-z0-9_-]+)\/?$/.exec(path);
    if (!m || !KINDS.has(m[1])) return undefined;
    const cached = this.cache.consume(m[2]);
    return cached && cached.kind === m[1] ? cached : undefined;
  }

  private onRequest(req: http.IncomingMessage, res: http.ServerResponse): void {
    req.resume();
    const cached = req.method === 'GET' || req.method === 'POST' ? this.lookup(req.url) : undefined;
    const reply = (code: number, text: string, headers: Record<string, string | string[]> = {}) => {
      res.writeHead(code, { 'Content-Type': 'text/plain; charset=utf-8', 'X-Content-Type-Options': 'nosniff', ...headers });
      res.end(`${text}\n`);
    };
    if (!cached) return reply(404, '404 page not found');
    const negotiated = negotiate(req, protocolsOf(cached));
    if ('error' in negotiated) return reply(negotiated.code, handshakeBody(cached, negotiated), negotiated.headers);
    reply(400, `unable to upgrade: missing upgrade headers in request: ${JSON.stringify(req.headers)}`);
  }

  private onUpgrade(req: http.IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on('error', () => undefined);
    const raw = (code: number, reason: string, text: string, headers: Record<string, string | string[]> = {}) => {
      const lines = [`HTTP/1.1 ${code} ${reason}`, 'Content-Type: text/plain; charset=utf-8', 'X-Content-Type-Options: nosniff', 'Connection: close'];
      for (const [k, v] of Object.entries(headers)) for (const one of typeof v === 'string' ? [v] : v) lines.push(`${k}: ${one}`);
      const body = Buffer.from(`${text}\n`);
      lines.push(`Content-Length: ${body.length}`, '', '');
      socket.end(Buffer.concat([Buffer.from(lines.join('\r\n')), body]));
    };
    const cached = req.method === 'GET' || req.method === 'POST' ? this.lookup(req.url) : undefined;
    if (!cached) return raw(404, 'Not Found', '404 page not found');
    if (String(req.headers.upgrade ?? '').toLowerCase() === 'websocket') return this.onWebSocket(req, socket, head, cached, raw);
    const negotiated = negotiate(req, protocolsOf(cached));
    if ('error' in negotiated) return raw(negotiated.code, negotiated.code === 403 ? 'Forbidden' : 'Bad Request', handshakeBody(cached, negotiated), negotiated.headers);
    const connection = String(req.headers.connection ?? '').toLowerCase();
    const upgrade = String(req.headers.upgrade ?? '').toLowerCase();
    if (!connection.includes('upgrade') || !upgrade.includes('spdy/3.1')) {
      // WebSocket streaming is not served (see the README).
      return raw(400, 'Bad Request', `unable to upgrade: missing upgrade headers in request: ${JSON.stringify(req.headers)}`);
    }
    if (this.closed) return raw(503, 'Service Unavailable', 'streaming server is closing');
    socket.write(`HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: ${negotiated.protocol}\r\n\r\n`);
    const conn = new SpdyConnection(socket, { server: true, head, idleTimeoutMs: this.idleTimeout });
    const warn = (message: string) => this.logger.warn(message);
    conn.on('close', (err?: Error) => {
      if (err) this.logger.debug?.('streaming connection closed', { error: err.message });
    });
    const opts = { streamCreationTimeoutMs: this.creationTimeout, signal: this.stopping.signal, warn };
    const done =
      cached.kind === 'portforward'
        ? servePortForward(conn, cached.podSandboxId, this.runtime, opts)
        : serveRemoteCommand(conn, negotiated.protocol, cached.req, this.runtime, opts);
    const entry = { conn, done: done.catch((err: unknown) => this.logger.warn('streaming session failed', { error: String(err) })).then(() => conn.destroy()) };
    this.sessions.add(entry);
    void entry.done.then(() => this.sessions.delete(entry));
  }

  private onWebSocket(req: http.IncomingMessage, socket: Duplex, head: Buffer, cached: Cached, raw: (code: number, reason: string, text: string, headers?: Record<string, string | string[]>) => void): void {
    if (cached.kind === 'portforward') return raw(400, 'Bad Request', 'unable to upgrade: port-forward over WebSocket is not supported');
    const key = req.headers['sec-websocket-key'];
    if (typeof key !== 'string' || key === '' || req.headers['sec-websocket-version'] !== '13') return raw(400, 'Bad Request', 'unable to upgrade: not a WebSocket version 13 request');
    const offered = String(req.headers['sec-websocket-protocol'] ?? '')
      .split(',')
      .map((p) => p.trim())
      .filter((p) => p !== '');
    const protocol = offered.length === 0 ? 'channel.k8s.io' : offered.find((p) => (WEBSOCKET_REMOTECOMMAND_PROTOCOLS as readonly string[]).includes(p));
    if (!protocol) {
      return raw(403, 'Forbidden', `unable to upgrade: unable to negotiate protocol: client supports [${offered.join(' ')}], server accepts [${WEBSOCKET_REMOTECOMMAND_PROTOCOLS.join(' ')}]`);
    }
    if (this.closed) return raw(503, 'Service Unavailable', 'streaming server is closing');
    const lines = ['HTTP/1.1 101 Switching Protocols', 'Upgrade: websocket', 'Connection: Upgrade', `Sec-WebSocket-Accept: ${webSocketAccept(key)}`];
    if (offered.length > 0) lines.push(`Sec-WebSocket-Protocol: ${protocol}`);
    socket.write(`${lines.join('\r\n')}\r\n\r\n`);
    const ws = new WebSocketConnection(socket, head, undefined, this.idleTimeout);
    const warn = (message: string) => this.logger.warn(message);
    const done = serveWebSocketRemoteCommand(ws, protocol, cached.req, this.runtime, { streamCreationTimeoutMs: this.creationTimeout, signal: this.stopping.signal, warn });
    const entry = { conn: ws, done: done.catch((err: unknown) => this.logger.warn('streaming session failed', { error: String(err) })).then(() => ws.destroy()) };
    this.sessions.add(entry);
    void entry.done.then(() => this.sessions.delete(entry));
  }

  /**
   * Stops listening, ends live sessions (an exec's process is killed through the runtime's
   * abort signal, and its status sent) and waits for them; sessions that have not ended after
   * `closeGraceMs` are dropped.
   */
  close(): Promise<void> {
    this.closed ??= (async () => {
      const listening = new Promise<void>((resolve) => this.server.close(() => resolve()));
      this.server.closeAllConnections();
      this.stopping.abort();
      const all = Promise.all([...this.sessions].map((s) => s.done));
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([all, new Promise<void>((resolve) => (timer = setTimeout(resolve, this.options.closeGraceMs ?? 5000)))]);
      clearTimeout(timer);
      for (const s of this.sessions) s.conn.destroy();
      await listening;
    })();
    return this.closed;
  }
}

function validate(req: AttachRequest, conj: 'or' | 'and'): void {
  if (!req.containerId) throw new InvalidArgumentError('missing required container_id', { bare: true });
  if (req.tty && req.stderr) throw new InvalidArgumentError('tty and stderr cannot both be true', { bare: true });
  if (!req.stdin && !req.stdout && !req.stderr) throw new InvalidArgumentError(`one of stdin, stdout, ${conj} stderr must be set`, { bare: true });
}

/**
 * The body of a failed handshake. containerd 1.6's exec and attach write the message twice (the
 * handshake writes it, then its caller again), which clients show as is.
 */
function handshakeBody(cached: Cached, negotiated: { error: string; once?: boolean }): string {
  const { error } = negotiated;
  return cached.kind === 'portforward' || negotiated.once ? error : `${error}\n${error}`;
}

function protocolsOf(cached: Cached): readonly string[] {
  return cached.kind === 'portforward' ? PORTFORWARD_PROTOCOLS : REMOTECOMMAND_PROTOCOLS;
}

/**
 * The protocol handshake: the client's X-Stream-Protocol-Version values (repeated headers or
 * comma-separated) against the server's list; the client's first supported choice wins.
 */
export function negotiate(req: http.IncomingMessage, server: readonly string[]): { protocol: string } | { code: 400 | 403; error: string; once?: boolean; headers?: Record<string, string[]> } {
  const lines: string[] = [];
  for (let i = 0; i + 1 < req.rawHeaders.length; i += 2) {
    if (req.rawHeaders[i].toLowerCase() === 'x-stream-protocol-version') lines.push(req.rawHeaders[i + 1]);
  }
  if (lines.length === 0) {
    // containerd 1.6.20's words (its vendored handshake), written once.
    return { code: 400, error: 'unable to upgrade: X-Stream-Protocol-Version is required', once: true };
  }
  const client = lines.flatMap((l) => l.split(',')).map((p) => p.trim()).filter((p) => p !== '');
  if (client.length === 0) return { code: 400, error: `unable to upgrade: header X-Stream-Protocol-Version contains [${lines.join(' ')}], but no valid protocols` };
  const chosen = client.find((p) => server.includes(p));
  if (!chosen) {
    return {
      code: 403,
      error: `unable to upgrade: unable to negotiate protocol: client supports [${client.join(' ')}], server accepts [${server.join(' ')}]`,
      headers: { 'X-Accepted-Stream-Protocol-Versions': [...server] },
    };
  }
  return { protocol: chosen };
}
