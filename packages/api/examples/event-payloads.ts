import { ImageCreate, packAny, typeUrlOf, unpackAny } from '@berth/api/events';

/**
 * Packs an image event as containerd puts it on the wire (a protobuf `Any` with containerd's type
 * URL), encodes the message to its bytes and reads both back: what an events subscriber, a shim
 * or a test does with event payloads. Loads no gRPC stack.
 */
export function eventPayload(name: string): { typeUrl: string; bytes: number; decoded: unknown; sameUrl: boolean } {
  const any = packAny(ImageCreate, { name, labels: { 'example.com/source': 'readme' } });
  const bytes = ImageCreate.encode(ImageCreate.fromPartial({ name })).finish();
  return {
    typeUrl: any.typeUrl,
    bytes: bytes.length,
    decoded: unpackAny(any),
    sameUrl: typeUrlOf(ImageCreate) === any.typeUrl,
  };
}
