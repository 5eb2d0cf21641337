import { context } from '@berth/context';
import { collectEvents, Exchange } from '@berth/events';
import { nullLogger } from '@berth/log';
import { LmdbImageStore, MetadataDb } from '@berth/metadata';
import { tempDir } from '@berth/testing';
import { ImagesService } from './service';

const target = { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: `sha256:${'a'.repeat(64)}`, size: 3, annotations: {} };

describe('ImagesService', () => {
  const dir = tempDir('berth-images-svc-');
  const db = MetadataDb.open(dir.path);
  const exchange = new Exchange();
  const collected: string[] = [];
  const svc = new ImagesService(new LmdbImageStore(db), exchange, nullLogger, { collectGarbage: async (ctx) => void collected.push(ctx.namespace!) });
  const ctx = context({ namespace: 'ins' });
  afterAll(async () => {
    await db.close();
    dir.remove();
  });

  const collect = async (fn: () => Promise<unknown>): Promise<Array<[string, string, unknown]>> =>
    (await collectEvents(exchange, () => fn().catch(() => undefined))).map((e) => [e.namespace, e.topic, e.event]);

  it('publishes create, update and delete after they commit', async () => {
    const events = await collect(async () => {
      await svc.create(ctx, { name: 'a:1', labels: { k: 'v' }, target });
      await svc.update(ctx, { name: 'a:1', labels: { x: 'y' }, target }, ['labels.x']);
      await svc.delete(ctx, 'a:1');
    });
    expect(events).toEqual([
      ['ins', '/images/create', { name: 'a:1', labels: { k: 'v' } }],
      ['ins', '/images/update', { name: 'a:1', labels: { k: 'v', x: 'y' } }],
      ['ins', '/images/delete', { name: 'a:1' }],
    ]);
  });

  it('publishes nothing for a change that failed', async () => {
    await svc.create(ctx, { name: 'dup', labels: {}, target });
    expect(await collect(() => svc.create(ctx, { name: 'dup', labels: {}, target }))).toEqual([]);
    expect(await collect(() => svc.update(ctx, { name: 'missing', labels: {}, target }, ['target']))).toEqual([]);
    expect(await collect(() => svc.delete(ctx, 'missing'))).toEqual([]);
  });

  it('requires a name with containerd bare message', async () => {
    for (const p of [svc.create(ctx, { name: '', labels: {}, target }), svc.update(ctx, { name: '', labels: {}, target })]) {
      expect((await p.catch((e) => e)).message).toBe('Image.Name required');
    }
  });

  it('waits for the collector on a sync delete only', async () => {
    await svc.create(ctx, { name: 's1', labels: {}, target });
    await svc.create(ctx, { name: 's2', labels: {}, target });
    await svc.delete(ctx, 's1');
    expect(collected).toEqual([]);
    await svc.delete(ctx, 's2', { sync: true });
    expect(collected).toEqual(['ins']);
  });
});
