import { Envelope } from '@berth/api/events';

const encoded = new WeakMap<Envelope, Buffer>();

/**
 * Encodes an envelope for the Subscribe stream once, however many subscribers it goes to: the
 * exchange hands every matching subscriber the same envelope object, and grpc-js copies the
 * bytes into each stream's own frame, so one encoding can serve them all. With 10 subscribers
 * the per-subscriber encode (and the copy `Buffer.from` made of it) was about a tenth of the
 * daemon's CPU per event.
 */
export function encodeEnvelopeOnce(env: Envelope): Buffer {
  let buf = encoded.get(env);
  if (!buf) {
    const bytes = Envelope.encode(env).finish();
    buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    encoded.set(env, buf);
  }
  return buf;
}
