import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { context } from '@berth/context';
import { isAlreadyExists, isInvalidArgument, isNotFound } from '@berth/errdefs';
import { AnyValue, ContainerInput, LmdbContainerStore } from './container-store';
import { MetadataDb } from './db';
import { objectKey } from './schema';

const SPEC_URL = 'types.containerd.io/opencontainers/runtime-spec/1/Spec';
const spec = (json: unknown): AnyValue => ({ typeUrl: SPEC_URL, value: Buffer.from(JSON.stringify(json)) });

const container = (id: string, over: Partial<ContainerInput> = {}): ContainerInput => ({
  id,
  labels: {},
  image: 'docker.io/library/busybox:latest',
  runtime: { name: 'io.containerd.runc.v2', options: { typeUrl: 'containerd.runc.v1.Options', value: Buffer.alloc(0) } },
  spec: spec({ ociVersion: '1.0.2-dev' }),
  snapshotter: 'overlayfs',
  snapshotKey: id,
  extensions: {},
  ...over,
});

describe('LmdbContainerStore', () => {
  let dir: string;
  let db: MetadataDb;
  let store: LmdbContainerStore;
  const ctx = context({ namespace: 'cns' });

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'berth-containers-'));
    db = MetadataDb.open(dir);
    store = new LmdbContainerStore(db);
  });
  afterEach(async () => {
    await db.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('creates and gets a container, keeping spec and option bytes verbatim', async () => {
    const raw = Buffer.from('{"ociVersion":"1.0.2-dev","process":{"args":["sh"]}}  ');
    const created = await store.create(ctx, container('c1', { spec: { typeUrl: SPEC_URL, value: raw }, labels: { a: '1', gone: '' } }));
    const got = await store.get(ctx, 'c1');
    expect(got).toEqual(created);
    expect(got.spec!.value.equals(raw)).toBe(true);
    expect(got.labels).toEqual({ a: '1' });
    expect(got.runtime).toEqual({ name: 'io.containerd.runc.v2', options: { typeUrl: 'containerd.runc.v1.Options', value: Buffer.alloc(0) } });
  });

  it.each([
    ['a bad id', { id: 'Bad!' }, 'container.ID: identifier "Bad!" must match ^[A-Za-z0-9]+(?:[._-](?:[A-Za-z0-9]+))*$'],
    ['no id', { id: '' }, 'container.ID: identifier must not be empty'],
    ['an empty extension key', { extensions: { '': spec({}) } }, 'container.Extension keys must not be zero-length'],
    ['an oversized label', { labels: { k: 'v'.repeat(4096) } }, 'containers.Labels: label key and value greater than maximum size (4096 bytes), key: k'],
    ['no runtime name', { runtime: { name: '' } }, 'container.Runtime.Name must be set'],
    ['no spec', { spec: undefined }, 'container.Spec must be set'],
    ['a snapshot key without snapshotter', { snapshotter: '' }, 'container.Snapshotter must be set if container.SnapshotKey is set'],
    [
      'a spec that is not JSON',
      { spec: { typeUrl: 'types.containerd.io/opencontainers/runtime-spec/1/Spec', value: Buffer.from('{not json') } },
      `container.Spec is not valid JSON: Expected property name or '}' in JSON at position 1`,
    ],
    [
      'a spec that is JSON of another type',
      { spec: { typeUrl: 'types.containerd.io/opencontainers/runtime-spec/1/Spec', value: Buffer.from('[1,2]') } },
      'container.Spec must be a JSON object (an OCI runtime spec)',
    ],
  ])('refuses a container with %s', async (_, over, why) => {
    const err = await store.create(ctx, container('c1', over)).catch((e) => e);
    expect(isInvalidArgument(err)).toBe(true);
    expect(err.message).toBe(`create container failed validation: ${why}: invalid argument`);
  });

  it('lets exactly one of 50 concurrent creates of one id win', async () => {
    const results = await Promise.allSettled(Array.from({ length: 50 }, (_, i) => store.create(ctx, container('race', { labels: { n: String(i) } }))));
    const ok = results.filter((r) => r.status === 'fulfilled');
    const failed = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    expect(ok).toHaveLength(1);
    expect(failed.every((r) => isAlreadyExists(r.reason) && r.reason.message === 'container "race": already exists')).toBe(true);
    expect(await store.list(ctx)).toHaveLength(1);
  });

  describe('update', () => {
    beforeEach(async () => {
      await store.create(ctx, container('c1', { labels: { a: '1', b: '2' }, extensions: { e1: spec({ e: 1 }) } }));
    });

    it('applies labels.<k> (empty deletes), labels, image, snapshotkey, spec, extensions.<k>', async () => {
      let u = await store.update(ctx, container('c1', { labels: { a: '', c: '3' } }), ['labels.a', 'labels.c']);
      expect(u.labels).toEqual({ b: '2', c: '3' });
      u = await store.update(ctx, container('c1', { labels: { z: '1' } }), ['labels']);
      expect(u.labels).toEqual({ z: '1' });
      u = await store.update(ctx, container('c1', { image: 'other', snapshotKey: 'k2', spec: spec({ v: 2 }) }), ['image', 'snapshotkey', 'spec']);
      expect(u).toMatchObject({ image: 'other', snapshotKey: 'k2', spec: spec({ v: 2 }) });
      u = await store.update(ctx, container('c1', { extensions: { e2: spec({ e: 2 }) } }), ['extensions.e2']);
      expect(u.extensions).toEqual({ e1: spec({ e: 1 }), e2: spec({ e: 2 }) });
    });

    it('stores the zero Any for extensions.<k> missing from the request, as containerd', async () => {
      const u = await store.update(ctx, container('c1'), ['extensions.e1']);
      expect(u.extensions.e1).toEqual({ typeUrl: '', value: Buffer.alloc(0) });
    });

    it('keeps old extension keys in storage after a whole-set replace, as containerd 1.6', async () => {
      const u = await store.update(ctx, container('c1', { extensions: { e2: spec({}) } }), ['extensions']);
      expect(Object.keys(u.extensions)).toEqual(['e2']);
      expect(Object.keys((await store.get(ctx, 'c1')).extensions).sort()).toEqual(['e1', 'e2']);
    });

    it('replaces labels, spec, extensions, image and snapshot key with no paths, keeping created_at', async () => {
      const before = await store.get(ctx, 'c1');
      const u = await store.update(ctx, container('c1', { labels: { n: '1' }, image: 'i2', snapshotKey: 'k9', spec: spec({ n: 1 }), runtime: { name: 'io.containerd.runc.v2' } }));
      expect(u).toMatchObject({ labels: { n: '1' }, image: 'i2', snapshotKey: 'k9', spec: spec({ n: 1 }) });
      // Runtime options are not updatable: the stored ones stay.
      expect(u.runtime.options).toEqual(before.runtime.options);
      expect(u.createdAt).toEqual(before.createdAt);
      expect(u.updatedAt.getTime()).toBeGreaterThan(before.updatedAt.getTime());
    });

    it.each([
      ['snapshotter', { snapshotter: 'native' }, 'container.Snapshotter field is immutable: invalid argument'],
      ['snapshotter (ctr containers label with no labels)', { snapshotter: '', runtime: { name: '' }, image: '' }, 'container.Snapshotter field is immutable: invalid argument'],
      ['runtime name', { runtime: { name: 'io.containerd.runsc.v1' } }, 'container.Runtime.Name field is immutable: invalid argument'],
    ])('refuses a changed %s on a full replace', async (_, over, message) => {
      const err = await store.update(ctx, container('c1', over)).catch((e) => e);
      expect(isInvalidArgument(err)).toBe(true);
      expect(err.message).toBe(message);
    });

    it('ignores immutable fields when paths are given', async () => {
      const u = await store.update(ctx, container('c1', { snapshotter: 'native', runtime: { name: 'x' }, labels: { q: '1' } }), ['labels.q']);
      expect(u).toMatchObject({ snapshotter: 'overlayfs', runtime: { name: 'io.containerd.runc.v2' } });
    });

    it.each(['runtime', 'snapshotter', 'snapshot_key', 'id', 'createdat'])('refuses the path %p', async (path) => {
      const err = await store.update(ctx, container('c1'), [path]).catch((e) => e);
      expect(err.message).toBe(`cannot update "${path}" field on "c1": invalid argument`);
    });

    it('validates the result: no spec, snapshot key without snapshotter, big labels', async () => {
      expect((await store.update(ctx, container('c1', { spec: undefined }), ['spec']).catch((e) => e)).message).toBe(
        'update failed validation: container.Spec must be set: invalid argument',
      );
      expect((await store.update(ctx, container('c1', { labels: { k: 'v'.repeat(5000) } }), ['labels.k']).catch((e) => e)).message).toBe(
        'update failed validation: containers.Labels: label key and value greater than maximum size (4096 bytes), key: k: invalid argument',
      );
      await store.create(ctx, container('nosnap', { snapshotter: '', snapshotKey: '' }));
      expect((await store.update(ctx, container('nosnap', { snapshotKey: 'k' }), ['snapshotkey']).catch((e) => e)).message).toBe(
        'update failed validation: container.Snapshotter must be set if container.SnapshotKey is set: invalid argument',
      );
    });

    it('answers NotFound for a missing container', async () => {
      const err = await store.update(ctx, container('nope'), ['labels']).catch((e) => e);
      expect(isNotFound(err)).toBe(true);
      expect(err.message).toBe('container "nope": not found');
    });
  });

  it('answers NotFound with containerd messages for get and delete', async () => {
    expect((await store.get(ctx, 'nope').catch((e) => e)).message).toBe('container "nope" in namespace "cns": not found');
    expect((await store.delete(ctx, 'nope').catch((e) => e)).message).toBe('container nope: not found');
  });

  it('deletes the record only', async () => {
    await store.create(ctx, container('c1'));
    await store.delete(ctx, 'c1');
    expect(db.view((tx) => tx.has(objectKey('cns', 'containers', 'c1')))).toBe(false);
    expect(await store.list(ctx)).toEqual([]);
  });

  it.each([
    ['id==b', ['b']],
    ['image==img-a', ['a']],
    ['image', ['a', 'b']],
    ['runtime.name==io.containerd.runc.v2', ['a', 'c']],
    ['runtime.name~=runsc', ['b']],
    ['labels.k==v', ['c']],
    ['labels.k', ['c']],
  ])('lists with the filter %p', async (filter, ids) => {
    await store.create(ctx, container('c', { image: '', labels: { k: 'v' } }));
    await store.create(ctx, container('a', { image: 'img-a' }));
    await store.create(ctx, container('b', { image: 'img-b', runtime: { name: 'io.containerd.runsc.v1' } }));
    expect((await store.list(ctx, [filter])).map((c) => c.id)).toEqual(ids);
  });

  it('keeps namespaces apart', async () => {
    const other = context({ namespace: 'other' });
    await store.create(ctx, container('c1'));
    expect(await store.list(other)).toEqual([]);
    expect(isNotFound(await store.get(other, 'c1').catch((e) => e))).toBe(true);
    expect(isNotFound(await store.update(other, container('c1'), ['labels']).catch((e) => e))).toBe(true);
    expect(isNotFound(await store.delete(other, 'c1').catch((e) => e))).toBe(true);
    await store.get(ctx, 'c1');
  });

  it('keeps containers across a reopen', async () => {
    const created = await store.create(ctx, container('p1', { labels: { l: 'v' }, extensions: { x: spec({ x: 1 }) } }));
    await db.close();
    db = MetadataDb.open(dir);
    store = new LmdbContainerStore(db);
    expect(await store.get(ctx, 'p1')).toEqual(created);
  });
});
