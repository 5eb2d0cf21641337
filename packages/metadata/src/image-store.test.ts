import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { context } from '@berth/context';
import { isAlreadyExists, isInvalidArgument, isNotFound, kindOf } from '@berth/errdefs';
import { MetadataDb, Mutation } from './db';
import { ImageInput, LmdbImageStore } from './image-store';
import { LmdbNamespaceStore } from './namespace-store';

const D1 = `sha256:${'a'.repeat(64)}`;
const D2 = `sha256:${'b'.repeat(64)}`;
const INDEX = 'application/vnd.oci.image.index.v1+json';
const MANIFEST = 'application/vnd.oci.image.manifest.v1+json';

const image = (name: string, over: Partial<ImageInput> = {}): ImageInput => ({
  name,
  labels: {},
  target: { mediaType: MANIFEST, digest: D1, size: 10, annotations: {} },
  ...over,
});

describe('LmdbImageStore', () => {
  let dir: string;
  let db: MetadataDb;
  let store: LmdbImageStore;
  const ctx = context({ namespace: 'ns1' });

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'berth-images-'));
    db = MetadataDb.open(dir);
    store = new LmdbImageStore(db);
  });
  afterEach(async () => {
    await db.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('creates, gets and lists images by name, and creates the namespace', async () => {
    const created = await store.create(ctx, image('b:1', { labels: { x: 'y', empty: '' } }));
    await store.create(ctx, image('a:1'));
    expect(created.labels).toEqual({ x: 'y' });
    expect(created.createdAt).toEqual(created.updatedAt);
    expect(await store.get(ctx, 'b:1')).toEqual(created);
    expect((await store.list(ctx)).map((i) => i.name)).toEqual(['a:1', 'b:1']);
    expect(await new LmdbNamespaceStore(db).list()).toEqual(['ns1']);
  });

  it('refuses a duplicate name with AlreadyExists', async () => {
    await store.create(ctx, image('a'));
    const err = await store.create(ctx, image('a')).catch((e) => e);
    expect(isAlreadyExists(err)).toBe(true);
    expect(err.message).toBe('image "a": already exists');
  });

  it.each([
    ['no digest', { digest: '' }, 'Target.Digest "" invalid: invalid checksum digest format: invalid argument'],
    ['a bad digest', { digest: 'xx' }, 'Target.Digest "xx" invalid: invalid checksum digest format: invalid argument'],
    ['a short digest', { digest: 'sha256:abc' }, 'Target.Digest "sha256:abc" invalid: invalid checksum digest length: invalid argument'],
    ['an unknown algorithm', { digest: `md5:${'a'.repeat(32)}` }, `Target.Digest "md5:${'a'.repeat(32)}" invalid: unsupported digest algorithm: invalid argument`],
    ['upper-case hex', { digest: `sha256:${'A'.repeat(64)}` }, `Target.Digest "sha256:${'A'.repeat(64)}" invalid: invalid checksum digest format: invalid argument`],
    ['size 0', { size: 0 }, 'Target.Size must be greater than zero: invalid argument'],
    ['a negative size', { size: -1 }, 'Target.Size must be greater than zero: invalid argument'],
    ['no media type', { mediaType: '' }, 'Target.MediaType must be set: invalid argument'],
  ])('refuses a target with %s', async (_, over, message) => {
    const err = await store.create(ctx, image('x', { target: { ...image('x').target, ...over } })).catch((e) => e);
    expect(isInvalidArgument(err)).toBe(true);
    expect(err.message).toBe(message);
    expect(await store.list(ctx)).toEqual([]);
  });

  it('refuses oversized labels', async () => {
    const err = await store.create(ctx, image('x', { labels: { k: 'v'.repeat(4096) } })).catch((e) => e);
    expect(err.message).toBe('image.Labels: label key and value greater than maximum size (4096 bytes), key: k: invalid argument');
  });

  describe('update', () => {
    beforeEach(async () => {
      await store.create(ctx, image('img', { labels: { a: '1', b: '2' }, target: { mediaType: MANIFEST, digest: D1, size: 10, annotations: { an: '1', keep: 'k' } } }));
    });

    it('sets and deletes single labels with labels.<k>, leaving the rest', async () => {
      const u = await store.update(ctx, image('img', { labels: { a: 'x', c: '3', ignored: 'i' } }), ['labels.a', 'labels.c', 'labels.b']);
      expect(u.labels).toEqual({ a: 'x', c: '3' });
      expect(u.target.annotations).toEqual({ an: '1', keep: 'k' });
    });

    it('replaces all labels with labels', async () => {
      expect((await store.update(ctx, image('img', { labels: { z: '1', e: '' } }), ['labels'])).labels).toEqual({ z: '1' });
    });

    it('replaces the target as a unit with target, keeping labels', async () => {
      const u = await store.update(ctx, image('img', { target: { mediaType: INDEX, digest: D2, size: 99, annotations: {} } }), ['target']);
      expect(u.target).toEqual({ mediaType: INDEX, digest: D2, size: 99, annotations: {} });
      expect(u.labels).toEqual({ a: '1', b: '2' });
    });

    it('updates annotations singly and as a whole', async () => {
      let u = await store.update(ctx, image('img', { target: { ...image('').target, annotations: { an: '', x: 'y' } } }), ['annotations.an', 'annotations.x']);
      expect(u.target.annotations).toEqual({ keep: 'k', x: 'y' });
      u = await store.update(ctx, image('img', { target: { ...image('').target, annotations: { q: 'r' } } }), ['annotations']);
      expect(u.target.annotations).toEqual({ q: 'r' });
    });

    it('replaces labels and target, keeping the name and creation time, when no paths are given', async () => {
      const before = await store.get(ctx, 'img');
      const u = await store.update(ctx, image('img', { labels: { n: '1' }, target: { mediaType: INDEX, digest: D2, size: 5, annotations: {} } }));
      expect(u).toMatchObject({ name: 'img', labels: { n: '1' }, target: { mediaType: INDEX, digest: D2, size: 5, annotations: {} } });
      expect(u.createdAt).toEqual(before.createdAt);
      expect(u.updatedAt.getTime()).toBeGreaterThan(before.updatedAt.getTime());
    });

    it('moves updated_at on every update, even within one millisecond', async () => {
      const times: number[] = [];
      for (let i = 0; i < 5; i++) times.push((await store.update(ctx, image('img', { labels: { i: String(i) } }), ['labels.i'])).updatedAt.getTime());
      for (let i = 1; i < times.length; i++) expect(times[i]).toBeGreaterThan(times[i - 1]);
    });

    it('validates the target only when it changes', async () => {
      const bad = image('img', { labels: { z: '1' }, target: { mediaType: '', digest: 'zz', size: 0, annotations: {} } });
      expect((await store.update(ctx, bad, ['labels.z'])).labels).toEqual({ a: '1', b: '2', z: '1' });
      const err = await store.update(ctx, bad, ['target']).catch((e) => e);
      expect(err.message).toBe('Target.Digest "zz" invalid: invalid checksum digest format: invalid argument');
    });

    it.each(['name', 'createdat', 'target.digest', 'labels'.toUpperCase()])('refuses the path %p with InvalidArgument', async (path) => {
      const err = await store.update(ctx, image('img'), [path]).catch((e) => e);
      expect(isInvalidArgument(err)).toBe(true);
      expect(err.message).toBe(`cannot update "${path}" field on image "img": invalid argument`);
    });

    it('answers NotFound for a missing image (ctr import then falls back to create)', async () => {
      const err = await store.update(ctx, image('nope'), ['target']).catch((e) => e);
      expect(isNotFound(err)).toBe(true);
      expect(err.message).toBe('image "nope": not found');
    });

    it('reports an empty label key with a value as containerd does (unknown)', async () => {
      const err = await store.update(ctx, image('img', { labels: { '': 'x' } }), ['labels.']).catch((e) => e);
      expect(kindOf(err)).toBe('unknown');
      expect(err.message).toBe('writing labels for image img: failed to set label ""="x": key required');
    });
  });

  it('deletes, answers NotFound after, and tells the collector something was deleted', async () => {
    await store.create(ctx, image('a'));
    const seen: Mutation[] = [];
    db.onCommit((m) => seen.push(m));
    await store.delete(ctx, 'a');
    expect(seen).toEqual([{ deletions: true }]);
    const err = await store.delete(ctx, 'a').catch((e) => e);
    expect(err.message).toBe('image "a": not found');
    expect(isNotFound(await store.get(ctx, 'a').catch((e) => e))).toBe(true);
  });

  it('keeps namespaces apart', async () => {
    const other = context({ namespace: 'ns2' });
    await store.create(ctx, image('shared'));
    expect(isNotFound(await store.get(other, 'shared').catch((e) => e))).toBe(true);
    expect(await store.list(other)).toEqual([]);
    expect(isNotFound(await store.update(other, image('shared'), ['labels']).catch((e) => e))).toBe(true);
    expect(isNotFound(await store.delete(other, 'shared').catch((e) => e))).toBe(true);
    await store.create(other, image('shared', { labels: { mine: '2' } }));
    expect((await store.get(ctx, 'shared')).labels).toEqual({});
  });

  it('requires a namespace', async () => {
    const err = await store.list(context()).catch((e) => e);
    expect(err.message).toBe('namespace is required: failed precondition');
  });

  it.each([
    ['name==b', ['b']],
    ['name~=^a', ['a', 'ab']],
    [`target.digest==${D2}`, ['b']],
    ['target.mediatype~=index', ['b']],
    ['labels.x==y', ['a']],
    ['labels."io.k8s/p"', ['ab']],
    ['annotations.org.opencontainers.image.ref.name==1.0', ['b']],
    ['', ['a', 'ab', 'b']],
  ])('lists with the filter %p', async (filter, names) => {
    await store.create(ctx, image('a', { labels: { x: 'y' } }));
    await store.create(ctx, image('ab', { labels: { 'io.k8s/p': 'z', q: 'r' } }));
    await store.create(ctx, image('b', { target: { mediaType: INDEX, digest: D2, size: 1, annotations: { 'org.opencontainers.image.ref.name': '1.0' } } }));
    expect((await store.list(ctx, [filter])).map((i) => i.name)).toEqual(names);
  });

  it('refuses a filter on a field images do not have (containerd would match nothing)', async () => {
    const err = await store.list(ctx, ['name==a', 'unknown==x']).catch((e) => e);
    expect(isInvalidArgument(err)).toBe(true);
    expect(err.message).toBe('filters: unknown field "unknown" (fields: name, target.digest, target.mediatype, labels.<key>, annotations.<key>): invalid argument');
  });

  it('ORs several filters and reports a parse error with containerd second suffix', async () => {
    await store.create(ctx, image('a'));
    await store.create(ctx, image('b'));
    expect((await store.list(ctx, ['name==a', 'name==b'])).map((i) => i.name)).toEqual(['a', 'b']);
    const err = await store.list(ctx, ['name==']).catch((e) => e);
    expect(isInvalidArgument(err)).toBe(true);
    expect(err.message).toBe('filters: parse error: [name==]: expected value or quoted: invalid argument: invalid argument');
  });

  it('keeps images across a reopen', async () => {
    const created = await store.create(ctx, image('persist', { labels: { k: 'v' }, target: { ...image('').target, annotations: { a: 'b' } } }));
    await db.close();
    db = MetadataDb.open(dir);
    store = new LmdbImageStore(db);
    expect(await store.get(ctx, 'persist')).toEqual(created);
  });
});
