import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { LocalContentStore } from '@berth/content';
import { context } from '@berth/context';
import { GrpcCode, toGrpcStatus } from '@berth/errdefs';
import { WalkingDiffer } from './differ';
import { LayerPrefetcher } from './prefetch';
import { TarType } from './tar';
import { buildTar, tempDir } from './test-helpers';

const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

const GZIP_LAYER = 'application/vnd.oci.image.layer.v1.tar+gzip';

/** A content store and a walking differ in a temp dir, with the extraction worker or without. */
async function setup(worker: boolean) {
  const dir = tempDir();
  const content = await LocalContentStore.open(join(dir, 'content'));
  const prefetcher = worker ? await LayerPrefetcher.open(join(dir, 'prefetch'), (d) => join(dir, 'content', 'blobs', ...d.split(':'))) : undefined;
  const differ = new WalkingDiffer(() => content, prefetcher);
  const target = join(dir, 'rootfs');
  mkdirSync(target);
  return {
    content,
    differ,
    target,
    mounts: [{ type: 'bind', source: target, options: ['rbind', 'rw'] }],
    cleanup: async () => {
      await prefetcher?.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

describe.each([
  ['on this thread', false],
  ['on the extraction worker', true],
])('WalkingDiffer.apply of a blob being written, %s', (_label, worker) => {
  let s: Awaited<ReturnType<typeof setup>>;
  beforeEach(async () => void (s = await setup(worker)));
  afterEach(() => s.cleanup());

  const layer = async () => {
    const payload = randomBytes(2 << 20);
    const layerTar = await buildTar([[{ name: 'data.bin', type: TarType.File, mode: 0o644 }, payload]]);
    return { payload, layerTar, blob: gzipSync(layerTar) };
  };

  it('extracts the bytes as they are written and finishes only once the commit verified them', async () => {
    const { payload, layerTar, blob } = await layer();
    const w = await s.content.writer({ ref: 'layer', total: blob.length, expected: sha(blob) });
    const half = blob.length >> 1;
    await w.write(blob.subarray(0, half));
    const source = (await w.follow!())!;
    const seen: number[] = [];
    let settled = false;
    const applying = s.differ
      .apply(context(), { mediaType: GZIP_LAYER, digest: sha(blob), size: blob.length }, s.mounts, { source, onProgress: (n) => seen.push(n) })
      .finally(() => (settled = true));
    // The first half is read while the writer waits.
    for (let i = 0; i < 200 && !seen.some((n) => n >= half); i++) await new Promise((r) => setTimeout(r, 10));
    expect(seen[seen.length - 1]).toBe(half);
    await w.write(blob.subarray(half));
    await new Promise((r) => setTimeout(r, 50));
    expect(settled).toBe(false);
    await w.commit(blob.length, sha(blob));
    const out = await applying;
    await source.close();
    expect(out.digest).toBe(sha(layerTar));
    expect(readFileSync(join(s.target, 'data.bin')).equals(payload)).toBe(true);
    expect(seen[seen.length - 1]).toBe(blob.length);
  });

  it('fails when the writer ends without verifying the bytes (closed, or a wrong digest)', async () => {
    const { blob } = await layer();
    for (const end of ['close', 'wrong digest'] as const) {
      const w = await s.content.writer({ ref: `layer-${end}`, total: blob.length });
      await w.write(blob);
      const source = (await w.follow!())!;
      const applying = s.differ.apply(context(), { mediaType: GZIP_LAYER, digest: sha(blob), size: blob.length }, s.mounts, { source });
      if (end === 'close') await w.close();
      else await w.commit(blob.length, sha(Buffer.from('other'))).catch(() => undefined);
      const err = await applying.then(() => undefined, (e: Error) => e);
      await source.close();
      expect(toGrpcStatus(err).code).toBe(GrpcCode.FAILED_PRECONDITION);
      expect(err?.message).toContain(`failed to apply layer ${sha(blob)}`);
    }
  });

  it('stops when its signal fires while it waits for bytes', async () => {
    const { blob } = await layer();
    const w = await s.content.writer({ ref: 'layer', total: blob.length });
    await w.write(blob.subarray(0, 1000));
    const source = (await w.follow!())!;
    const abort = new AbortController();
    const applying = s.differ.apply(context(), { mediaType: GZIP_LAYER, digest: sha(blob), size: blob.length }, s.mounts, { source, signal: abort.signal });
    await new Promise((r) => setTimeout(r, 50));
    abort.abort();
    const err = await applying.then(() => undefined, (e: Error) => e);
    expect(toGrpcStatus(err).code).toBe(GrpcCode.CANCELLED);
    await source.close();
    await w.close();
  });
});

describe('WalkingDiffer.apply', () => {
  it.each([
    ['on this thread', false],
    ['on the extraction worker', true],
  ])('tells onProgress the compressed bytes it has read, up to the whole blob (%s)', async (_label, worker) => {
    const s = await setup(worker);
    try {
      const { content, differ, target, mounts } = s;
      const payload = randomBytes(3 << 20);
      const layerTar = await buildTar([[{ name: 'data.bin', type: TarType.File, mode: 0o644 }, payload]]);
      const blob = gzipSync(layerTar);
      const w = await content.writer({ ref: 'layer', total: blob.length });
      await w.write(blob);
      await w.commit(blob.length, sha(blob));

      const seen: number[] = [];
      const out = await differ.apply(context(), { mediaType: GZIP_LAYER, digest: sha(blob), size: blob.length, annotations: {} }, mounts, {
        onProgress: (n) => seen.push(n),
      });
      expect(out.digest).toBe(sha(layerTar));
      expect(readFileSync(join(target, 'data.bin')).equals(payload)).toBe(true);
      expect(seen.length).toBeGreaterThan(1);
      expect(seen).toEqual([...seen].sort((a, b) => a - b));
      expect(seen[seen.length - 1]).toBe(blob.length);
    } finally {
      await s.cleanup();
    }
  });
});
