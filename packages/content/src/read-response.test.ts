import { content as api } from '@berth/api';
import { allocReadChunk, encodeReadContentResponse } from './read-response';

describe('encodeReadContentResponse', () => {
  it.each([
    [0, 0],
    [0, 5],
    [127, 1],
    [128, 300],
    [2 ** 40 + 3, 70_000],
    [Number.MAX_SAFE_INTEGER, 1],
  ])('encodes offset %i with %i data bytes exactly as the generated encoder', (offset, size) => {
    const msg = { offset, data: Buffer.alloc(size, 7) };
    const ours = encodeReadContentResponse(msg);
    expect(ours.equals(Buffer.from(api.ReadContentResponse.encode(msg).finish()))).toBe(true);
    expect(api.ReadContentResponse.decode(ours)).toEqual(msg);
  });

  it('writes the header in place for chunks from allocReadChunk', () => {
    for (const [offset, size] of [[0, 10], [5, 32768], [2 ** 50, 1]]) {
      const data = allocReadChunk(size).fill(3);
      const ours = encodeReadContentResponse({ offset, data });
      expect(ours.buffer).toBe(data.buffer);
      expect(ours.equals(Buffer.from(api.ReadContentResponse.encode({ offset, data }).finish()))).toBe(true);
    }
  });
});
