import { nullLogger } from '@berth/log';
import { definePlugin, token } from '@berth/plugin';
import { loadPlugins } from '@berth/plugin/loader';

interface Greeter {
  greet(name: string): string;
}

const GREETER = 'io.example.greeter.v1';
const GreeterToken = token<Greeter>(`${GREETER}/greeter`);

/**
 * Loads plugins as berthd does, in dependency order: a greeter, a second greeter that requires
 * its own type and wraps the first under the same token, and an app that requires greeters and
 * so gets the wrapper. Registration order only breaks ties. Returns the load order and what the
 * app said; the plugins close in reverse order.
 */
export async function loadGreeters(dir: string): Promise<{ order: string[]; said: string }> {
  const plain = definePlugin<undefined, Greeter>({
    type: GREETER,
    id: 'plain',
    provides: [GreeterToken],
    init: () => ({ greet: (name) => `hello ${name}` }),
  });
  const loud = definePlugin<undefined, Greeter>({
    type: GREETER,
    id: 'loud',
    requires: [GREETER],
    provides: [GreeterToken],
    init: (ctx) => {
      const inner = ctx.get(GreeterToken);
      return { greet: (name) => `${inner.greet(name).toUpperCase()}!` };
    },
  });
  const app = definePlugin<undefined, { said: string }>({
    type: 'io.example.app.v1',
    id: 'app',
    requires: [GREETER],
    init: (ctx) => ({ said: ctx.get(GreeterToken).greet('berth') }),
  });
  const loaded = await loadPlugins([app, plain, loud], { root: dir, state: dir, address: `${dir}/unused.sock`, logger: nullLogger });
  try {
    const order = loaded.reports.map((r) => `${r.type}.${r.id} ${r.status}`);
    return { order, said: loaded.ofType<{ said: string }>('io.example.app.v1').get('app')!.said };
  } finally {
    await loaded.close();
  }
}
