import { PassThrough, Writable } from 'node:stream';
import { type RemoteCommandOptions, type RemoteCommandRequest, runSession } from './remotecommand';
import type { StreamingRuntime } from './runtime';
import type { WebSocketConnection } from './websocket';

/** remotecommand protocols served over WebSocket, best first. */
export const WEBSOCKET_REMOTECOMMAND_PROTOCOLS = ['v5.channel.k8s.io', 'v4.channel.k8s.io', 'v4.base64.channel.k8s.io', 'channel.k8s.io', 'base64.channel.k8s.io'] as const;

const STDIN = 0;
const STDOUT = 1;
const STDERR = 2;
const ERROR = 3;
const RESIZE = 4;
/** v5's close signal: `[255, channel]` ends a channel. */
const CLOSE_SIGNAL = 255;

/**
 * Runs one exec or attach over a WebSocket with Kubernetes' channel protocol: every message
 * starts with its channel (0 stdin, 1 stdout, 2 stderr, 3 error, 4 resize); the base64 variants
 * send text messages, the channel as an ASCII digit and the data in base64. v5 adds the close
 * signal (`[255, channel]`), which is how a client ends stdin (the server sends none: client-go
 * does not know it as a reader). The output channels get an empty
 * message at the start; at the end the status goes on channel 3 (v4/v5: JSON) and the
 * connection closes with a normal closure. Never rejects.
 */
export async function serveWebSocketRemoteCommand(ws: WebSocketConnection, protocol: string, req: RemoteCommandRequest, runtime: StreamingRuntime, options: RemoteCommandOptions): Promise<void> {
  const base64 = protocol.includes('base64');
  const v5 = protocol === 'v5.channel.k8s.io';
  const frame = (channel: number, data: Buffer): [Buffer, boolean] =>
    base64 ? [Buffer.from(String.fromCharCode(48 + channel) + data.toString('base64')), false] : [Buffer.concat([Buffer.from([channel]), data]), true];
  const output = (channel: number) =>
    new Writable({
      write(chunk: Buffer, _enc, cb) {
        ws.send(...frame(channel, chunk)).then(() => cb(), cb);
      },
      // No close signal from the server: client-go logs it as an unknown stream; the end of
      // the connection ends its readers.
    }).on('error', () => undefined);
  const stdin = req.stdin ? new PassThrough() : undefined;
  const resize = req.tty ? new PassThrough() : undefined;
  const stdout = req.stdout ? output(STDOUT) : undefined;
  const stderr = req.stderr && !req.tty ? output(STDERR) : undefined;
  const error = output(ERROR);

  ws.on('message', (raw: Buffer, binary: boolean) => {
    let channel: number;
    let data: Buffer;
    if (base64 && !binary) {
      if (raw.length === 0) return;
      channel = raw[0] - 48;
      data = Buffer.from(raw.subarray(1).toString('latin1'), 'base64');
    } else {
      if (raw.length === 0) return;
      channel = raw[0];
      data = raw.subarray(1);
    }
    if (channel === CLOSE_SIGNAL && v5) {
      if (data[0] === STDIN) stdin?.end();
      if (data[0] === RESIZE) resize?.end();
      return;
    }
    if (channel === STDIN && stdin && !stdin.writableEnded) stdin.write(data);
    // Go's client sends each size as one JSON value without a newline.
    if (channel === RESIZE && resize && !resize.writableEnded) resize.write(Buffer.concat([data, Buffer.from('\n')]));
  });
  ws.once('close', () => {
    stdin?.end();
    resize?.end();
  });
  for (const [s, ch] of [[stdout, STDOUT], [stderr, STDERR], [error, ERROR]] as const) if (s) void ws.send(...frame(ch, Buffer.alloc(0))).catch(() => undefined);

  await runSession(
    {
      error,
      stdin,
      stdout,
      stderr,
      resize,
      statusAsJson: protocol.startsWith('v4.') || v5,
      isClosed: () => ws.isClosed,
      onClose: (fn) => ws.once('close', fn),
      offClose: (fn) => ws.off('close', fn),
      close: () => ws.close(),
    },
    req,
    runtime,
    options,
  );
}
