import { Data, WindowUpdate } from '@berth/api/transfer';
import type { protobuf } from '@berth/api';
import { EndOfStreamError, type Stream } from './stream';

type Any = protobuf.Any;

/** Largest Data frame, and the credit a receiver grants at a time (containerd's constants). */
export const MAX_DATA_FRAME = 32 * 1024;
export const WINDOW_SIZE = 64 * 1024;

const DATA_URL = 'containerd.types.transfer.Data';
const WINDOW_URL = 'containerd.types.transfer.WindowUpdate';

/** The type URL without Google's prefix, which the byte-stream frames tolerate on input. */
function bare(url: string): string {
  return url.startsWith('type.googleapis.com/') ? url.slice('type.googleapis.com/'.length) : url;
}

/**
 * Reads the bytes a client sends on a stream (an image import): grants credit in windows of
 * {@link WINDOW_SIZE} whenever less than one window is outstanding, takes Data frames, ignores
 * any other frame, and ends when the client half-closes.
 */
export async function* receiveBytes(stream: Stream, signal?: AbortSignal): AsyncGenerator<Buffer> {
  let window = 0;
  for (;;) {
    if (window < WINDOW_SIZE) {
      await stream.send({ typeUrl: WINDOW_URL, value: Buffer.from(WindowUpdate.encode({ update: WINDOW_SIZE }).finish()) });
      window += WINDOW_SIZE;
    }
    let frame: Any;
    try {
      frame = await stream.recv(signal);
    } catch (err) {
      if (err instanceof EndOfStreamError) return;
      throw err;
    }
    if (bare(frame.typeUrl) !== DATA_URL) continue;
    const { data } = Data.decode(frame.value);
    window -= data.length;
    if (data.length > 0) yield Buffer.from(data.buffer, data.byteOffset, data.length);
  }
}

/**
 * Writes bytes to a client on a stream (an image export), within the credit the client grants
 * with WindowUpdate frames, in Data frames of at most {@link MAX_DATA_FRAME} bytes. Resolves once
 * everything was handed to the stream; the caller closes the stream after that. Rejects if the
 * client stops reading (half-closes or goes away) while bytes are left.
 */
export async function sendBytes(stream: Stream, source: AsyncIterable<Uint8Array>, signal?: AbortSignal): Promise<number> {
  let credit = 0;
  let ended: unknown;
  let wake: (() => void) | undefined;
  const grants = (async () => {
    try {
      for (;;) {
        const frame = await stream.recv(signal);
        if (bare(frame.typeUrl) !== WINDOW_URL) continue;
        credit += WindowUpdate.decode(frame.value).update;
        wake?.();
      }
    } catch (err) {
      ended = err;
      wake?.();
    }
  })();
  void grants; // it ends with the stream
  let sent = 0;
  for await (const chunk of source) {
    for (let off = 0; off < chunk.length; ) {
      while (credit <= 0) {
        if (ended !== undefined) throw ended instanceof EndOfStreamError ? new EndOfStreamError() : ended;
        await new Promise<void>((resolve) => (wake = resolve));
        wake = undefined;
      }
      const n = Math.min(MAX_DATA_FRAME, credit, chunk.length - off);
      await stream.send({ typeUrl: DATA_URL, value: Buffer.from(Data.encode({ data: Buffer.from(chunk.subarray(off, off + n)) }).finish()) });
      credit -= n;
      off += n;
      sent += n;
    }
  }
  return sent;
}
