import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { isFailedPrecondition } from '@berth/errdefs';
import { applyLayer } from './apply';
import { LayerPrefetcher } from './prefetch';
import { TarType } from './tar';
import { buildTar, tempDir } from './test-helpers';
import { describeTree } from './tree';

/**
 * The prefetcher against blobs in a directory named by digest, extracting on its real worker
 * thread (the built worker script). Every tree it hands over must be what applying the blob in
 * place gives.
 */
describe('LayerPrefetcher', () => {
  let dir: string;
  let blobs: string;
  let prefetcher: LayerPrefetcher;
  const logs: Array<[string, Record<string, string>]> = [];

  const blob = (data: Buffer) => {
    const digest = `sha256:${createHash('sha256').update(data).digest('hex')}`;
    fs.writeFileSync(join(blobs, digest), data);
    return digest;
  };
  const layer = async (entries: Parameters<typeof buildTar>[0]) => blob(gzipSync(await buildTar(entries)));
  const target = (name: string) => {
    const d = join(dir, name);
    fs.mkdirSync(d, { recursive: true });
    return d;
  };
  /** Trees go in the background: waits (boundedly) for `d` to be empty. */
  const emptied = async (d: string) => {
    for (let i = 0; i < 400 && fs.readdirSync(d).length > 0; i++) await new Promise((r) => setTimeout(r, 5));
    expect(fs.readdirSync(d)).toEqual([]);
  };
  const settled = async (digest: string) => {
    while (prefetcher.pending.some((p) => p.digest === digest && p.state !== 'ready')) await new Promise((r) => setTimeout(r, 5));
  };

  beforeEach(async () => {
    dir = tempDir('berth-prefetch-');
    blobs = join(dir, 'blobs');
    fs.mkdirSync(blobs);
    logs.length = 0;
    prefetcher = await LayerPrefetcher.open(join(dir, 'prefetch'), (d) => join(blobs, d), { log: (m, f) => logs.push([m, f]) });
  });
  afterEach(async () => {
    await prefetcher.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const ENTRIES: Parameters<typeof buildTar>[0] = [
    [{ name: 'bin/', type: TarType.Directory, mode: 0o755 }], [{ name: 'bin/sh', mode: 0o755, uid: 1, gid: 2 }, '#!'],
    [{ name: 'bin/ls', type: TarType.HardLink, linkname: 'bin/sh' }], [{ name: 'sbin', type: TarType.Symlink, linkname: 'bin' }],
    [{ name: 'etc/', type: TarType.Directory, mode: 0o700 }], [{ name: 'etc/motd', mode: 0o4644 }, 'hi'],
  ];

  it('hands over the tree applying the blob in place gives, with the same diff ID', async () => {
    const digest = await layer(ENTRIES);
    prefetcher.offer(digest);
    const got = await prefetcher.take(digest, { dir: target('upper'), hasParents: false });
    const expected = await applyLayer(target('inplace'), fs.createReadStream(join(blobs, digest)), { overlay: false });
    expect(got).toEqual(expected);
    expect(await describeTree(join(dir, 'upper'))).toEqual(await describeTree(join(dir, 'inplace')));
    await emptied(join(dir, 'prefetch'));
    expect(logs).toContainEqual(['layer applied from its prefetched tree', { digest }]);
    // Taken once: a second apply of the same blob extracts it itself.
    await expect(prefetcher.take(digest, { dir: target('again'), hasParents: false })).resolves.toBeUndefined();
  });

  it('keeps overlay whiteouts for a target over parents, and declines a parentless one', async () => {
    const digest = await layer([[{ name: 'etc/', type: TarType.Directory }], [{ name: 'etc/.wh.gone' }], [{ name: 'etc/.wh..wh..opq' }]]);
    prefetcher.offer(digest);
    await expect(prefetcher.take(digest, { dir: target('first'), hasParents: false })).resolves.toBeUndefined();
    expect(fs.readdirSync(join(dir, 'first'))).toEqual([]);
    prefetcher.offer(digest);
    await expect(prefetcher.take(digest, { dir: target('upper'), hasParents: true })).resolves.toMatchObject({ dependsOnParents: { whiteouts: 2 } });
    const wh = fs.statSync(join(dir, 'upper/etc/gone'));
    expect(wh.isCharacterDevice() && wh.rdev === 0).toBe(true);
  });

  it('declines a layer with implicit directories over parents (their attributes come from below)', async () => {
    const digest = await layer([[{ name: 'var/log/x' }, 'x']]);
    prefetcher.offer(digest);
    await expect(prefetcher.take(digest, { dir: target('upper'), hasParents: true })).resolves.toBeUndefined();
    expect(fs.readdirSync(join(dir, 'upper'))).toEqual([]);
    prefetcher.offer(digest);
    await expect(prefetcher.take(digest, { dir: target('base'), hasParents: false })).resolves.toMatchObject({ dependsOnParents: { implicitDirs: 2 } });
  });

  it('fails a wrong diff ID as the apply does, moving nothing', async () => {
    const digest = await layer(ENTRIES);
    prefetcher.offer(digest);
    const err = await prefetcher.take(digest, { dir: target('upper'), hasParents: false, expectedDiffId: `sha256:${'0'.repeat(64)}` }).catch((e) => e);
    expect(isFailedPrecondition(err)).toBe(true);
    expect(err.message).toMatch(/^wrong diff id calculated on extraction "sha256:[0-9a-f]{64}", expected "sha256:0{64}"/);
    expect(fs.readdirSync(join(dir, 'upper'))).toEqual([]);
  });

  it('declines a target that is not empty', async () => {
    const digest = await layer(ENTRIES);
    prefetcher.offer(digest);
    const t = target('upper');
    fs.writeFileSync(join(t, 'existing'), '');
    await expect(prefetcher.take(digest, { dir: t, hasParents: false })).resolves.toBeUndefined();
    expect(fs.readdirSync(t)).toEqual(['existing']);
  });

  it('skips blobs that are not layers and layers the apply would refuse', async () => {
    const json = blob(Buffer.from(JSON.stringify({ schemaVersion: 2, pad: 'x'.repeat(600) })));
    const hostile = await layer([[{ name: '../escape' }, 'x']]);
    const truncated = blob(gzipSync(await buildTar(ENTRIES)).subarray(0, 200));
    for (const d of [json, hostile, truncated]) prefetcher.offer(d);
    for (const d of [json, hostile, truncated]) await expect(prefetcher.take(d, { dir: target(d), hasParents: false })).resolves.toBeUndefined();
    expect(logs.map(([m, f]) => `${m} ${f.digest === json ? 'json' : f.digest === hostile ? 'hostile' : 'truncated'}: ${f.reason}`)).toEqual([
      'blob not prefetched json: not a tar',
      expect.stringMatching(/^blob not prefetched hostile: .*climbs out of the layer root/),
      expect.stringMatching(/^blob not prefetched truncated: /),
    ]);
    await emptied(join(dir, 'prefetch'));
  });

  it('drops a blob still queued when its apply comes first', async () => {
    const [a, b] = [await layer(ENTRIES), await layer([...ENTRIES, [{ name: 'extra' }, 'e']])];
    prefetcher.offer(a);
    prefetcher.offer(b);
    expect(prefetcher.pending).toEqual([{ digest: a, state: 'running' }, { digest: b, state: 'queued' }]);
    await expect(prefetcher.take(b, { dir: target('b'), hasParents: false })).resolves.toBeUndefined();
    await settled(a);
    expect(prefetcher.pending).toEqual([{ digest: a, state: 'ready' }]);
  });

  it('starts its worker when warmed, and ends it after being idle', async () => {
    await prefetcher.close();
    prefetcher = await LayerPrefetcher.open(join(dir, 'prefetch'), (d) => join(blobs, d), { workerIdleMs: 100 });
    expect(prefetcher.workerRunning).toBe(false);
    prefetcher.warm();
    expect(prefetcher.workerRunning).toBe(true);
    const digest = await layer(ENTRIES);
    prefetcher.offer(digest);
    await settled(digest);
    for (let i = 0; i < 200 && prefetcher.workerRunning; i++) await new Promise((r) => setTimeout(r, 10));
    expect(prefetcher.workerRunning).toBe(false);
    // Its tree outlives the worker, and a new worker comes up for the next blob.
    await expect(prefetcher.take(digest, { dir: target('upper'), hasParents: false })).resolves.toMatchObject({ size: expect.any(Number) });
    const next = await layer([...ENTRIES, [{ name: 'next' }, 'n']]);
    prefetcher.offer(next);
    await settled(next);
    await expect(prefetcher.take(next, { dir: target('next'), hasParents: false })).resolves.toMatchObject({ size: expect.any(Number) });
  });

  it('removes trees nobody took after the ttl, and everything on close', async () => {
    await prefetcher.close();
    prefetcher = await LayerPrefetcher.open(join(dir, 'prefetch'), (d) => join(blobs, d), { ttlMs: 50 });
    const digest = await layer(ENTRIES);
    prefetcher.offer(digest);
    await settled(digest);
    expect(fs.readdirSync(join(dir, 'prefetch'))).toHaveLength(1);
    await new Promise((r) => setTimeout(r, 150));
    expect(prefetcher.pending).toEqual([]);
    await emptied(join(dir, 'prefetch'));
    prefetcher.offer(await layer([...ENTRIES, [{ name: 'big' }, Buffer.alloc(8 << 20, 1)]]));
    await prefetcher.close();
    expect(fs.existsSync(join(dir, 'prefetch'))).toBe(false);
    // A new prefetcher on the same directory starts empty, whatever a killed one left there.
    fs.mkdirSync(join(dir, 'prefetch/sha256-leftover'), { recursive: true });
    prefetcher = await LayerPrefetcher.open(join(dir, 'prefetch'), (d) => join(blobs, d));
    expect(fs.readdirSync(join(dir, 'prefetch'))).toEqual([]);
  });
});
