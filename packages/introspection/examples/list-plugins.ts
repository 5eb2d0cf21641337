import { IntrospectionService } from '@berth/introspection';
import { nullLogger } from '@berth/log';
import { SkipPluginError, definePlugin } from '@berth/plugin';
import { loadPlugins } from '@berth/plugin/loader';

/**
 * Loads three small plugins with the daemon's loader (one starts, one skips, one fails) and asks
 * the introspection service over the loaded set what `ctr plugins ls` would show for their type,
 * and the server's UUID twice: it is created once under `dir` and kept.
 */
export async function listPlugins(dir: string): Promise<{ plugins: string[]; sameUuid: boolean }> {
  const type = 'io.example.v1';
  const loaded = await loadPlugins(
    [
      definePlugin({ type, id: 'starts', init: () => ({}) }),
      definePlugin({ type, id: 'skips', init: () => { throw new SkipPluginError('nothing to do on this host'); } }),
      definePlugin({ type, id: 'fails', init: () => { throw new Error('config file missing'); } }),
      definePlugin({ type: 'io.other.v1', id: 'elsewhere', init: () => ({}) }),
    ],
    { root: dir, state: dir, address: `${dir}/unused.sock`, logger: nullLogger },
  );
  try {
    const introspection = new IntrospectionService(loaded, dir);
    const plugins = introspection.listPlugins([`type==${type}`]).map((r) => `${r.id} ${r.status}${r.error ? ` (${r.error})` : ''}`);
    const uuid = introspection.uuid();
    return { plugins, sameUuid: new IntrospectionService(loaded, dir).uuid() === uuid };
  } finally {
    await loaded.close();
  }
}
