import type { Readable, Writable } from 'node:stream';
import type { SpdyConnection, SpdyStream } from './spdy-connection';
import type { StreamingIo, StreamingRuntime, TerminalSize } from './runtime';

/** remotecommand protocols this server speaks over SPDY, best first (containerd's list). */
export const REMOTECOMMAND_PROTOCOLS = ['v4.channel.k8s.io', 'v3.channel.k8s.io', 'v2.channel.k8s.io', 'channel.k8s.io'] as const;

/** An exec or attach request as the CRI call cached it (the URL carries only the token). */
export interface RemoteCommandRequest {
  kind: 'exec' | 'attach';
  containerId: string;
  /** The command (exec only). */
  cmd: string[];
  stdin: boolean;
  stdout: boolean;
  stderr: boolean;
  tty: boolean;
}

/** A Kubernetes `Status` as the v4 error stream carries it, fields in Go's order. */
interface Status {
  metadata: Record<string, never>;
  status: 'Success' | 'Failure';
  message?: string;
  reason?: string;
  details?: { causes: Array<{ reason?: string; message: string }> };
  code?: number;
}

/** The v4 status for an exit code (0 is success), with containerd's and Kubernetes' wording. */
export function exitStatus(cmd: readonly string[], code: number): Status {
  if (code === 0) return { metadata: {}, status: 'Success' };
  return {
    metadata: {},
    status: 'Failure',
    message: `command terminated with non-zero exit code: error executing command [${cmd.join(' ')}], exit code ${code}`,
    reason: 'NonZeroExitCode',
    details: { causes: [{ reason: 'ExitCode', message: String(code) }] },
  };
}

/** The v4 status for any other failure (`InternalError`, code 500). */
export function internalErrorStatus(message: string): Status {
  return { metadata: {}, status: 'Failure', message: `Internal error occurred: ${message}`, reason: 'InternalError', details: { causes: [{ message }] }, code: 500 };
}

/** Options of one remotecommand session. */
export interface RemoteCommandOptions {
  /** How long the client has to create its streams, in ms (containerd: 30 s). */
  streamCreationTimeoutMs: number;
  /** Aborted when the server closes. */
  signal: AbortSignal;
  /** Reports problems that only the server's log should see. */
  warn(message: string): void;
}

type StreamType = 'error' | 'stdin' | 'stdout' | 'stderr' | 'resize';

/**
 * Runs one exec or attach session on an upgraded SPDY connection with the negotiated protocol:
 * waits for the client's streams (error, stdin, stdout, stderr, resize as requested), runs the
 * command through the runtime, then ends stdout and stderr, writes the status on the error stream
 * (v4: JSON; v1-v3: the message as text, nothing on success), ends it and closes the connection.
 * Never rejects.
 */
export async function serveRemoteCommand(conn: SpdyConnection, protocol: string, req: RemoteCommandRequest, runtime: StreamingRuntime, options: RemoteCommandOptions): Promise<void> {
  const resizable = protocol === 'v4.channel.k8s.io' || protocol === 'v3.channel.k8s.io';
  const expected = 1 + Number(req.stdin) + Number(req.stdout) + Number(req.stderr) + Number(req.tty && resizable);
  const streams = await waitForStreams(conn, expected, options);
  if (!streams) {
    options.warn(`${req.kind} ${req.containerId}: timed out waiting for client to create streams`);
    await conn.close();
    return;
  }
  // Streams the client opens later have no use: reset them.
  conn.on('stream', (extra: SpdyStream) => extra.destroy());
  if (protocol === 'channel.k8s.io') {
    // containerd's v1 handler resets the error stream as soon as the streams are there (so a v1
    // client never sees a status) and closes its side of stdin.
    streams.error?.resetStream();
    streams.stdin?.end();
  }
  // The stream types the session does not read are drained, so they can finish.
  streams.error?.resume();
  if (!req.stdin) streams.stdin?.resume();
  if (!req.tty) streams.resize?.resume();
  for (const s of [streams.stdout, streams.stderr]) s?.resume();
  await runSession(
    {
      ...streams,
      statusAsJson: protocol === 'v4.channel.k8s.io',
      isClosed: () => conn.isClosed,
      onClose: (fn) => conn.once('close', fn),
      offClose: (fn) => conn.off('close', fn),
      close: () => conn.close(),
    },
    req,
    runtime,
    options,
  );
}

/** A session's streams, whatever carries them (SPDY streams or WebSocket channels). */
export interface SessionStreams {
  error?: Writable;
  stdin?: Readable;
  stdout?: Writable;
  stderr?: Writable;
  resize?: Readable;
  /** v4 and v5 send the status as JSON; older protocols as text, nothing on success. */
  statusAsJson: boolean;
  isClosed(): boolean;
  onClose(fn: () => void): void;
  offClose(fn: () => void): void;
  close(): Promise<void>;
}

/**
 * Runs an exec or attach through the runtime once the client's streams are there, then ends
 * stdout and stderr, writes the status on the error stream, ends it and closes the connection.
 */
