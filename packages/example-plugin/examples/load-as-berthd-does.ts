import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { NamespaceCreate, NamespaceDelete } from '@berth/api/events';
import { context } from '@berth/context';
import { type Exchange, exchangePlugin } from '@berth/events';
import { nullLogger } from '@berth/log';
import { loadPluginModules } from '@berth/plugin';
import { loadPlugins } from '@berth/plugin/loader';

/**
 * Does in one program what berthd does with `plugin_modules = ["@berth/example-plugin"]` and a
 * `[plugins."io.containerd.internal.v1.event-log"]` table: resolves the module by its package
 * name, puts its plugin in the graph after the event exchange with that config, and publishes
 * two namespace events. Returns the plugin's status and the topics of the lines it wrote.
 */
export async function logEvents(dir: string): Promise<{ status: string[]; topics: string[] }> {
  const builtins = [exchangePlugin];
  const modules = await loadPluginModules(['@berth/example-plugin'], { baseDir: __dirname, existing: builtins });
  const path = join(dir, 'events.jsonl');
  const loaded = await loadPlugins([...builtins, ...modules], {
    root: dir,
    state: dir,
    address: join(dir, 'unused.sock'),
    logger: nullLogger,
    sections: { 'io.containerd.internal.v1.event-log': { path, filters: ['topic~="/namespaces/"'] } },
  });
  const status = loaded.reports.map((r) => `${r.type}.${r.id} ${r.status}`);
  const exchange = loaded.ofType<Exchange>('io.containerd.event.v1').get('exchange')!;
  await exchange.publish(context({ namespace: 'ci' }), '/namespaces/create', NamespaceCreate, { name: 'ci' });
  await exchange.publish(context({ namespace: 'ci' }), '/namespaces/delete', NamespaceDelete, { name: 'ci' });
  await loaded.close(); // the plugin writes what it heard, then closes its file
  const topics = readFileSync(path, 'utf8').trim().split('\n').map((line) => JSON.parse(line).topic);
  return { status, topics };
}
