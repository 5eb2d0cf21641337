import * as http from 'node:http';
import type { Duplex, Readable, Writable } from 'node:stream';
import { SpdyConnection, type SpdyStream } from './spdy-connection';
import type { TerminalSize } from './runtime';

/** Upgrades a streaming URL to SPDY/3.1 offering `protocols`; resolves with the connection and the chosen protocol. */
export function upgradeToSpdy(url: string, protocols: readonly string[], options: { method?: 'GET' | 'POST' } = {}): Promise<{ conn: SpdyConnection; protocol: string }> {
  return new Promise((resolve, reject) => {
    const headers: http.OutgoingHttpHeaders = { Connection: 'Upgrade', Upgrade: 'SPDY/3.1', 'X-Stream-Protocol-Version': [...protocols] };
    const req = http.request(url, { method: options.method ?? 'POST', headers });
    req.once('upgrade', (res, socket, head) => {
      const protocol = String(res.headers['x-stream-protocol-version'] ?? '');
      resolve({ conn: new SpdyConnection(socket, { server: false, head }), protocol });
    });
    req.once('response', (res) => {
      let body = '';
      res.on('data', (b: Buffer) => (body += b.toString()));
      res.on('end', () => reject(Object.assign(new Error(`${res.statusCode}: ${body.trim()}`), { statusCode: res.statusCode, headers: res.headers })));
    });
    req.once('error', reject);
    req.end();
  });
}

/** Options of a remotecommand client session. */
export interface RemoteCommandClientOptions {
  stdin?: Readable;
  stdout?: Writable;
  stderr?: Writable;
  tty?: boolean;
  /** Sizes to send on the resize stream (with `tty`). */
  resize?: AsyncIterable<TerminalSize> | Iterable<TerminalSize>;
  /** Protocols to offer, best first. Default: v4, v3, v2, channel.k8s.io. */
  protocols?: readonly string[];
}

/** How a remotecommand session ended: the protocol and what the error stream said. */
export interface RemoteCommandResult {
  protocol: string;
  /** The error stream's text (v4: the status JSON; v1-v3: a message, empty on success). */
  error: string;
  /** The exit code, when v4 reported one (0 for success). */
  exitCode?: number;
}

const copy = (from: Readable, to: Writable): Promise<void> =>
  new Promise((resolve) => {
    from.on('end', resolve);
    from.on('close', resolve);
    from.on('error', () => resolve());
    from.pipe(to, { end: false });
  });

/**
 * A remotecommand client over SPDY (what kubectl and crictl do): upgrades `url`, creates the
 * streams in the order servers expect (error, stdin, stdout, stderr, resize), copies, and waits
 * for stdout and stderr to end and then for the error stream. For tests and tools.
 */
export async function streamRemoteCommand(url: string, options: RemoteCommandClientOptions): Promise<RemoteCommandResult> {
  const { conn, protocol } = await upgradeToSpdy(url, options.protocols ?? ['v4.channel.k8s.io', 'v3.channel.k8s.io', 'v2.channel.k8s.io', 'channel.k8s.io']);
  try {
    const errorStream = await conn.openStream({ streamtype: 'error' });
    errorStream.end();
    const stdin = options.stdin ? await conn.openStream({ streamtype: 'stdin' }) : undefined;
    const stdout = options.stdout ? await conn.openStream({ streamtype: 'stdout' }) : undefined;
    const stderr = options.stderr && !options.tty ? await conn.openStream({ streamtype: 'stderr' }) : undefined;
    const resize = options.tty && protocol !== 'v2.channel.k8s.io' && protocol !== 'channel.k8s.io' ? await conn.openStream({ streamtype: 'resize' }) : undefined;
    for (const s of [stdout, stderr]) s?.end();
    let errorText = '';
    const errorDone = new Promise<void>((resolve) => {
      errorStream.on('data', (b: Buffer) => (errorText += b.toString()));
      errorStream.on('end', resolve);
      errorStream.on('close', resolve);
    });
    if (stdin && options.stdin) {
      options.stdin.pipe(stdin);
    }
    if (resize) {
      void (async () => {
        for await (const size of options.resize ?? []) resize.write(`${JSON.stringify({ Width: size.width, Height: size.height })}\n`);
      })().catch(() => undefined);
    }
    await Promise.all([stdout && options.stdout ? copy(stdout, options.stdout) : undefined, stderr && options.stderr ? copy(stderr, options.stderr) : undefined]);
    await errorDone;
    const result: RemoteCommandResult = { protocol, error: errorText };
    if (protocol === 'v4.channel.k8s.io') result.exitCode = exitCodeOf(errorText);
    return result;
  } finally {
    await conn.close();
  }
}

function exitCodeOf(text: string): number | undefined {
  if (text === '') return 0;
  try {
    const s = JSON.parse(text) as { status?: string; reason?: string; details?: { causes?: Array<{ reason?: string; message?: string }> } };
    if (s.status === 'Success') return 0;
    if (s.reason !== 'NonZeroExitCode') return undefined;
    const c = s.details?.causes?.find((x) => x.reason === 'ExitCode');
    return c?.message !== undefined ? Number(c.message) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Opens one port-forward connection on an upgraded portforward.k8s.io session: the error stream
 * (half-closed at once) and the data stream, paired by `requestId`. Read the error stream for a
 * failure's text.
 */
export async function openPortForwardStreams(conn: SpdyConnection, port: number, requestId: number): Promise<{ error: SpdyStream; data: Duplex }> {
  const headers = { port: String(port), requestid: String(requestId) };
  const error = await conn.openStream({ ...headers, streamtype: 'error' });
  error.end();
  const data = await conn.openStream({ ...headers, streamtype: 'data' });
  return { error, data };
}
