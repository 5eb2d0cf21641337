import { normalizeTypeUrl, packAny, typeUrlOf, unpackAnyAs, type protobuf } from '@berth/api';
import { Data, WindowUpdate } from '@berth/api/transfer';
import { EndOfStreamError, type Stream } from './stream';

type Any = protobuf.Any;

/** Largest Data frame, and the credit a receiver grants at a time (containerd's constants). */
export const MAX_DATA_FRAME = 32 * 1024;
export const WINDOW_SIZE = 64 * 1024;

/** Whether a frame holds `type` (byte-stream frames tolerate Google's type URL prefix). */
const holds = (frame: Any, type: typeof Data | typeof WindowUpdate) => normalizeTypeUrl(frame.typeUrl) === typeUrlOf(type);

/**
 * Reads the bytes a client sends on a stream (an image import): grants credit in windows of
 * {@link WINDOW_SIZE} whenever less than one window is outstanding, takes Data frames, ignores
 * any other frame, and ends when the client half-closes.
 */
export async function* receiveBytes(stream: Stream, signal?: AbortSignal): AsyncGenerator<Buffer> {
  let window = 0;
  for (;;) {
    if (window < WINDOW_SIZE) {
      await stream.send(packAny(WindowUpdate, { update: WINDOW_SIZE }));
      window += WINDOW_SIZE;
    }
    let frame: Any;
    try {
      frame = await stream.recv(signal);
    } catch (err) {
      if (err instanceof EndOfStreamError) return;
      throw err;
    }
    if (!holds(frame, Data)) continue;
    const { data } = unpackAnyAs(frame, Data);
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
        if (!holds(frame, WindowUpdate)) continue;
        credit += unpackAnyAs(frame, WindowUpdate).update;
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
      await stream.send(packAny(Data, { data: Buffer.from(chunk.subarray(off, off + n)) }));
      credit -= n;
      off += n;
      sent += n;
    }
  }
  return sent;
}
