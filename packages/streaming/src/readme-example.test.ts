import { moveBytes } from '../examples/bytes-between-streams';

describe('README example: bytes over a stream', () => {
  it('moves 200 KiB in Data frames of at most 32 KiB, within the credit granted', async () => {
    const data = Buffer.alloc(200 * 1024, 7);
    expect(await moveBytes(data)).toEqual({ sent: data.length, chunks: 7, intact: true });
  });
});
