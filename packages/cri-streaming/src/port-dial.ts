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
async function dialHere(port: number): Promise<net.Socket> {
  try {
    return await connect('127.0.0.1', port);
  } catch (err4) {
    try {
      return await connect('::1', port);
    } catch (err6) {
      throw new PortDialError(`failed to connect to localhost:${port}, IPv4: ${(err4 as Error).message} IPv6: ${(err6 as Error).message}`);
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
      process.send({ error: 'IPv4: ' + e4.message + ' IPv6: ' + e6.message }, () => process.exit(0));
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
export async function dialPort(netnsPath: string | undefined, port: number, options: { nsenter?: string; timeoutMs?: number } = {}): Promise<net.Socket> {
  if (!Number.isInteger(port) || port <= 0 || port > 65535) throw new PortDialError(`invalid port ${port}`);
  if (netnsPath === undefined || netnsPath === '') return dialHere(port);
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
      settle(new PortDialError(`failed to connect to localhost:${port} inside namespace ${JSON.stringify(netnsPath)}: timed out`));
    }, options.timeoutMs ?? 30_000);
    child.stderr!.on('data', (b: Buffer) => {
      if (stderr.length < 4096) stderr += b.toString();
    });
    child.on('message', (m: { ok?: boolean; error?: string }, handle: unknown) => {
      if (m?.ok && handle instanceof net.Socket) settle(undefined, handle);
      else settle(new PortDialError(`failed to connect to localhost:${port} inside namespace ${JSON.stringify(netnsPath)}, ${m?.error ?? 'no socket'}`));
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
export async function forwardPort(netnsPath: string | undefined, port: number, stream: Duplex, signal?: AbortSignal): Promise<void> {
  const socket = await dialPort(netnsPath, port);
  await pipeBothWays(stream, socket, signal);
}
