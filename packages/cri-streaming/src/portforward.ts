import type { SpdyConnection, SpdyStream } from './spdy-connection';
import type { StreamingRuntime } from './runtime';

/** The port-forward protocol this server speaks over SPDY. */
export const PORTFORWARD_PROTOCOLS = ['portforward.k8s.io'] as const;

/** Options of one port-forward session. */
export interface PortForwardOptions {
  /** How long one stream of a pair waits for the other, in ms (containerd: 30 s). */
  streamCreationTimeoutMs: number;
  /** Aborted when the server closes. */
  signal: AbortSignal;
  warn(message: string): void;
}

interface Pair {
  error?: SpdyStream;
  data?: SpdyStream;
  timer: NodeJS.Timeout;
}

/**
 * Serves one port-forward connection until the client closes it: every TCP connection the client
 * forwards arrives as an `error` stream and a `data` stream with the same `requestid` (without
 * one, the error stream's id, or the data stream's id minus 2, stands in); once both are there
 * the runtime connects the data stream to the port, and a failure's text goes on the error
 * stream. Both streams are then closed. Never rejects.
 */
export function servePortForward(conn: SpdyConnection, podSandboxId: string, runtime: StreamingRuntime, options: PortForwardOptions): Promise<void> {
  const pairs = new Map<string, Pair>();
  const session = new AbortController();
  const running = new Set<Promise<void>>();

  const onStream = (s: SpdyStream) => {
    const type = s.header('streamtype');
    let id = s.header('requestid');
    if (id === undefined) id = String(type === 'data' ? s.id - 2 : s.id);
    if (type !== 'error' && type !== 'data') {
      options.warn(`port-forward: invalid stream type ${JSON.stringify(type ?? '')}`);
      s.destroy();
      return;
    }
    let p = pairs.get(id);
    if (!p) {
      p = {
        timer: setTimeout(() => {
          pairs.delete(id);
          options.warn(`port-forward: timed out waiting for the other stream of request ${id}`);
          p!.error?.destroy();
          p!.data?.destroy();
        }, options.streamCreationTimeoutMs),
      };
      pairs.set(id, p);
    }
    if (p[type]) {
      options.warn(`port-forward: request ${id} has two ${type} streams`);
      s.destroy();
      return;
    }
    p[type] = s;
    if (type === 'error') s.resume(); // the client half-closes it at once and never writes
    if (p.error && p.data) {
      clearTimeout(p.timer);
      pairs.delete(id);
      const task = forward(podSandboxId, p.error, p.data, runtime, session.signal);
      running.add(task);
      void task.finally(() => running.delete(task));
    }
  };

  return new Promise((resolve) => {
    const end = () => {
      conn.off('stream', onStream);
      options.signal.removeEventListener('abort', onAbort);
      session.abort();
      for (const p of pairs.values()) {
        clearTimeout(p.timer);
        p.error?.destroy();
        p.data?.destroy();
      }
      pairs.clear();
      void Promise.all([...running]).then(() => resolve());
    };
    const onAbort = () => void conn.close();
    conn.on('stream', onStream);
    conn.once('close', end);
    options.signal.addEventListener('abort', onAbort);
  });
}

async function forward(podSandboxId: string, error: SpdyStream, data: SpdyStream, runtime: StreamingRuntime, signal: AbortSignal): Promise<void> {
  const portText = data.header('port') ?? '';
  const port = /^\d{1,5}$/.test(portText) ? Number(portText) : NaN;
  try {
    if (!(port > 0 && port <= 65535)) throw new Error(`invalid port ${JSON.stringify(portText)}`);
    await runtime.portForward(podSandboxId, port, data, signal);
  } catch (err) {
    const message = `error forwarding port ${Number.isNaN(port) ? portText : port} to pod ${podSandboxId}, uid : ${err instanceof Error ? err.message : String(err)}`;
    if (!error.destroyed && !error.writableEnded) error.write(message);
  }
  if (!data.destroyed && !data.writableEnded) data.end();
  if (!error.destroyed && !error.writableEnded) error.end();
}
