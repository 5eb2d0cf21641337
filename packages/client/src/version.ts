/**
 * `@berth/client/version`: the daemon's version in one gRPC call made with Node's own HTTP/2,
 * without grpc-js or the generated services. A command-line program that prints versions starts
 * in the time Node itself takes: loading grpc-js and every generated service costs about 150 ms of
 * a cold start, this module a few.
 *
 * The call is containerd's `containerd.services.version.v1.Version/Version` (an empty request; the
 * response's fields 1 and 2 are the version and revision), answered the same by berthd and
 * containerd.
 */
import { type ClientHttp2Session, connect as http2Connect, constants } from 'node:http2';
import { connect as netConnect } from 'node:net';
import { DataLossError, DeadlineExceededError, UnavailableError, fromGrpcStatus } from '@berth/errdefs';

const VERSION_PATH = '/containerd.services.version.v1.Version/Version';
/** The first wait between attempts to reach a socket nobody listens on yet; it doubles up to RETRY_MAX_MS. */
const RETRY_MIN_MS = 10;
const RETRY_MAX_MS = 500;

export interface DaemonVersion {
  version: string;
  revision: string;
}

export interface VersionCallOptions {
  /** Milliseconds to wait for the socket to accept a connection (the default client's 10 s). */
  connectTimeout?: number;
  /** Milliseconds for the call itself once connected (default 10 s). */
  timeout?: number;
}

/** Asks the daemon at `address` (a unix socket path, `unix://` allowed) for its version and revision. */
export async function daemonVersion(address: string, options: VersionCallOptions = {}): Promise<DaemonVersion> {
  const body = await unaryCall(address.replace(/^unix:\/\//, ''), VERSION_PATH, new Uint8Array(0), options);
  return decodeVersionResponse(body);
}

/**
 * Decodes a VersionResponse: version = 1 and revision = 2, both strings; other fields are skipped.
 * Written out here because the protobuf runtime's reader module weighs 100 kB with its imports.
 */
export function decodeVersionResponse(bytes: Uint8Array): DaemonVersion {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out: DaemonVersion = { version: '', revision: '' };
  let pos = 0;
  const varint = (): number => {
    let value = 0;
    for (let shift = 0; ; shift += 7) {
      if (pos >= buf.length || shift > 63) throw new DataLossError('VersionResponse: a truncated varint');
      const b = buf[pos++]!;
      if (shift < 49) value += (b & 0x7f) * 2 ** shift;
      if ((b & 0x80) === 0) return value;
    }
  };
  const take = (n: number): Buffer => {
    if (n > buf.length - pos) throw new DataLossError('VersionResponse: a field runs past the message');
    pos += n;
    return buf.subarray(pos - n, pos);
  };
  while (pos < buf.length) {
    const tag = varint();
    const wire = tag % 8;
    const field = Math.floor(tag / 8);
    if (wire === 0) varint();
    else if (wire === 1) take(8);
    else if (wire === 5) take(4);
    else if (wire === 2) {
      const value = take(varint());
      if (field === 1) out.version = value.toString('utf8');
      else if (field === 2) out.revision = value.toString('utf8');
    } else throw new DataLossError(`VersionResponse: wire type ${wire} (field ${field}) is not one this message can hold`);
  }
  return out;
}

/**
 * One unary gRPC call over a unix socket: a 5-byte length prefix before each message, the status in
 * the trailers (or, when the server answers at once, in the headers). Waits for the socket as the
 * grpc-js connection does, so a daemon that is still starting is waited for, not refused.
 */
async function unaryCall(socket: string, path: string, request: Uint8Array, options: VersionCallOptions): Promise<Buffer> {
  const session = await openSession(socket, options.connectTimeout ?? 10_000);
  try {
    return await new Promise<Buffer>((resolve, reject) => {
      const frame = Buffer.alloc(5 + request.length);
      frame.writeUInt32BE(request.length, 1);
      frame.set(request, 5);
      const timeoutMs = options.timeout ?? 10_000;
      const stream = session.request({
        [constants.HTTP2_HEADER_METHOD]: 'POST',
        [constants.HTTP2_HEADER_PATH]: path,
        [constants.HTTP2_HEADER_CONTENT_TYPE]: 'application/grpc',
        te: 'trailers',
        'grpc-timeout': `${timeoutMs}m`,
      });
      const timer = setTimeout(() => {
        stream.close(constants.NGHTTP2_CANCEL);
        reject(new DeadlineExceededError(`${path}: no answer from ${socket} in ${timeoutMs} ms`));
      }, timeoutMs);
      const chunks: Buffer[] = [];
      let status: { code: number; message: string } | undefined;
      const readStatus = (headers: Record<string, unknown>) => {
        const code = headers['grpc-status'];
        if (code !== undefined) status = { code: Number(code), message: decodeGrpcMessage(String(headers['grpc-message'] ?? '')) };
      };
      stream.on('response', (headers) => readStatus(headers));
      stream.on('trailers', (trailers) => readStatus(trailers));
      stream.on('data', (chunk: Buffer) => chunks.push(chunk));
      stream.on('error', (err) => {
        clearTimeout(timer);
        reject(new UnavailableError(`${path} on ${socket}: ${err.message}`, { cause: err }));
      });
      stream.on('close', () => {
        clearTimeout(timer);
        if (!status) return reject(new UnavailableError(`${path} on ${socket}: the stream closed without a gRPC status`));
        if (status.code !== 0) return reject(fromGrpcStatus({ code: status.code, details: status.message }));
        const data = Buffer.concat(chunks);
        if (data.length < 5 || data[0] !== 0 || data.readUInt32BE(1) !== data.length - 5) {
          return reject(new UnavailableError(`${path} on ${socket}: the answer is not one uncompressed gRPC message`));
        }
        resolve(data.subarray(5));
      });
      stream.end(frame);
    });
  } finally {
    // The call is over, answered or not: nothing more is owed to the server.
    session.destroy();
  }
}

/** Opens an HTTP/2 session on the socket, trying again while nothing listens there yet. */
async function openSession(socket: string, connectTimeoutMs: number): Promise<ClientHttp2Session> {
  const deadline = Date.now() + connectTimeoutMs;
  let wait = RETRY_MIN_MS;
  for (;;) {
    try {
      return await openOnce(socket);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      const retryable = code === 'ENOENT' || code === 'ECONNREFUSED' || code === 'EAGAIN';
      const left = deadline - Date.now();
      if (!retryable || left <= 0) {
        throw new UnavailableError(`connection to ${socket} not ready after ${connectTimeoutMs} ms (${(err as Error).message})`, { cause: err });
      }
      await new Promise((r) => setTimeout(r, Math.min(wait, left)));
      wait = Math.min(wait * 2, RETRY_MAX_MS);
    }
  }
}

function openOnce(socket: string): Promise<ClientHttp2Session> {
  return new Promise((resolve, reject) => {
    // grpc-js and Go's grpc both send "localhost" as the authority of a unix socket.
    const session = http2Connect('http://localhost', { createConnection: () => netConnect(socket) });
    const onError = (err: Error) => {
      session.destroy();
      reject(err);
    };
    session.once('error', onError);
    session.once('connect', () => {
      session.off('error', onError);
      session.on('error', () => undefined); // a later failure ends the call's stream, which reports it
      resolve(session);
    });
  });
}

/** grpc-message is percent-encoded (gRPC's HTTP/2 protocol). */
function decodeGrpcMessage(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}
