import { spawn } from 'node:child_process';
import * as net from 'node:net';
import type { Duplex } from 'node:stream';

/** Raised when nothing listens on the port (or the namespace cannot be entered). */
export class PortDialError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PortDialError';
  }
}

const SYSCALL_TEXT: Record<string, string> = {
  ECONNREFUSED: 'connection refused',
  ENETUNREACH: 'network is unreachable',
  EHOSTUNREACH: 'no route to host',
  EADDRNOTAVAIL: 'cannot assign requested address',
  ETIMEDOUT: 'connection timed out',
};

/** A connect error in Go's words ("dial tcp4 127.0.0.1:80: connect: connection refused"), as containerd reports it. */
export function goDialError(err: { code?: string; message: string }, host: string, port: number): string {
  const family = host.includes(':') ? 'tcp6' : 'tcp4';
  const addr = host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
  const text = (err.code && SYSCALL_TEXT[err.code]) ?? err.message;
  return `dial ${family} ${addr}: connect: ${text}`;
}

/** containerd's message when neither family connects ("IPv6" without a colon, and a trailing space, are its). */
function notConnected(port: number, name: string, e4: string, e6: string): string {
  return `failed to connect to localhost:${port} inside namespace ${JSON.stringify(name)}, IPv4: ${e4} IPv6 ${e6} `;
}

function connect(host: string, port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host, port });
    s.once('connect', () => {
      s.removeAllListeners('error');
      resolve(s);
    });
    s.once('error', reject);
  });
}

/** Dials localhost:port (tcp4 on 127.0.0.1, then tcp6 on ::1) in this process's namespace. */
async function dialHere(port: number, name: string): Promise<net.Socket> {
  try {
    return await connect('127.0.0.1', port);
  } catch (err4) {
    try {
      return await connect('::1', port);
    } catch (err6) {
      throw new PortDialError(notConnected(port, name, goDialError(err4 as Error, '127.0.0.1', port), goDialError(err6 as Error, '::1', port)));
    }
  }
}

/**
 * The helper that runs inside the namespace: it connects, hands the connected socket to its
 * parent over the IPC channel and exits. The socket stays in the namespace it was made in, so
 * the data then flows in berthd without a copying process in between.
 */
const HELPER = `
const net = require('node:net');
const port = Number(process.argv[1]);
const TEXT = ${JSON.stringify(SYSCALL_TEXT)};
const goError = (e, host) => 'dial ' + (host.includes(':') ? 'tcp6 [' + host + ']' : 'tcp4 ' + host) + ':' + port + ': connect: ' + (TEXT[e.code] || e.message);
const connect = (host) => new Promise((resolve, reject) => {
  const s = net.connect({ host, port });
  s.once('connect', () => { s.removeAllListeners('error'); resolve(s); });
  s.once('error', reject);
});
(async () => {
  let s;
  let e4;
  try { s = await connect('127.0.0.1'); } catch (e) { e4 = e; }
  if (!s) {
    try { s = await connect('::1'); } catch (e6) {
      process.send({ e4: goError(e4, '127.0.0.1'), e6: goError(e6, '::1') }, () => process.exit(0));
      return;
    }
  }
  s.pause();
  process.send({ ok: true }, s, () => process.exit(0));
})();
`;

/**
 * Connects to TCP `port` on localhost inside the network namespace at `netnsPath` (undefined:
 * this process's own, for host-network pods). Node cannot move a thread into a namespace, so a
 * short-lived helper (`nsenter --net=<path>` running Node) connects there and passes the socket
 * back; ~50-100 ms per connection.
 *
 * @throws PortDialError when nothing listens or the namespace cannot be entered.
 */
export async function dialPort(netnsPath: string | undefined, port: number, options: DialOptions = {}): Promise<net.Socket> {
  if (!Number.isInteger(port) || port <= 0 || port > 65535) throw new PortDialError(`invalid port ${port}`);
  const name = options.name ?? netnsPath ?? 'host';
  if (netnsPath === undefined || netnsPath === '') return dialHere(port, name);
  return new Promise((resolve, reject) => {
    const child = spawn(options.nsenter ?? 'nsenter', [`--net=${netnsPath}`, process.execPath, '-e', HELPER, String(port)], {
      stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
      env: { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin' },
    });
    let stderr = '';
    let settled = false;
    const settle = (err: Error | undefined, socket?: net.Socket) => {
      if (settled) {
        socket?.destroy();
        return;
      }
      settled = true;
      clearTimeout(timer);
      if (err) reject(err);
      else resolve(socket!);
    };
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      settle(new PortDialError(`failed to connect to localhost:${port} inside namespace ${JSON.stringify(name)}: timed out`));
    }, options.timeoutMs ?? 30_000);
    child.stderr!.on('data', (b: Buffer) => {
      if (stderr.length < 4096) stderr += b.toString();
    });
    child.on('message', (m: { ok?: boolean; e4?: string; e6?: string }, handle: unknown) => {
      if (m?.ok && handle instanceof net.Socket) settle(undefined, handle);
      else settle(new PortDialError(notConnected(port, name, m?.e4 ?? 'no socket', m?.e6 ?? 'no socket')));
    });
    child.on('error', (err) => settle(new PortDialError(`cannot run nsenter: ${err.message}`)));
    child.on('exit', (code, sig) => {
      // Let a message still in flight arrive first.
      setImmediate(() =>
        settle(new PortDialError(`failed to enter network namespace ${JSON.stringify(netnsPath)}: ${stderr.trim() || `helper exited with ${code ?? sig}`}`)),
      );
    });
  });
}

/**
 * Copies between a client stream and a TCP socket until both directions are done: the client's
 * end half-closes the socket, the socket's end ends the stream. Resolves when the socket closed;
 * `signal` cuts both.
 */
export function pipeBothWays(stream: Duplex, socket: net.Socket, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const stop = () => {
      socket.destroy();
      if (!stream.writableEnded) stream.end();
    };
    if (signal?.aborted) stop();
    signal?.addEventListener('abort', stop, { once: true });
    socket.on('error', () => undefined);
    stream.on('error', () => undefined);
    stream.pipe(socket); // ends the socket's write side at the client's FIN
    socket.pipe(stream); // FINs the stream when the pod closes its side
    socket.once('close', () => {
      signal?.removeEventListener('abort', stop);
      stream.unpipe(socket);
      if (!stream.writableEnded && !stream.destroyed) stream.end();
      resolve();
    });
    stream.once('close', () => {
      // The client reset the stream or the connection went away.
      if (!socket.destroyed) socket.destroy();
    });
    socket.resume();
  });
}

/**
 * Forwards one port-forward stream to `port` on localhost in the namespace at `netnsPath`
 * (undefined: this process's): what a `StreamingRuntime.portForward` does once it knows the
 * sandbox's namespace.
 */
export async function forwardPort(netnsPath: string | undefined, port: number, stream: Duplex, options: DialOptions & { signal?: AbortSignal } = {}): Promise<void> {
  const socket = await dialPort(netnsPath, port, options);
  await pipeBothWays(stream, socket, options.signal);
}

/** Options of dialPort and forwardPort. */
export interface DialOptions {
  /** What error messages call the namespace; containerd says the sandbox id. Default: the path, or "host". */
  name?: string;
  /** The nsenter binary. Default `nsenter` from PATH. */
  nsenter?: string;
  /** How long the helper may take, in ms. Default 30 000. */
  timeoutMs?: number;
}
