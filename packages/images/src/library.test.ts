import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { join } from 'node:path';
import { once } from 'node:events';
import { MetadataContentStore, LocalContentStore, FileLabelStore, type ContentStore } from '@berth/content';
import { context } from '@berth/context';
import { WalkingDiffer } from '@berth/diff';
import { LmdbImageStore, MetadataDb } from '@berth/metadata';
import { MetadataSnapshotter, OverlaySnapshotter } from '@berth/snapshots';
import { ReferenceContainerd, tempDir } from '@berth/testing';
import { BUSYBOX_IMAGE, MULTILAYER_IMAGE, buildBusyboxImage, buildHostileImage, buildMultiLayerImage } from '@berth/fixtures';
import { allPlatforms, chainIds, check, exportArchive, importArchive, platformMatcher, unpack } from './index';

const sha = (s: string) => `sha256:${createHash('sha256').update(s).digest('hex')}`;

describe('chain IDs and platforms', () => {
  it('computes chain IDs as containerd does', () => {
    const [a, b, c] = [sha('a'), sha('b'), sha('c')];
    const ab = sha(`${a} ${b}`);
    expect(chainIds([a, b, c])).toEqual([a, ab, sha(`${ab} ${c}`)]);
    expect(chainIds([])).toEqual([]);
  });

  it.each([
    ['linux/amd64', { os: 'linux', architecture: 'amd64' }, true],
    ['linux/amd64', { os: 'linux', architecture: 'x86_64' }, true],
    ['linux/amd64', { os: 'linux', architecture: 'amd64', variant: 'v1' }, true],
    ['linux/amd64', { os: 'linux', architecture: 'amd64', variant: 'v3' }, false],
    ['linux/amd64/v3', { os: 'linux', architecture: 'amd64', variant: 'v2' }, true],
    ['linux/amd64/v3', { os: 'linux', architecture: 'amd64' }, true],
    ['linux/amd64', { os: 'linux', architecture: 'arm64' }, false],
    ['linux/arm64', { os: 'linux', architecture: 'arm', variant: 'v7' }, true],
    ['linux/arm/v7', { os: 'linux', architecture: 'arm', variant: 'v8' }, false],
    ['linux/amd64', { os: 'windows', architecture: 'amd64' }, false],
  ])('%s matches %j: %s', (spec, p, want) => {
    expect(platformMatcher([spec]).match(p)).toBe(want);
  });

  it('ranks the exact platform before the ones it can also run', () => {
    const m = platformMatcher(['linux/amd64/v3']);
    expect(m.rank({ os: 'linux', architecture: 'amd64', variant: 'v3' })).toBeLessThan(m.rank({ os: 'linux', architecture: 'amd64' }));
  });
});

/** Reads `ctr content ls` into digest -> labels. */
function contentLabels(stdout: string): Map<string, Record<string, string>> {
  const out = new Map<string, Record<string, string>>();
  for (const line of stdout.split('\n').slice(1)) {
    const cols = line.trim().split(/\s+/);
    if (!cols[0]?.startsWith('sha256:')) continue;
    const labels: Record<string, string> = {};
    const last = cols[cols.length - 1];
    if (last !== '' && last.includes('=')) for (const kv of last.split(',')) labels[kv.slice(0, kv.indexOf('='))] = kv.slice(kv.indexOf('=') + 1);
    out.set(cols[0], labels);
  }
  return out;
}

