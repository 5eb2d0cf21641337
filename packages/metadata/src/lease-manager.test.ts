import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { context } from '@berth/context';
import { isNotFound, kindOf } from '@berth/errdefs';
import { MetadataDb, Mutation } from './db';
import { LmdbImageStore } from './image-store';
import { LmdbLeaseManager, generateLeaseId } from './lease-manager';
import { addLeaseResource } from './leases';
import { LmdbNamespaceStore } from './namespace-store';
import { objectKey } from './schema';

const D = `sha256:${'c'.repeat(64)}`;

describe('LmdbLeaseManager', () => {
  let dir: string;
  let db: MetadataDb;
  let leases: LmdbLeaseManager;
  const ctx = context({ namespace: 'lns' });

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'berth-leases-'));
    db = MetadataDb.open(dir);
    leases = new LmdbLeaseManager(db);
  });
  afterEach(async () => {
    await db.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('generates ids as containerd does: <nanoseconds>-<4 base64url chars>', async () => {
    expect(generateLeaseId()).toMatch(/^\d{1,9}-[A-Za-z0-9_-]{4}$/);
    const lease = await leases.create(ctx, '', { 'containerd.io/gc.expire': '2030-01-01T00:00:00Z' });
    expect(lease.id).toMatch(/^\d{1,9}-[A-Za-z0-9_-]{4}$/);
    expect(lease.labels).toEqual({ 'containerd.io/gc.expire': '2030-01-01T00:00:00Z' });
  });

  it('creates, lists by id and refuses duplicates', async () => {
    await leases.create(ctx, 'b1', { x: 'y', gone: '' });
    await leases.create(ctx, 'a1');
    // containerd 1.6 does not check lease ids as identifiers.
    await leases.create(ctx, 'Not an identifier!');
    expect((await leases.list(ctx)).map((l) => [l.id, l.labels])).toEqual([
      ['Not an identifier!', {}],
      ['a1', {}],
      ['b1', { x: 'y' }],
    ]);
    const err = await leases.create(ctx, 'a1').catch((e) => e);
    expect(err.message).toBe('lease "a1": already exists');
  });

  it.each([
    ['id==a1', ['a1']],
    ['labels.x==y', ['b1']],
    ['labels.x', ['b1']],
    ['id~=1$', ['a1', 'b1']],
  ])('lists with the filter %p', async (filter, ids) => {
    await leases.create(ctx, 'a1');
    await leases.create(ctx, 'b1', { x: 'y' });
    expect((await leases.list(ctx, [filter])).map((l) => l.id)).toEqual(ids);
  });

  it('refuses a filter on a field leases do not have', async () => {
    expect((await leases.list(ctx, ['nope==1']).catch((e) => e)).message).toBe('filters: unknown field "nope" (fields: id, labels.<key>): invalid argument');
  });

  it('reports a filter parse error with the second suffix', async () => {
    expect((await leases.list(ctx, ['id==']).catch((e) => e)).message).toBe(
      'filters: parse error: [id==]: expected value or quoted: invalid argument: invalid argument',
    );
  });

  it('adds, lists and deletes resources in containerd order', async () => {
    await leases.create(ctx, 'l1');
    await leases.addResource(ctx, 'l1', { type: 'snapshots/overlayfs', id: 'k1' });
    await leases.addResource(ctx, 'l1', { type: 'ingests', id: 'ref/x y' });
    await leases.addResource(ctx, 'l1', { type: 'content', id: D });
    await leases.addResource(ctx, 'l1', { type: 'snapshots/native', id: 'k0' });
    await leases.addResource(ctx, 'l1', { type: 'content', id: D });
    expect(await leases.listResources(ctx, 'l1')).toEqual([
      { type: 'content', id: D },
      { type: 'ingests', id: 'ref/x y' },
      { type: 'snapshots/native', id: 'k0' },
      { type: 'snapshots/overlayfs', id: 'k1' },
    ]);
    const seen: Mutation[] = [];
    db.onCommit((m) => seen.push(m));
    await leases.deleteResource(ctx, 'l1', { type: 'content', id: D });
    await leases.deleteResource(ctx, 'l1', { type: 'content', id: D });
    await leases.deleteResource(ctx, 'l1', { type: 'snapshots/', id: '' });
    expect(seen).toEqual([{ deletions: true }, { deletions: false }, { deletions: false }]);
    expect(await leases.listResources(ctx, 'l1')).toHaveLength(3);
  });

  it.each([
    [{ type: 'weird', id: 'a' }, 'not-implemented', 'resource type weird not supported yet: not implemented'],
    [{ type: '', id: 'a' }, 'not-implemented', 'resource type  not supported yet: not implemented'],
    [{ type: 'content', id: 'xx' }, 'invalid-argument', 'invalid content resource id xx: invalid checksum digest format: invalid argument'],
    [{ type: 'content/x', id: D }, 'invalid-argument', 'invalid resource type content/x: invalid argument'],
    [{ type: 'snapshots', id: 'k' }, 'invalid-argument', 'invalid snapshot resource type snapshots: invalid argument'],
    [{ type: 'snapshots/', id: 'k' }, 'unknown', 'bucket name required'],
    [{ type: 'ingests', id: '' }, 'unknown', 'key required'],
  ])('refuses the resource %p', async (resource, kind, message) => {
    await leases.create(ctx, 'l1');
    const err = await leases.addResource(ctx, 'l1', resource).catch((e) => e);
    expect([kindOf(err), err.message]).toEqual([kind, message]);
  });

  it('answers NotFound for a missing lease before looking at the resource', async () => {
    for (const p of [
      leases.delete(ctx, 'x'),
      leases.addResource(ctx, 'x', { type: 'weird', id: '' }),
      leases.deleteResource(ctx, 'x', { type: 'content', id: D }),
      leases.listResources(ctx, 'x'),
    ]) {
      const err = await p.catch((e) => e);
      expect(isNotFound(err)).toBe(true);
      expect(err.message).toBe('lease "x": not found');
    }
  });

  it('deletes a lease with its resource records, as a deletion', async () => {
    await leases.create(ctx, 'l1');
    await leases.create(ctx, 'l10');
    await leases.addResource(ctx, 'l1', { type: 'content', id: D });
    await leases.addResource(ctx, 'l10', { type: 'content', id: D });
    const seen: Mutation[] = [];
    db.onCommit((m) => seen.push(m));
    await leases.delete(ctx, 'l1');
    expect(seen).toEqual([{ deletions: true }]);
    expect(db.view((tx) => tx.hasUnder(objectKey('lns', 'leased', 'l1')))).toBe(false);
    expect(await leases.listResources(ctx, 'l10')).toEqual([{ type: 'content', id: D }]);
  });

  it('attaches resources through addLeaseResource (the call header path)', async () => {
    await leases.create(ctx, 'hdr');
    db.update((tx) => addLeaseResource(tx, 'lns', 'hdr', { type: 'ingests', id: 'r1' }));
    expect(await leases.listResources(ctx, 'hdr')).toEqual([{ type: 'ingests', id: 'r1' }]);
    expect(() => db.update((tx) => addLeaseResource(tx, 'lns', 'missing', { type: 'ingests', id: 'r1' }))).toThrow('lease does not exist: not found');
  });

  it('keeps namespaces apart', async () => {
    const other = context({ namespace: 'other' });
    await leases.create(ctx, 'l1');
    expect(await leases.list(other)).toEqual([]);
    expect(isNotFound(await leases.delete(other, 'l1').catch((e) => e))).toBe(true);
    expect(isNotFound(await leases.addResource(other, 'l1', { type: 'content', id: D }).catch((e) => e))).toBe(true);
    await leases.create(other, 'l1');
  });

  it('does not keep a namespace from being deleted, and goes with it (containerd 1.6)', async () => {
    await leases.create(ctx, 'l1', { a: 'b' });
    await leases.addResource(ctx, 'l1', { type: 'content', id: D });
    await new LmdbNamespaceStore(db).delete('lns');
    expect(await leases.list(ctx)).toEqual([]);
    expect(db.view((tx) => tx.hasUnder(['v1', 'ns', 'lns']))).toBe(false);
  });

  it('still refuses to delete a namespace with images', async () => {
    await new LmdbImageStore(db).create(ctx, { name: 'i', labels: {}, target: { mediaType: 'm', digest: D, size: 1, annotations: {} } });
    await leases.create(ctx, 'l1');
    const err = await new LmdbNamespaceStore(db).delete('lns').catch((e) => e);
    expect(err.message).toBe('namespace "lns" must be empty, but it still has images: failed precondition');
  });

  it('keeps leases and resources across a reopen', async () => {
    const created = await leases.create(ctx, 'p1', { 'containerd.io/gc.flat': 'true' });
    await leases.addResource(ctx, 'p1', { type: 'snapshots/overlayfs', id: 'k' });
    await db.close();
    db = MetadataDb.open(dir);
    leases = new LmdbLeaseManager(db);
    expect(await leases.list(ctx)).toEqual([created]);
    expect(await leases.listResources(ctx, 'p1')).toEqual([{ type: 'snapshots/overlayfs', id: 'k' }]);
  });
});
