import { existsSync, readdirSync } from 'node:fs';
import { introspection, namespaces, version } from '@berth/api';
import { TestDaemon, tempDir } from '@berth/testing';

describe('berthd lifecycle', () => {
  const daemons: TestDaemon[] = [];
  const start = async (opts: Parameters<typeof TestDaemon.start>[0] = {}) => {
    const d = await TestDaemon.start(opts);
    daemons.push(d);
    return d;
  };
  afterEach(async () => {
    for (const d of daemons.splice(0)) await d.cleanup();
  });

  it('drains, closes plugins and removes its socket on SIGTERM', async () => {
    const d = await start();
    expect(await d.kill('SIGTERM')).toBe(0);
    expect(existsSync(d.address)).toBe(false);
    expect(d.output).toMatch(/received SIGTERM, shutting down/);
    expect(d.output).toMatch(/msg="berthd stopped"/);
  });

  it('keeps a code cache: written when it stops, read by the next start (BERTH_COMPILE_CACHE)', async () => {
    const cacheDir = tempDir('berth-code-cache-');
    try {
      const env = { BERTH_COMPILE_CACHE: cacheDir.path };
      const stats = (output: string) => {
        const m = /msg="code cache".* hits=(\d+) misses=(\d+) rejected=(\d+)/.exec(output);
        return m ? { hits: Number(m[1]), misses: Number(m[2]), rejected: Number(m[3]) } : undefined;
      };
      const first = await start({ env });
      expect(stats(first.output)).toMatchObject({ hits: 0 });
      expect(await first.kill('SIGTERM')).toBe(0);
      expect(readdirSync(cacheDir.path).filter((f) => f.endsWith('.bin'))).toHaveLength(1);
      const second = await start({ env });
      const s = stats(second.output)!;
      // What loaded before the log line came from the cache: the bundle (the native addons it
      // leaves out load later, with the plugins).
      expect(s.hits).toBeGreaterThan(0);
      expect(s.misses + s.rejected).toBe(0);
      // The daemon it serves is the same daemon.
      expect((await second.client(version.VersionService).version({})).version).toBeTruthy();
    } finally {
      // Stopped first: a daemon writes its cache when it stops, and would make the dir again.
      for (const d of daemons.splice(0)) await d.cleanup();
      cacheDir.remove();
    }
  });

  it('keeps every namespace, label and its uuid across kill -9', async () => {
    const d = await start();
    const ns = d.client(namespaces.NamespacesService);
    await ns.create({ namespace: { name: 'one', labels: { a: 'b' } } });
    await ns.create({ namespace: { name: 'two', labels: {} } });
    await ns.update({ namespace: { name: 'two', labels: { k: 'v' } }, updateMask: ['labels.k'] });
    const uuid = (await d.client(introspection.IntrospectionService).server({})).uuid;
    expect(await d.kill('SIGKILL')).toBe(null);
    expect(existsSync(d.address)).toBe(true);

    await d.restart();
    const after = d.client(namespaces.NamespacesService);
    expect((await after.list({ filter: '' })).namespaces).toEqual([
      { name: 'one', labels: { a: 'b' } },
      { name: 'two', labels: { k: 'v' } },
    ]);
    expect((await d.client(introspection.IntrospectionService).server({})).uuid).toBe(uuid);
  });

  it('reports a disabled plugin as skip', async () => {
    const d = await start({ config: 'disabled_plugins = ["io.containerd.grpc.v1.version"]\n' });
    const res = await d.ctr(['plugins', 'ls']);
    expect(res.code).toBe(0);
    expect(res.stdout).toMatch(/io\.containerd\.grpc\.v1\s+version\s+-\s+skip/);
    const detail = (await d.client(introspection.IntrospectionService).plugins({ filters: ['id==version'] })).plugins[0];
    expect(detail.initErr).toEqual({ code: 2, message: 'plugin io.containerd.grpc.v1.version is disabled: skip plugin', details: [] });
    await expect(d.client(version.VersionService).version({})).rejects.toThrow(/UNIMPLEMENTED|not implemented/i);
  });

  it('reports a failing plugin as error, skips its dependents and keeps serving', async () => {
    const d = await start({ config: '[plugins."io.containerd.metadata.v1.bolt"]\ncontent_sharing_policy = "sometimes"\n' });
    const res = await d.ctr(['plugins', 'ls']);
    expect(res.stdout).toMatch(/io\.containerd\.metadata\.v1\s+bolt\s+-\s+error/);
    expect(res.stdout).toMatch(/io\.containerd\.service\.v1\s+namespaces-service\s+-\s+skip/);
    expect(res.stdout).toMatch(/io\.containerd\.grpc\.v1\s+namespaces\s+-\s+skip/);
    expect(res.stdout).toMatch(/io\.containerd\.grpc\.v1\s+version\s+-\s+ok/);
    const bolt = (await d.client(introspection.IntrospectionService).plugins({ filters: ['id==bolt'] })).plugins[0];
    expect(bolt.initErr?.message).toBe('content_sharing_policy must be "shared" or "isolated", not "sometimes": invalid argument');
    expect(d.output).toMatch(/level=warn msg="plugin io.containerd.metadata.v1.bolt failed"/);
    expect((await d.client(version.VersionService).version({})).version).not.toBe('');
  });

  it('exits non-zero naming a required plugin that did not load', async () => {
    const d = await start({
      expectExit: true,
      config: 'required_plugins = ["io.containerd.metadata.v1.bolt"]\n[plugins."io.containerd.metadata.v1.bolt"]\ncontent_sharing_policy = 1\n',
    });
    expect(await d.waitExit()).toBe(1);
    expect(d.output).toContain('required plugins did not load: io.containerd.metadata.v1.bolt (error:');
    expect(existsSync(d.address)).toBe(false);
  });
});
