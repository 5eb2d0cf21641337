import { context } from '@berth/context';
import { Exchange } from '@berth/events';
import { nullLogger } from '@berth/log';
import { LmdbNamespaceStore, MetadataDb } from '@berth/metadata';
import { NamespacesService } from '@berth/namespaces';

/**
 * Creates, relabels and deletes a namespace through the namespaces service over a metadata
 * database in `dir`, as `ctr namespaces create/label/remove` would, and returns the labels it had
 * after the update and the events the service published (after each change committed).
 */
export async function namespaceLifecycle(dir: string): Promise<{ labels: Record<string, string>; events: string[] }> {
  const db = MetadataDb.open(dir);
  const exchange = new Exchange();
  const events = exchange.subscribe(context(), ['topic~="^/namespaces/"']);
  try {
    const namespaces = new NamespacesService(new LmdbNamespaceStore(db), exchange, nullLogger);
    const ctx = context();
    await namespaces.create(ctx, { name: 'ci', labels: { owner: 'build-team' } });
    await namespaces.update(ctx, { name: 'ci', labels: { tier: 'gold', owner: '' } }, ['labels.tier', 'labels.owner']);
    const { labels } = await namespaces.get('ci');
    await namespaces.delete(ctx, 'ci');
    const topics: string[] = [];
    for await (const e of events) if (topics.push(`${e.namespace} ${e.topic}`) === 3) break;
    return { labels, events: topics };
  } finally {
    exchange.close();
    await db.close();
  }
}
