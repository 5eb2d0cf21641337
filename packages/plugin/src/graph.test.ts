import { isInvalidArgument } from '@berth/errdefs';
import { orderPlugins } from './graph';
import { Registration, pluginKey } from './types';

const p = (type: string, id: string, requires: string[] = []): Registration => ({ type, id, requires, init: () => undefined });
const keys = (regs: Registration[]) => orderPlugins(regs).map(pluginKey);

describe('orderPlugins', () => {
  it('keeps registration order for independent plugins', () => {
    expect(keys([p('t.a', 'x'), p('t.b', 'y'), p('t.a', 'z')])).toEqual(['t.a.x', 't.b.y', 't.a.z']);
  });

  it('puts required types first, in the order of requires, each in registration order', () => {
    const regs = [p('svc', 'images', ['meta']), p('snap', 'overlayfs'), p('meta', 'bolt', ['content', 'snap']), p('content', 'content'), p('snap', 'native')];
    expect(keys(regs)).toEqual(['content.content', 'snap.overlayfs', 'snap.native', 'meta.bolt', 'svc.images']);
  });

  it('is deterministic', () => {
    const regs = [p('grpc', 'a', ['svc']), p('svc', 'b', ['meta']), p('meta', 'm'), p('grpc', 'c', ['meta'])];
    expect(keys(regs)).toEqual(keys([...regs]));
    expect(keys(regs)).toEqual(['meta.m', 'svc.b', 'grpc.a', 'grpc.c']);
  });

  it('orders a wildcard plugin after every plugin of other types', () => {
    const regs = [p('grpc', 'introspection', ['*']), p('svc', 'a'), p('grpc', 'b'), p('content', 'c')];
    expect(keys(regs)).toEqual(['svc.a', 'content.c', 'grpc.introspection', 'grpc.b']);
  });

  it('ignores required types nobody provides', () => {
    expect(keys([p('a', 'x', ['nothing.here'])])).toEqual(['a.x']);
  });

  it('orders a plugin requiring its own type after the earlier plugins of that type only', () => {
    const regs = [p('store', 'wrap-a', ['store']), p('store', 'local'), p('store', 'wrap-b', ['store']), p('svc', 'user', ['store'])];
    expect(keys(regs)).toEqual(['store.wrap-a', 'store.local', 'store.wrap-b', 'svc.user']);
  });

  it('names the path of a cycle', () => {
    const regs = [p('a', 'x', ['b']), p('b', 'y', ['c']), p('c', 'z', ['a'])];
    expect(() => orderPlugins(regs)).toThrow('plugin dependency cycle: a.x -> b.y -> c.z -> a.x: invalid argument');
  });

  it('finds a cycle through a wildcard', () => {
    const regs = [p('w', 'all', ['*']), p('a', 'x', ['w'])];
    expect(() => orderPlugins(regs)).toThrow(/plugin dependency cycle: w.all -> a.x -> w.all/);
  });

  it('refuses a plugin registered twice', () => {
    let err: unknown;
    try {
      orderPlugins([p('a', 'x'), p('a', 'x')]);
    } catch (e) {
      err = e;
    }
    expect(isInvalidArgument(err)).toBe(true);
    expect((err as Error).message).toBe('plugin a.x is registered twice: invalid argument');
  });
});