describe('the image library against containerd 1.6 (ctr images import on one side, the library on the other)', () => {
  let containerd: ReferenceContainerd;
  let work: { path: string; remove(): void };
  let fixtures: string;

  beforeAll(async () => {
    work = tempDir('berth-images-lib-');
    fixtures = join(work.path, 'fixtures');
    const NO_GC = `[plugins."io.containerd.gc.v1.scheduler"]\n  deletion_threshold = 0\n  mutation_threshold = 1000000\n  schedule_delay = "0s"\n  startup_delay = "100h"\n`;
    containerd = await ReferenceContainerd.start({ config: NO_GC });
    await buildBusyboxImage(fixtures);
    await buildBusyboxImage(fixtures, { format: 'docker' });
    await buildMultiLayerImage(fixtures);
  });
  afterAll(async () => {
    await containerd?.cleanup();
    work?.remove();
  });

  /** The in-process daemon stores over a temp root: metadata db, namespaced content and overlayfs. */
  async function inProcess(dir: string) {
    const db = MetadataDb.open(join(dir, 'meta'));
    const local = await LocalContentStore.open(join(dir, 'content'));
    const store = new MetadataContentStore(db, local);
    const backend = OverlaySnapshotter.open(join(dir, 'overlayfs'));
    const snapshotter = new MetadataSnapshotter(db, 'overlayfs', backend);
    const ctx = context({ namespace: 'lib' });
    const content: ContentStore = store.bind(ctx);
    const differ = new WalkingDiffer((c) => store.bind(c));
    const images = new LmdbImageStore(db);
    return {
      ctx, content, snapshotter, differ, images,
      close: async () => {
        await snapshotter.close();
        await backend.close();
        await db.close();
      },
    };
  }

  it.each([
    ['busybox-oci.tar', BUSYBOX_IMAGE],
    ['busybox-docker.tar', BUSYBOX_IMAGE],
    ['multilayer-oci.tar', MULTILAYER_IMAGE],
  ])('imports and unpacks %s with the same image target, labels and snapshot chain as ctr', async (file, name) => {
    const ns = file.replace(/[^a-z]/g, '');
    const tar = join(fixtures, file);
    expect((await containerd.ctr(['images', 'import', tar], { namespace: ns, timeoutMs: 60_000 })).code).toBe(0);
    const theirs = (await containerd.ctr(['images', 'ls'], { namespace: ns })).stdout;
    const theirLabels = contentLabels((await containerd.ctr(['content', 'ls'], { namespace: ns })).stdout);
    const theirSnaps = (await containerd.ctr(['snapshots', 'ls'], { namespace: ns })).stdout;

    const dir = join(work.path, ns);
    const s = await inProcess(dir);
    try {
      const res = await importArchive(s.ctx, createReadStream(tar), { content: s.content, images: s.images });
      expect(res.images.map((i) => i.name)).toEqual([name]);
      const image = await s.images.get(s.ctx, name);
      expect(theirs).toContain(`${name} application/`);
      expect(theirs).toContain(image.target.digest);
      const up = await unpack(s.ctx, image, { content: s.content, snapshotter: s.snapshotter, differ: s.differ });
      expect(up.applied).toBe(up.chainIds.length);
      for (const chain of up.chainIds) expect(theirSnaps).toContain(chain);
      // Same labels on every blob ctr labelled (index.json's blob too).
      const ours = new Map<string, Record<string, string>>();
      await s.content.walk((info) => void ours.set(info.digest, info.labels));
      for (const [digest, labels] of theirLabels) {
        const mine = { ...ours.get(digest) };
        const want = { ...labels };
        delete want['containerd.io/gc.root'];
        expect({ digest, labels: mine }).toEqual({ digest, labels: want });
      }
      expect(await check(s.content, image)).toMatchObject({ available: true, complete: true, missing: [] });
      // A second unpack finds every chain.
      expect((await unpack(s.ctx, image, { content: s.content, snapshotter: s.snapshotter, differ: s.differ })).applied).toBe(0);
    } finally {
      await s.close();
    }
  });

  it('exports an OCI tar that containerd imports with the same digests, and reads it back', async () => {
    const s = await inProcess(join(work.path, 'export'));
    try {
      const { images } = await importArchive(s.ctx, createReadStream(join(fixtures, 'multilayer-oci.tar')), { content: s.content });
      const out = join(work.path, 'export.tar');
      const ws = createWriteStream(out);
      await exportArchive(images, ws, { content: s.content });
      ws.end();
      await once(ws, 'close');
      const imp = await containerd.ctr(['images', 'import', out], { namespace: 'exported', timeoutMs: 60_000 });
      expect(imp.code).toBe(0);
      const ls = (await containerd.ctr(['images', 'ls'], { namespace: 'exported' })).stdout;
      expect(ls).toContain(images[0].target.digest);
      expect((await containerd.ctr(['images', 'check'], { namespace: 'exported' })).stdout).toMatch(/complete \(\d+\/\d+\)/);
      const back = await importArchive(s.ctx, createReadStream(out), { content: s.content, platforms: allPlatforms });
      expect(back.images).toEqual(images.map((i) => ({ name: i.name, target: expect.objectContaining({ digest: i.target.digest }) })));
    } finally {
      await s.close();
    }
  });

  it('check reports missing blobs; a wrong diff ID fails the unpack and leaves no extract snapshot', async () => {
    const root = join(work.path, 'local');
    const content = await LocalContentStore.open(join(root, 'content'), { labelStore: new FileLabelStore(join(root, 'labels')) });
    const snapshotter = OverlaySnapshotter.open(join(root, 'overlayfs'));
    const ctx = context();
    try {
      const tar = await buildHostileImage(fixtures, 'wrong-diffid');
      const { images } = await importArchive(ctx, createReadStream(tar), { content });
      const err = await unpack(ctx, images[0], { content, snapshotter, differ: new WalkingDiffer(() => content) }).catch((e: Error) => e);
      expect(err).toBeInstanceOf(Error);
      expect((err as Error).message).toMatch(/^wrong diff id calculated on extraction "sha256:0{64}"$/);
      const keys: string[] = [];
      await snapshotter.walk(ctx, (i) => void keys.push(`${i.kind} ${i.name}`));
      expect(keys.filter((k) => !k.startsWith('committed'))).toEqual([]);
      const before = await check(content, images[0]);
      expect(before.complete).toBe(true);
      await content.delete(before.required[1].digest);
      expect(await check(content, images[0])).toMatchObject({ complete: false, missing: [before.required[1]] });
    } finally {
      await snapshotter.close();
    }
  });
});
