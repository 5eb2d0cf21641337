import { context } from '@berth/context';
import { collectEvents, Exchange } from '@berth/events';
import { nullLogger } from '@berth/log';
import { ContainerInput, LmdbContainerStore, MetadataDb } from '@berth/metadata';
import { tempDir } from '@berth/testing';
import { ContainersService } from './containers-service';

const options = { typeUrl: 'containerd.runc.v1.Options', value: Buffer.alloc(0) };
const container = (id: string, over: Partial<ContainerInput> = {}): ContainerInput => ({
  id,
  labels: {},
  image: 'img:1',
  runtime: { name: 'io.containerd.runc.v2', options },
  spec: { typeUrl: 'types.containerd.io/opencontainers/runtime-spec/1/Spec', value: Buffer.from('{}') },
  snapshotter: 'overlayfs',
  snapshotKey: id,
  extensions: {},
  ...over,
});

describe('ContainersService', () => {
  const dir = tempDir('berth-containers-svc-');
  const db = MetadataDb.open(dir.path);
  const exchange = new Exchange();
  const svc = new ContainersService(new LmdbContainerStore(db), exchange, nullLogger);
  const ctx = context({ namespace: 'cns' });
  afterAll(async () => {
    await db.close();
    dir.remove();
  });

  const collect = async (fn: () => Promise<unknown>): Promise<Array<[string, string, unknown]>> =>
    (await collectEvents(exchange, () => fn().catch(() => undefined))).map((e) => [e.namespace, e.topic, e.event]);

  it('publishes create, update and delete after they commit', async () => {
    const events = await collect(async () => {
      await svc.create(ctx, container('c1', { labels: { a: 'b' } }));
      await svc.update(ctx, container('c1', { labels: { x: 'y' }, snapshotKey: 'k2' }), ['labels.x', 'snapshotkey']);
      await svc.delete(ctx, 'c1');
    });
    expect(events).toEqual([
      ['cns', '/containers/create', { id: 'c1', image: 'img:1', runtime: { name: 'io.containerd.runc.v2', options } }],
      ['cns', '/containers/update', { id: 'c1', image: 'img:1', labels: { a: 'b', x: 'y' }, snapshotKey: 'k2' }],
      ['cns', '/containers/delete', { id: 'c1' }],
    ]);
  });

  it('publishes nothing for a change that failed', async () => {
    await svc.create(ctx, container('dup'));
    expect(await collect(() => svc.create(ctx, container('dup')))).toEqual([]);
    expect(await collect(() => svc.update(ctx, container('dup', { snapshotter: '' })))).toEqual([]);
    expect(await collect(() => svc.delete(ctx, 'missing'))).toEqual([]);
  });

  it('requires an id on update with containerd bare message', async () => {
    expect((await svc.update(ctx, container('')).catch((e) => e)).message).toBe('Container.ID required');
  });
});