export async function runSession(streams: SessionStreams, req: RemoteCommandRequest, runtime: StreamingRuntime, options: Pick<RemoteCommandOptions, 'signal'>): Promise<void> {
  const session = new AbortController();
  const abort = () => session.abort();
  options.signal.addEventListener('abort', abort);
  streams.onClose(abort);
  const io: StreamingIo = { tty: req.tty, signal: session.signal };
  if (req.stdin && streams.stdin) io.stdin = streams.stdin;
  if (req.stdout && streams.stdout) io.stdout = streams.stdout;
  if (req.stderr && streams.stderr && !req.tty) io.stderr = streams.stderr;
  if (req.tty && streams.resize) io.resize = latestSizes(streams.resize);

  let status: Status;
  try {
    if (req.kind === 'exec') {
      status = exitStatus(req.cmd, await runtime.exec(req.containerId, req.cmd, io));
    } else {
      await runtime.attach(req.containerId, io);
      status = { metadata: {}, status: 'Success' };
    }
  } catch (err) {
    // containerd's streaming adapter wraps exec errors ("failed to exec in container"), not attach's.
    const what = req.kind === 'exec' ? 'error executing command in container: failed to exec in container' : 'error attaching to container';
    status = internalErrorStatus(`${what}: ${err instanceof Error ? err.message : String(err)}`);
  } finally {
    options.signal.removeEventListener('abort', abort);
  }
  if (!streams.isClosed()) {
    await Promise.all([finish(streams.stdout), finish(streams.stderr)]);
    const err = streams.error;
    if (err && !err.destroyed) {
      if (streams.statusAsJson) err.write(JSON.stringify(status));
      else if (status.status !== 'Success') err.write(status.message ?? '');
      await finish(err);
    }
    await streams.close();
  }
  streams.offClose(abort);
}

async function waitForStreams(conn: SpdyConnection, expected: number, options: RemoteCommandOptions): Promise<Partial<Record<StreamType, SpdyStream>> | undefined> {
  const got: Partial<Record<StreamType, SpdyStream>> = {};
  return new Promise((resolve) => {
    let count = 0;
    const done = (ok: boolean) => {
      clearTimeout(timer);
      conn.off('stream', onStream);
      conn.off('close', onClose);
      options.signal.removeEventListener('abort', onClose);
      resolve(ok ? got : undefined);
    };
    const onStream = (s: SpdyStream) => {
      const type = s.header('streamtype');
      if (type === 'error' || type === 'stdin' || type === 'stdout' || type === 'stderr' || type === 'resize') {
        got[type]?.destroy();
        got[type] = s;
      } else {
        options.warn(`unexpected stream type: ${JSON.stringify(type ?? '')}`);
        s.resume();
      }
      // containerd counts every stream it replied to, known type or not.
      if (++count === expected) done(true);
    };
    const onClose = () => done(false);
    const timer = setTimeout(() => done(false), options.streamCreationTimeoutMs);
    conn.on('stream', onStream);
    conn.once('close', onClose);
    options.signal.addEventListener('abort', onClose);
  });
}

/** Ends a writable (if still open) and waits until it finished or was destroyed. */
function finish(w: Writable | undefined): Promise<void> {
  if (!w || w.destroyed || w.writableFinished) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      w.off('finish', done);
      w.off('close', done);
      resolve();
    };
    w.on('finish', done);
    w.on('close', done);
    if (!w.writableEnded) w.end();
  });
}

/** Largest resize message accepted; longer lines are dropped. */
const MAX_RESIZE_LINE = 4096;

/**
 * Terminal sizes from the resize stream: newline-delimited JSON `{"Width":W,"Height":H}` (field
 * names matched without case, as Go's decoder does). Ends with the stream or on a line that is
 * not a size, as containerd stops reading then.
 */
export async function* resizeEvents(stream: AsyncIterable<Buffer | string>): AsyncGenerator<TerminalSize> {
  let buf = '';
  for await (const chunk of stream) {
    buf += chunk.toString();
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl).trim();
      buf = buf.slice(nl + 1);
      if (line === '') continue;
      const size = parseSize(line);
      if (!size) return;
      yield size;
    }
    if (buf.length > MAX_RESIZE_LINE) return;
  }
  const last = buf.trim();
  if (last !== '') {
    const size = parseSize(last);
    if (size) yield size;
  }
}

function parseSize(line: string): TerminalSize | undefined {
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch {
    return undefined;
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return undefined;
  const out = { width: 0, height: 0 };
  for (const [k, n] of Object.entries(v)) {
    const key = k.toLowerCase();
    if (key !== 'width' && key !== 'height') continue;
    if (typeof n !== 'number' || !Number.isInteger(n) || n < 0 || n > 0xffff) return undefined;
    out[key] = n;
  }
  return out;
}

/**
 * Reads the resize stream at once (so an unread resize stream never pauses the connection) and
 * gives its sizes to one consumer; when the consumer is slow, only the newest 16 are kept.
 */
function latestSizes(stream: AsyncIterable<Buffer | string>): AsyncIterable<TerminalSize> {
  const queue: TerminalSize[] = [];
  let ended = false;
  let wake: (() => void) | undefined;
  void (async () => {
    try {
      for await (const size of resizeEvents(stream)) {
        queue.push(size);
        if (queue.length > 16) queue.shift();
        wake?.();
      }
    } catch {
      // A reset stream ends the sizes.
    }
    ended = true;
    wake?.();
  })();
  return {
    async *[Symbol.asyncIterator]() {
      for (;;) {
        const next = queue.shift();
        if (next) {
          yield next;
          continue;
        }
        if (ended) return;
        await new Promise<void>((resolve) => (wake = resolve));
        wake = undefined;
      }
    },
  };
}
