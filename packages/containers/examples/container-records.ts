import { context } from '@berth/context';
import { ContainersService } from '@berth/containers';
import { Exchange } from '@berth/events';
import { nullLogger } from '@berth/log';
import { LmdbContainerStore, MetadataDb } from '@berth/metadata';

/**
 * Records containers through the containers service over a metadata database in `dir` (metadata
 * only: no task runs), relabels one with a field mask, finds it by its new label, and deletes
 * them. Returns the ids the filter found, what a second create of the same id answers, and the
 * events the service published.
 */
export async function containerRecords(dir: string): Promise<{ found: string[]; again: string; events: string[] }> {
  const db = MetadataDb.open(dir);
  const exchange = new Exchange();
  const events = exchange.subscribe(context(), ['topic~="^/containers/"']);
  try {
    const containers = new ContainersService(new LmdbContainerStore(db), exchange, nullLogger);
    const ctx = context({ namespace: 'default' });
    const create = (id: string) =>
      containers.create(ctx, {
        id,
        labels: { app: 'shop' },
        image: 'docker.io/library/busybox:latest',
        runtime: { name: 'io.containerd.runc.v2' },
        spec: { typeUrl: 'types.containerd.io/opencontainers/runtime-spec/1/Spec', value: Buffer.from('{"ociVersion":"1.0.2"}') },
        snapshotter: 'overlayfs',
        snapshotKey: `${id}-rootfs`,
        extensions: {},
      });
    for (const id of ['web', 'worker']) await create(id);
    await containers.update(ctx, { ...(await containers.get(ctx, 'worker')), labels: { app: 'shop', role: 'batch' } }, ['labels.role']);
    const found = (await containers.list(ctx, ['labels.role==batch'])).map((c) => c.id);
    const again = await create('web').then(() => 'created twice', (err: Error) => err.message);
    for (const id of ['web', 'worker']) await containers.delete(ctx, id);
    const topics: string[] = [];
    for await (const e of events) if (topics.push(e.topic) === 5) break;
    return { found, again, events: topics };
  } finally {
    exchange.close();
    await db.close();
  }
}
