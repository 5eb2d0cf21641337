import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NamespaceCreate } from '@berth/api/events';
import { context } from '@berth/context';
import { type Exchange, exchangePlugin } from '@berth/events';
import { nullLogger } from '@berth/log';
import { loadPlugins } from '@berth/plugin/loader';
import { plugins } from '../examples/event-counter';

/** The README's plugin module, loaded as berthd loads `plugin_modules`: beside the event exchange, with its config table. */
describe('README example: the event-counter plugin module', () => {
  it('counts the events its filters match', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'berth-sdk-example-'));
    const loaded = await loadPlugins([exchangePlugin, ...plugins], {
      root: dir,
      state: dir,
      address: join(dir, 'unused.sock'),
      logger: nullLogger,
      sections: { 'io.containerd.internal.v1.event-counter': { filters: ['topic=="/namespaces/create"'] } },
    });
    try {
      const exchange = loaded.ofType<Exchange>('io.containerd.event.v1').get('exchange')!;
      for (const name of ['a', 'b', 'c']) await exchange.publish(context({ namespace: name }), '/namespaces/create', NamespaceCreate, { name });
      await exchange.publish(context({ namespace: 'a' }), '/namespaces/delete', NamespaceCreate, { name: 'a' });
      const counter = loaded.ofType<{ seen: number }>('io.containerd.internal.v1').get('event-counter')!;
      for (let i = 0; i < 100 && counter.seen < 3; i++) await new Promise((r) => setTimeout(r, 5));
      expect(counter.seen).toBe(3);
    } finally {
      await loaded.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
