import { context } from '@berth/context';
import { collectEvents, Exchange } from '@berth/events';
import { nullLogger } from '@berth/log';
import { LmdbNamespaceStore, MetadataDb } from '@berth/metadata';
import { tempDir } from '@berth/testing';
import { NamespacesService } from './namespaces-service';

describe('NamespacesService events', () => {
  const dir = tempDir('berth-ns-');
  const db = MetadataDb.open(dir.path);
  const exchange = new Exchange();
  const svc = new NamespacesService(new LmdbNamespaceStore(db), exchange, nullLogger);
  afterAll(async () => {
    await db.close();
    dir.remove();
  });

  const collect = async (fn: () => Promise<unknown>): Promise<Array<[string, string, unknown]>> =>
    (await collectEvents(exchange, () => fn().catch(() => undefined))).map((e) => [e.namespace, e.topic, e.event]);

  it('publishes create, update and delete after they commit, with containerd envelope namespaces', async () => {
    const caller = context({ namespace: 'default' });
    const events = await collect(async () => {
      await svc.create(caller, { name: 'foo', labels: { a: 'b' } });
      await svc.update(caller, { name: 'foo', labels: { x: 'y' } }, ['labels.x']);
      await svc.delete(caller, 'foo');
    });
    expect(events).toEqual([
      ['default', '/namespaces/create', { name: 'foo', labels: { a: 'b' } }],
      ['default', '/namespaces/update', { name: 'foo', labels: { x: 'y' } }],
      ['foo', '/namespaces/delete', { name: 'foo' }],
    ]);
  });

  it('publishes nothing for a change that failed', async () => {
    await svc.create(context({ namespace: 'default' }), { name: 'dup', labels: {} });
    expect(await collect(() => svc.create(context({ namespace: 'default' }), { name: 'dup', labels: {} }))).toEqual([]);
    expect(await collect(() => svc.update(context({ namespace: 'default' }), { name: 'dup', labels: {} }, ['name']))).toEqual([]);
    expect(await collect(() => svc.delete(context({ namespace: 'default' }), 'missing'))).toEqual([]);
  });

  it('replaces the whole label set for the mask "labels" and refuses other paths', async () => {
    const caller = context({ namespace: 'default' });
    await svc.create(caller, { name: 'masks', labels: { a: '1', b: '2' } });
    await svc.update(caller, { name: 'masks', labels: { c: '3' } }, ['labels']);
    expect((await svc.get('masks')).labels).toEqual({ c: '3' });
    await expect(svc.update(caller, { name: 'masks', labels: {} }, ['labels.c', 'name'])).rejects.toThrow('cannot update "name" field: invalid argument');
    expect((await svc.get('masks')).labels).toEqual({ c: '3' });
  });
});
