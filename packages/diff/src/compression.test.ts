import { readdirSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { decompress } from './compression';
import { startsWithTarHeader } from './prefetch-worker';
import { tempDir } from './test-helpers';

/** A source of `chunks` that records whether its iterator was handed back. */
function tracked(chunks: Buffer[]): AsyncIterable<Uint8Array> & { returned: boolean; finished: boolean } {
  const src = {
    returned: false,
    finished: false,
    [Symbol.asyncIterator]() {
      let i = 0;
      return {
        next: async () => {
          if (i < chunks.length) return { done: false, value: chunks[i++] };
          src.finished = true;
          return { done: true, value: undefined };
        },
        return: async () => {
          src.returned = true;
          return { done: true, value: undefined };
        },
      } as AsyncIterator<Uint8Array>;
    },
  };
  return src as AsyncIterable<Uint8Array> & { returned: boolean; finished: boolean };
}

describe('decompress', () => {
  const data = randomBytes(256 * 1024);
  const chunks = (b: Buffer) => Array.from({ length: Math.ceil(b.length / 4096) }, (_, i) => b.subarray(i * 4096, (i + 1) * 4096));

  it.each([
    ['uncompressed', data],
    ['gzip', gzipSync(data)],
  ])('hands the %s source back when its consumer stops early', async (_, bytes) => {
    const src = tracked(chunks(bytes));
    for await (const c of decompress(src)) {
      expect(c.length).toBeGreaterThan(0);
      break;
    }
    expect(src).toMatchObject({ returned: true, finished: false });
  });

  it.each([
    ['uncompressed', data],
    ['gzip', gzipSync(data)],
  ])('reads the %s source to its end', async (_, bytes) => {
    const src = tracked(chunks(bytes));
    const out: Buffer[] = [];
    for await (const c of decompress(src)) out.push(c);
    expect(Buffer.concat(out).equals(data)).toBe(true);
    expect(src.finished).toBe(true);
  });

  // The prefetcher looks at the head of every committed blob: each look used to leave the
  // blob's file open (a soak showed deleted blobs held open by berthd).
  it('startsWithTarHeader closes the blob it looked at', async () => {
    const dir = tempDir('berth-decompress-');
    try {
      const files: string[] = [];
      for (const size of [600, 5000, 70_000, 256 * 1024]) {
        for (const [kind, bytes] of [['raw', data.subarray(0, size)], ['gz', gzipSync(data.subarray(0, size))]] as const) {
          files.push(join(dir, `${kind}-${size}`));
          writeFileSync(files[files.length - 1], bytes);
        }
      }
      const fds = () => readdirSync('/proc/self/fd').filter((fd) => {
        try {
          return readlinkSync(`/proc/self/fd/${fd}`).startsWith(dir);
        } catch {
          return false;
        }
      });
      for (const f of files) expect(await startsWithTarHeader(f)).toBe(false);
      await new Promise((r) => setTimeout(r, 100));
      expect(fds()).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
