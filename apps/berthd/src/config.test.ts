import { parse } from 'smol-toml';
import { isInvalidArgument } from '@berth/errdefs';
import { builtinPlugins } from './builtins';
import { defaultConfig, parseConfig, renderDefaultConfig } from './config';

describe('daemon config', () => {
  it('reads containerd version 2 settings over the defaults', () => {
    const cfg = parseConfig(`
version = 2
root = "/data/berth"
disabled_plugins = ["io.containerd.grpc.v1.version"]
[grpc]
address = "/tmp/x.sock"
gid = 42
[plugins."io.containerd.metadata.v1.bolt"]
content_sharing_policy = "isolated"
`);
    expect(cfg.root).toBe('/data/berth');
    expect(cfg.state).toBe('/run/berth');
    expect(cfg.disabled_plugins).toEqual(['io.containerd.grpc.v1.version']);
    expect(cfg.grpc).toMatchObject({ address: '/tmp/x.sock', gid: 42, uid: 0, max_recv_message_size: 16777216 });
    expect(cfg.plugins['io.containerd.metadata.v1.bolt']).toEqual({ content_sharing_policy: 'isolated' });
  });

  it('reads [metrics] and [debug] as containerd names them', () => {
    const cfg = parseConfig('[metrics]\naddress = "127.0.0.1:1338"\ngrpc_histogram = true\n[debug]\naddress = "/run/berth/debug.sock"\nformat = "json"\n');
    expect(cfg.metrics).toEqual({ address: '127.0.0.1:1338', grpc_histogram: true });
    expect(cfg.debug).toMatchObject({ address: '/run/berth/debug.sock', format: 'json' });
  });

  it('reads plugin_modules and containerd 1.6 [proxy_plugins] tables', () => {
    const cfg = parseConfig(`
version = 2
plugin_modules = ["@acme/berth-x", "/opt/berth/plugins/y.js"]
[proxy_plugins]
  [proxy_plugins.stargz]
    type = "snapshot"
    address = "/run/containerd-stargz-grpc/containerd-stargz-grpc.sock"
  [proxy_plugins.remote]
    type = "content"
    address = "/run/remote-content.sock"
`);
    expect(cfg.plugin_modules).toEqual(['@acme/berth-x', '/opt/berth/plugins/y.js']);
    expect(cfg.proxy_plugins).toEqual({
      stargz: { type: 'snapshot', address: '/run/containerd-stargz-grpc/containerd-stargz-grpc.sock' },
      remote: { type: 'content', address: '/run/remote-content.sock' },
    });
  });

  it.each([
    ['plugin_modules = "x"', 'config: plugin_modules must be a list of strings'],
    ['proxy_plugins = 1', 'config: proxy_plugins must be a table'],
    ['[proxy_plugins.x]\ntype = "snapshot"', 'config: proxy_plugins.x.address must be a non-empty string'],
    ['root = 1', 'config: root must be a string'],
    ['disabled_plugins = "x"', 'config: disabled_plugins must be a list of strings'],
    ['[grpc]\nuid = "root"', 'config: grpc.uid must be a number'],
    ['version = 1', 'config: unsupported config version 1 (berthd reads version 2)'],
    ['root = ', 'config: '],
    ['[metrics]\ngrpc_histogram = "yes"', 'config: metrics.grpc_histogram must be a boolean'],
    ['[metrics]\naddress = "localhost"', 'config: metrics address "localhost" must be host:port'],
    ['[debug]\nformat = "xml"', 'config: debug.format must be "text" or "json", not "xml"'],
    ['debug = 1', 'config: debug must be a table'],
  ])('refuses %p', (text, message) => {
    let err: unknown;
    try {
      parseConfig(text);
    } catch (e) {
      err = e;
    }
    expect(isInvalidArgument(err)).toBe(true);
    expect((err as Error).message).toContain(message);
  });

  it('prints a default config that parses back to the defaults, with every plugin section', () => {
    const text = renderDefaultConfig(builtinPlugins);
    const back = parseConfig(text);
    expect({ ...back, plugins: {} }).toEqual(defaultConfig());
    expect(back.plugins['io.containerd.metadata.v1.bolt']).toEqual({ content_sharing_policy: 'shared' });
    expect((parse(text) as { version: number }).version).toBe(2);
  });
});
