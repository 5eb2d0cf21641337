import type { protobuf } from '@berth/api';
import { CallStream, receiveBytes, sendBytes } from '@berth/streaming';

type Any = protobuf.Any;

/** An iterator that opens `source` on its first read (the two streams below read each other). */
function later(source: () => AsyncIterator<Any>): AsyncIterator<Any> {
  let it: AsyncIterator<Any> | undefined;
  return { next: () => (it ??= source()).next() };
}

/**
 * Moves bytes between two ends of a stream with containerd's byte protocol, both ends in one
 * process (in berthd, one end is a client across a gRPC call): the receiver grants credit in
 * 64 KiB windows, the sender answers with Data frames of at most 32 KiB within it, and the
 * receiver's read ends when the sender closes. Returns how many bytes went, in how many chunks,
 * and whether they arrived intact.
 */
export async function moveBytes(data: Buffer): Promise<{ sent: number; chunks: number; intact: boolean }> {
  const call = new AbortController();
  const sender: CallStream = new CallStream(later(() => receiver.outgoing()), call.signal);
  const receiver: CallStream = new CallStream(later(() => sender.outgoing()), call.signal);
  const received: Buffer[] = [];
  const reading = (async () => {
    for await (const chunk of receiveBytes(receiver)) received.push(chunk);
    receiver.close();
  })();
  const sent = await sendBytes(sender, (async function* () {
    yield data;
  })());
  sender.close();
  await reading;
  return { sent, chunks: received.length, intact: Buffer.concat(received).equals(data) };
}
