/**
 * `@berth/client/version`: the daemon's version in one gRPC call, made by this package's own
 * minimal HTTP/2 client (h2c.ts, on node:net), without grpc-js, the generated services or Node's
 * http2 module. A command-line program that prints versions starts in the time Node itself takes:
 * loading grpc-js and every generated service costs about 150 ms of a cold start, node:http2
 * alone about 30 ms, this module a few.
 *
 * The call is containerd's `containerd.services.version.v1.Version/Version` (an empty request; the
 * response's fields 1 and 2 are the version and revision), answered the same by berthd and
 * containerd.
 */
import { type Socket, connect } from 'node:net';
import { DataLossError, UnavailableError } from '@berth/errdefs';
import { unaryCall } from './h2c';

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
  const body = await callOnce(address.replace(/^unix:\/\//, ''), VERSION_PATH, new Uint8Array(0), options);
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
 * One unary gRPC call over a unix socket (h2c.ts). Waits for the socket as the grpc-js connection
 * does, so a daemon that is still starting is waited for, not refused.
 */
async function callOnce(socketPath: string, path: string, request: Uint8Array, options: VersionCallOptions): Promise<Buffer> {
  const socket = await openSocket(socketPath, options.connectTimeout ?? 10_000);
  return unaryCall(socket, { path, message: request, timeoutMs: options.timeout ?? 10_000, peer: socketPath });
}

/** Connects to the socket, trying again while nothing listens there yet. */
async function openSocket(socket: string, connectTimeoutMs: number): Promise<Socket> {
  const deadline = Date.now() + connectTimeoutMs;
  let wait = RETRY_MIN_MS;
  for (;;) {
    try {
      return await connectOnce(socket);
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

function connectOnce(path: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect(path);
    socket.once('error', reject);
    socket.once('connect', () => {
      socket.off('error', reject);
      resolve(socket);
    });
  });
}
