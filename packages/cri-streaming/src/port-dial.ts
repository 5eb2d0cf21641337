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

/**
 * How containerd dials `localhost:<port>` (Go's net.Dial "tcp4", then "tcp6"), in plain
 * JavaScript so that the same text runs here and in the helper inside a namespace: the addresses
 * of "localhost" in /etc/hosts for each family (127.0.0.1 and ::1 when the file has none), and
 * Go's words for failures ("dial tcp4 127.0.0.1:80: connect: connection refused", "dial tcp6:
 * address localhost: no suitable address found").
 */
const DIAL_JS = `
const net = require('node:net');
const fs = require('node:fs');
const TEXT = { ECONNREFUSED: 'connection refused', ENETUNREACH: 'network is unreachable', EHOSTUNREACH: 'no route to host', EADDRNOTAVAIL: 'cannot assign requested address', ETIMEDOUT: 'connection timed out' };
function localhostAddresses(v6) {
  let text = '';
  try { text = fs.readFileSync('/etc/hosts', 'utf8'); } catch { return [v6 ? '::1' : '127.0.0.1']; }
  const all = [];
  for (const line of text.split('\\n')) {
    const words = line.replace(/#.*/, '').trim().split(/\\s+/);
    if (words.length > 1 && words.slice(1).includes('localhost')) all.push(words[0]);
  }
  if (all.length === 0) return [v6 ? '::1' : '127.0.0.1'];
  return all.filter((a) => net.isIP(a) === (v6 ? 6 : 4));
}
function connect(host, port) {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host, port });
    // Paused before it connects, Node never starts reading: in the helper, bytes read before the
    // socket is handed over (and closed there) would be lost to the parent.
    s.pause();
    s.once('connect', () => { s.removeAllListeners('error'); resolve(s); });
    s.once('error', reject);
  });
}
async function dialFamily(port, v6) {
  const addrs = localhostAddresses(v6);
  if (addrs.length === 0) return { error: 'dial ' + (v6 ? 'tcp6' : 'tcp4') + ': address localhost: no suitable address found' };
  let first;
  for (const a of addrs) {
    try { return { socket: await connect(a, port) }; } catch (e) {
      first = first || 'dial ' + (v6 ? 'tcp6 [' + a + ']' : 'tcp4 ' + a) + ':' + port + ': connect: ' + (TEXT[e.code] || e.message);
    }
  }
  return { error: first };
}
async function dialLocalhost(port) {
  const r4 = await dialFamily(port, false);
  if (r4.socket) return r4;
  const r6 = await dialFamily(port, true);
  if (r6.socket) return r6;
  return { e4: r4.error, e6: r6.error };
}
`;

type DialResult = { socket?: net.Socket; e4?: string; e6?: string };
// eslint-disable-next-line @typescript-eslint/no-implied-eval
const dialLocalhost = new Function('require', `${DIAL_JS}\nreturn dialLocalhost;`)(require) as (port: number) => Promise<DialResult>;

/** containerd's message when neither family connects ("IPv6" without a colon, and the trailing space, are its). */
function notConnected(port: number, where: string, name: string, e4: string, e6: string): string {
  return `failed to execute portforward in network namespace ${JSON.stringify(where)}: failed to connect to localhost:${port} inside namespace ${JSON.stringify(name)}, IPv4: ${e4} IPv6 ${e6} `;
}

/** Dials localhost:port in this process's namespace. */
async function dialHere(port: number, name: string): Promise<net.Socket> {
  const r = await dialLocalhost(port);
  if (r.socket) return r.socket;
  throw new PortDialError(notConnected(port, 'host', name, r.e4 ?? '', r.e6 ?? ''));
}

/**
 * The helper that runs inside the namespace: it connects, hands the connected socket to its
 * parent over the IPC channel and exits. The socket stays in the namespace it was made in, so
 * the data then flows in berthd without a copying process in between.
 */
const HELPER = `${DIAL_JS}
// The parent disconnects once it has the answer; exiting earlier could lose a message in flight.
process.once('disconnect', () => process.exit(0));
dialLocalhost(Number(process.argv[1])).then((r) => {
  if (r.socket) {
    process.send({ ok: true }, r.socket);
  } else {
    process.send({ e4: r.e4, e6: r.e6 });
  }
});
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
  // Each helper is a Node process (tens of MiB for ~100 ms): a burst of connections waits its turn.
  await helperSlot.acquire();
  try {
    return await dialWithHelper(netnsPath, port, name, options);
  } finally {
    helperSlot.release();
  }
}

/** A counting semaphore. */
class Slots {
  private waiting: Array<() => void> = [];
  private used = 0;
  constructor(private readonly max: number) {}
  acquire(): Promise<void> {
    if (this.used < this.max) {
      this.used++;
      return Promise.resolve();
    }
    return new Promise((resolve) => this.waiting.push(resolve));
  }
  release(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.used--;
  }
}

/** At most this many namespace helpers run at once (per process). */
export const MAX_CONCURRENT_DIAL_HELPERS = 8;
const helperSlot = new Slots(MAX_CONCURRENT_DIAL_HELPERS);

function dialWithHelper(netnsPath: string, port: number, name: string, options: DialOptions): Promise<net.Socket> {
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
      if (child.connected) child.disconnect();
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
      else settle(new PortDialError(notConnected(port, netnsPath, name, m?.e4 ?? 'no socket', m?.e6 ?? 'no socket')));
    });
    child.on('error', (err) => settle(new PortDialError(`cannot run nsenter: ${err.message}`)));
    // 'close', not 'exit': stderr and the IPC channel (a message still in flight) are read to
    // their end first, so nsenter's own words are there (on a loaded machine 'exit' came before them).
    child.on('close', (code, sig) => {
      settle(new PortDialError(`failed to enter network namespace ${JSON.stringify(netnsPath)}: ${stderr.trim() || `helper exited with ${code ?? sig}`}`));
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
