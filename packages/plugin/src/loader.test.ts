import 'reflect-metadata';
import { injectable, inject } from 'tsyringe';
import { createLogger } from '@berth/log';
import { isFailedPrecondition } from '@berth/errdefs';
import { LoadedPlugins, SkipPluginError, loadPlugins } from './loader';
import { token } from './token';
import { definePlugin, Registration } from './types';

interface Store {
  get(): string;
}
const StoreToken = token<Store>('test.store.v1/store');

@injectable()
class Consumer {
  constructor(@inject(StoreToken) readonly store: Store) {}
}

function harness() {
  const lines: string[] = [];
  const logger = createLogger({ level: 'debug', write: (l) => lines.push(l) });
  const load = (regs: Registration[], extra: Partial<Parameters<typeof loadPlugins>[1]> = {}) =>
    loadPlugins(regs, { root: '/r', state: '/s', address: '/s/berthd.sock', logger, ...extra });
  return { lines, load };
}

const summary = (set: LoadedPlugins) => set.reports.map((r) => `${r.type}.${r.id}=${r.status}`);

describe('loadPlugins', () => {
  it('initializes in order, wires tokens through tsyringe and passes paths and config', async () => {
    const { load } = harness();
    const seen: string[] = [];
    const store = definePlugin<{ name: string }, Store>({
      type: 'test.store.v1',
      id: 'mem',
      provides: [StoreToken],
      config: { defaults: () => ({ name: 'default' }) },
      init: (ctx) => {
        seen.push(`${ctx.root} ${ctx.state} ${ctx.ttrpcAddress} ${ctx.config.name}`);
        ctx.exports.root = ctx.root;
        return { get: () => ctx.config.name };
      },
    });
    const consumer = definePlugin({
      type: 'test.service.v1',
      id: 'consumer',
      requires: ['test.store.v1'],
      init: (ctx) => {
        ctx.container.register(Consumer, Consumer);
        return ctx.container.resolve(Consumer).store.get();
      },
    });
    const set = await load([consumer, store], { sections: { 'test.store.v1.mem': { name: 'configured' } } });
    expect(summary(set)).toEqual(['test.store.v1.mem=ok', 'test.service.v1.consumer=ok']);
    expect(seen).toEqual(['/r/test.store.v1.mem /s/test.store.v1.mem /s/berthd.sock.ttrpc configured']);
    expect(set.instances.get('test.service.v1.consumer')).toBe('configured');
    expect(set.reports[0].exports).toEqual({ root: '/r/test.store.v1.mem' });
  });

  it('reports a failing plugin as error, skips its dependents and keeps loading the rest', async () => {
    const { load, lines } = harness();
    const regs: Registration[] = [
      { type: 'a', id: 'broken', init: () => { throw new Error('disk on fire'); } },
      { type: 'b', id: 'dependent', requires: ['a'], init: () => 'b' },
      { type: 'c', id: 'independent', init: () => 'c' },
    ];
    const set = await load(regs);
    expect(summary(set)).toEqual(['a.broken=error', 'b.dependent=skip', 'c.independent=ok']);
    expect(set.reports[0].error).toBe('disk on fire');
    expect(set.reports[1].error).toBe('required plugin a.broken did not load: skip plugin');
    expect(lines.some((l) => l.includes('level=warn msg="plugin a.broken failed"') && l.includes('error="disk on fire"'))).toBe(true);
    expect(lines.some((l) => l.includes('msg="plugins initialized" ok=1 skip=1 error=1'))).toBe(true);
  });

  it('does not skip a dependent while another plugin of the type loaded', async () => {
    const { load } = harness();
    const set = await load([
      { type: 'snap', id: 'zfs', init: () => { throw new SkipPluginError('not a zfs filesystem'); } },
      { type: 'snap', id: 'native', init: () => 'n' },
      { type: 'meta', id: 'db', requires: ['snap'], init: (ctx) => [...ctx.getAll<string>('snap').keys()] },
    ]);
    expect(summary(set)).toEqual(['snap.zfs=skip', 'snap.native=ok', 'meta.db=ok']);
    expect(set.reports[0].error).toBe('not a zfs filesystem: skip plugin');
    expect(set.instances.get('meta.db')).toEqual(['native']);
  });

  it('skips disabled plugins with a skip-plugin message', async () => {
    const { load } = harness();
    const init = jest.fn();
    const set = await load([{ type: 'a', id: 'x', init }], { disabled: ['a.x'] });
    expect(summary(set)).toEqual(['a.x=skip']);
    expect(set.reports[0].error).toBe('plugin a.x is disabled: skip plugin');
    expect(init).not.toHaveBeenCalled();
  });

  it('fails startup naming a required plugin that did not load, after closing the others', async () => {
    const { load } = harness();
    const closed: string[] = [];
    const regs: Registration[] = [
      { type: 'a', id: 'ok', init: (ctx) => ctx.onClose(() => void closed.push('a.ok')) },
      { type: 'b', id: 'bad', init: () => { throw new Error('no luck'); } },
    ];
    const err = await load(regs, { required: ['b.bad', 'c.none'] }).catch((e) => e);
    expect(isFailedPrecondition(err)).toBe(true);
    expect(err.message).toBe('required plugins did not load: b.bad (error: no luck); c.none (not registered): failed precondition');
    expect(closed).toEqual(['a.ok']);
  });

  it('closes in reverse load order and keeps going past a failing close', async () => {
    const { load, lines } = harness();
    const closed: string[] = [];
    const mk = (type: string, requires: string[] = [], fail = false): Registration => ({
      type,
      id: 'p',
      requires,
      init: (ctx) =>
        ctx.onClose(async () => {
          closed.push(type);
          if (fail) throw new Error('close failed');
        }),
    });
    const set = await load([mk('c', ['b']), mk('b', ['a'], true), mk('a')]);
    await set.close();
    await set.close();
    expect(closed).toEqual(['c', 'b', 'a']);
    expect(lines.some((l) => l.includes('msg="failed to close plugin" plugin=b.p error="close failed"'))).toBe(true);
  });

  it('lets init provide more values under its own type tokens', async () => {
    const { load } = harness();
    const set = await load([
      { type: 'test.store.v1', id: 'x', init: (ctx) => ctx.provide(StoreToken, { get: () => 'provided' }) },
      { type: 'b', id: 'y', requires: ['test.store.v1'], init: (ctx) => ctx.get(StoreToken).get() },
      { type: 'c', id: 'z', init: (ctx) => ctx.provide(StoreToken, { get: () => 'nope' }) },
    ]);
    expect(set.instances.get('b.y')).toBe('provided');
    expect(set.reports[2].error).toBe('plugin c.z cannot provide test.store.v1/store, a token of another plugin type: invalid argument');
  });

  it('lets a later plugin of a type wrap the provider it requires; consumers get the wrapper, wrappers stack', async () => {
    const { load } = harness();
    const wrap = (id: string): Registration => ({
      type: 'test.store.v1',
      id,
      requires: ['test.store.v1'],
      provides: [StoreToken],
      init: (ctx) => {
        const inner = ctx.get(StoreToken);
        return { get: () => `${id}(${inner.get()})` };
      },
    });
    const consumer: Registration = { type: 'b', id: 'user', requires: ['test.store.v1'], init: (ctx) => ctx.get(StoreToken).get() };
    const base: Registration = { type: 'test.store.v1', id: 'base', provides: [StoreToken], init: () => ({ get: () => 'base' }) };
    const set = await load([consumer, base, wrap('counting'), wrap('tracing')]);
    expect(summary(set)).toEqual(['test.store.v1.base=ok', 'test.store.v1.counting=ok', 'test.store.v1.tracing=ok', 'b.user=ok']);
    expect(set.instances.get('b.user')).toBe('tracing(counting(base))');
  });

  it("resolves through the plugin's own container first", async () => {
    const { load } = harness();
    const set = await load([
      { type: 'test.store.v1', id: 'x', provides: [StoreToken], init: () => ({ get: () => 'daemon' }) },
      {
        type: 'b',
        id: 'y',
        requires: ['test.store.v1'],
        init: (ctx) => {
          ctx.container.register(StoreToken, { useValue: { get: () => 'mine' } });
          return ctx.get(StoreToken).get();
        },
      },
      { type: 'c', id: 'z', requires: ['test.store.v1'], init: (ctx) => ctx.get(StoreToken).get() },
    ]);
    expect([set.instances.get('b.y'), set.instances.get('c.z')]).toEqual(['mine', 'daemon']);
  });

  it('skips a plugin whose declared token has no provider', async () => {
    const { load } = harness();
    const set = await load([
      { type: 'test.store.v1', id: 'x', init: () => { throw new SkipPluginError('not here'); } },
      { type: 'test.store.v1', id: 'y', init: () => 'ok' },
      { type: 'b', id: 'y', requires: ['test.store.v1'], init: (ctx) => ctx.get(StoreToken) },
    ]);
    expect(summary(set)).toEqual(['test.store.v1.x=skip', 'test.store.v1.y=ok', 'b.y=skip']);
    expect(set.reports[2].error).toBe('test.store.v1/store is not available: skip plugin');
  });

  it('refuses lookups of undeclared types', async () => {
    const { load } = harness();
    const set = await load([
      { type: 'a', id: 'x', provides: [StoreToken], init: () => ({ get: () => 'x' }) },
      { type: 'b', id: 'y', init: (ctx) => ctx.get(StoreToken) },
    ]);
    expect(set.reports[1].status).toBe('error');
    expect(set.reports[1].error).toBe('plugin b.y looks up test.store.v1 without declaring it in requires: invalid argument');
  });

  it('reports bad config as a plugin error', async () => {
    const { load } = harness();
    const set = await load(
      [{ type: 'a', id: 'x', config: { defaults: () => ({ threshold: 1 }) }, init: () => 1 }],
      { sections: { 'a.x': { threshold: 'high' } } },
    );
    expect(set.reports[0]).toMatchObject({ status: 'error', error: 'config of plugins."a.x": threshold must be a number: invalid argument' });
  });
});
