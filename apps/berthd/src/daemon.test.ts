import { statSync, existsSync } from 'node:fs';
import * as http2 from 'node:http2';
import { connect } from 'node:net';
import { dirname, join } from 'node:path';
import { health, introspection, namespaces, version } from '@berth/api';
import { isInvalidArgument, isNotFound } from '@berth/errdefs';
import { orderPlugins, pluginKey } from '@berth/plugin';
import { TestDaemon, rejectionOf, tempDir } from '@berth/testing';
import { builtinPlugins } from './builtins';
import { CONNECTION_WINDOW, STREAM_WINDOW } from './server';

describe('berthd', () => {
  let d: TestDaemon;
  beforeAll(async () => {
    d = await TestDaemon.start();
  });
  afterAll(async () => {
    await d.cleanup();
  });

  it('creates the socket 0660 in a 0711 directory', () => {
    expect(statSync(d.address).mode & 0o777).toBe(0o660);
    expect(statSync(dirname(d.address)).mode & 0o777).toBe(0o711);
  });

  it('logs one line per plugin with its outcome and time, then a summary', () => {
    for (const reg of builtinPlugins) {
      expect(d.output).toMatch(new RegExp(`msg="plugin ${reg.type}\\.${reg.id} loaded" type=${reg.type} id=${reg.id} ms=[0-9.]+`));
    }
    expect(d.output).toMatch(/msg="plugins initialized" ok=\d+ skip=0 error=0 ms=\d+/);
    expect(d.output).toMatch(/msg="berthd successfully booted in [0-9.]+s"/);
  });

  it('advertises wide HTTP/2 flow-control windows, so uploads are not paced by 64 KiB round trips', async () => {
    const session = http2.connect('http://localhost', { createConnection: () => connect(d.address) });
    try {
      const settings = await new Promise<http2.Settings>((resolve, reject) => {
        session.once('remoteSettings', resolve);
        session.once('error', reject);
      });
      expect(settings.initialWindowSize).toBe(STREAM_WINDOW);
      // The connection window arrives as a WINDOW_UPDATE after the settings.
      for (let i = 0; i < 100 && session.state.remoteWindowSize !== CONNECTION_WINDOW; i++) await new Promise((r) => setTimeout(r, 10));
      expect(session.state.remoteWindowSize).toBe(CONNECTION_WINDOW);
    } finally {
      session.destroy();
    }
  });

  it('answers the Version and health services', async () => {
    const v = await d.client(version.VersionService).version({});
    expect(v.version).toMatch(/^\d+\.\d+\.\d+/);
    expect(v.revision).not.toBe('');
    const h = d.client(health.HealthService);
    expect(await h.check({ service: '' })).toEqual({ status: health.HealthCheckResponse_ServingStatus.SERVING });
    expect(isNotFound(await rejectionOf(h.check({ service: 'nope' })))).toBe(true);
  });

  it('lists plugins in load order and filters them by type and id', async () => {
    const c = d.client(introspection.IntrospectionService, 'default');
    const all = (await c.plugins({ filters: [] })).plugins;
    const keys = all.map((p) => `${p.type}.${p.id}`);
    expect(keys).toEqual(orderPlugins(builtinPlugins).map(pluginKey));
    // Dependencies first: the stores, then the metadata database, services, then the APIs.
    const at = (k: string) => keys.indexOf(k);
    expect(at('io.containerd.content.v1.content')).toBeLessThan(at('io.containerd.metadata.v1.bolt'));
    expect(at('io.containerd.snapshotter.v1.overlayfs')).toBeLessThan(at('io.containerd.metadata.v1.bolt'));
    expect(at('io.containerd.metadata.v1.bolt')).toBeLessThan(at('io.containerd.service.v1.namespaces-service'));
    expect(at('io.containerd.event.v1.exchange')).toBeLessThan(at('io.containerd.service.v1.namespaces-service'));
    const lastService = Math.max(...keys.map((k, i) => (k.startsWith('io.containerd.service.v1.') ? i : -1)));
    const firstApi = keys.findIndex((k) => k.startsWith('io.containerd.grpc.v1.'));
    expect(lastService).toBeLessThan(firstApi);
    expect(all[at('io.containerd.metadata.v1.bolt')].exports).toMatchObject({ path: join(d.root, 'io.containerd.metadata.v1.bolt', 'meta.lmdb'), policy: 'shared' });
    expect(all[0].exports).toEqual({ root: join(d.root, 'io.containerd.content.v1.content') });
    expect(all.every((p) => p.initErr === undefined)).toBe(true);
    const grpcOnly = await c.plugins({ filters: ['type==io.containerd.grpc.v1,id~=^n', 'id==bolt'] });
    expect(grpcOnly.plugins.map((p) => p.id)).toEqual(['bolt', 'namespaces']);
    expect(isInvalidArgument(await rejectionOf(c.plugins({ filters: ['type=='] })))).toBe(true);
  });

  it('keeps serving after bad input', async () => {
    const c = d.client(namespaces.NamespacesService);
    const err = await c.create({ namespace: { name: 'a/b', labels: {} } }).catch((e) => e);
    expect(isInvalidArgument(err)).toBe(true);
    expect(err.message).toBe('identifier "a/b" must match ^[A-Za-z0-9]+(?:[._-](?:[A-Za-z0-9]+))*$: invalid argument');
    await expect(c.update({ namespace: { name: 'x', labels: {} }, updateMask: ['name'] })).rejects.toThrow('cannot update "name" field: invalid argument');
    expect((await c.list({ filter: '' })).namespaces).toEqual([]);
  });

  it('refuses a second daemon on the same root with a clear message', async () => {
    const dir = tempDir('berthd-second-');
    try {
      const second = await TestDaemon.start({ dir: dir.path, root: d.root, expectExit: true });
      expect(await second.waitExit()).toBe(1);
      expect(second.output).toContain(`another berthd is already running on root ${d.root} (pid ${d.pid})`);
      expect(existsSync(d.address)).toBe(true);
    } finally {
      dir.remove();
    }
  });
});

describe('berthd at log level trace', () => {
  it('logs every gRPC call with its method, namespace and duration', async () => {
    const t = await TestDaemon.start({ logLevel: 'trace' });
    try {
      await t.client(version.VersionService).version({});
      await t.client(namespaces.NamespacesService, 'ns1').get({ name: 'missing' }); // an unknown namespace answers with no labels
      // The lines reach us through the daemon's stdout pipe, possibly after the replies.
      const calls = () => t.output.split('\n').filter((l) => l.includes('msg="gRPC call"'));
      for (let i = 0; i < 400 && calls().length < 2; i++) await new Promise((r) => setTimeout(r, 5));
      expect(calls()).toEqual([
        expect.stringMatching(/level=trace msg="gRPC call" type=io.containerd.grpc.v1 id=version method=\/containerd\.services\.version\.v1\.Version\/Version ms=[0-9.]+$/),
        expect.stringMatching(/level=trace msg="gRPC call" type=io.containerd.grpc.v1 id=namespaces method=\/containerd\.services\.namespaces\.v1\.Namespaces\/Get namespace=ns1 ms=[0-9.]+$/),
      ]);
    } finally {
      await t.cleanup();
    }
  });
});
