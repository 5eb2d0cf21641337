import { type BuiltImage, buildImage, busyboxSpec, multiLayerSpec } from '@berth/fixtures';
import { GrpcCode, NotFoundError, NotImplementedError, toGrpcStatus } from '@berth/errdefs';
import { ReferenceContainerd, TestRegistry } from '@berth/testing';
import { type BerthClient, type TransferEvent, connect } from './index';
import { TRANSFER_DAEMONS, type Target, seed, seedIndex } from './test-support';

/*
 * Pull and push through the Transfer API, the same cases against berthd and containerd 2.4.2,
 * from and to Debian's docker-registry on loopback (one open, one with basic auth).
 */
describe.each(TRANSFER_DAEMONS)('@berth/client pull and push against %s', (_name, start) => {
  let daemon: Target;
  let client: BerthClient;
  let registry: TestRegistry;
  let secured: TestRegistry;
  let multi: BuiltImage;
  const auth = { username: 'berth', secret: 's3cret' };

  beforeAll(async () => {
    multi = await buildImage(multiLayerSpec());
    registry = await TestRegistry.start();
    secured = await TestRegistry.start({ auth: { kind: 'basic', username: auth.username, password: auth.secret } });
    await seed(registry, 'berth/multi', '1', multi);
    await seed(secured, 'berth/multi', '1', multi, auth);
    daemon = await start();
    client = await connect({ address: daemon.address, namespace: 'client-pull' });
  }, 120_000);

  afterAll(async () => {
    client?.close();
    await daemon?.cleanup();
    await registry?.stop();
    await secured?.stop();
  }, 60_000);

  const collect = async (op: AsyncIterable<TransferEvent> & { done: Promise<void> }) => {
    const events: TransferEvent[] = [];
    for await (const e of op) events.push(e);
    await op.done;
    return events;
  };

  it('pulls a multi-layer image with per-layer progress and totals, saved and unpacked', async () => {
    const ref = `${registry.host}/berth/multi:1`;
    const events = await collect(client.pull(ref, { plainHttp: true }));
    const blobs = events.filter((e): e is Extract<TransferEvent, { type: 'blob' }> => e.type === 'blob');
    // Every layer ends extracted, under its digest; a layer's events never go back.
    for (const layer of multi.layers) {
      const mine = blobs.filter((b) => b.digest === layer.digest);
      expect({ layer: layer.digest, kind: mine[0].kind, last: mine[mine.length - 1].state }).toEqual({ layer: layer.digest, kind: 'layer', last: 'extracted' });
      expect(mine[0]).toMatchObject({ state: 'waiting', total: layer.size, parents: [`manifest-${multi.manifest.digest}`] });
    }
    const last = blobs[blobs.length - 1].totals;
    const sizes = [...multi.layers, multi.config, multi.manifest].reduce((n, d) => n + d.size, 0);
    expect(last).toEqual({ blobs: multi.layers.length + 2, done: multi.layers.length + 2, extracted: multi.layers.length, bytes: sizes, total: sizes });
    expect(events).toEqual(expect.arrayContaining([{ type: 'saved', image: ref, digest: multi.manifest.digest }, expect.objectContaining({ type: 'status', message: `Completed pull from OCI Registry (${ref})` })]));
    expect((await client.images.get(ref)).target.digest).toBe(multi.manifest.digest);
    const committed = (await client.snapshots().list()).filter((s) => s.kind === 'committed');
    expect(committed).toHaveLength(multi.layers.length);
  });

  it('pulls without unpacking', async () => {
    const ref = `${registry.host}/berth/multi:1`;
    const c = client.withNamespace('client-pull-nounpack');
    const events = await collect(c.pull(ref, { plainHttp: true, unpack: false }));
    expect(events.filter((e) => e.type === 'blob' && e.state === 'extracted')).toEqual([]);
    expect((await c.images.get(ref)).target.digest).toBe(multi.manifest.digest);
    expect(await c.snapshots().list()).toEqual([]);
  });

  it('asks the credentials callback when the registry answers 401, and pulls with what it gives', async () => {
    const ref = `${secured.host}/berth/multi:1`;
    const asked: string[] = [];
    const c = client.withNamespace('client-pull-auth');
    await collect(c.pull(ref, { plainHttp: true, unpack: false, credentials: (host, reference) => (asked.push(`${host} ${reference}`), auth) }));
    expect(asked.length).toBeGreaterThan(0);
    expect(asked[0]).toBe(`${secured.host} ${ref}`);
    expect((await c.images.get(ref)).target.digest).toBe(multi.manifest.digest);
    await expect(collect(c.pull(`${secured.host}/berth/multi:1`, { name: 'anon', plainHttp: true, unpack: false }))).rejects.toThrow(/401|unauthorized|authentication required/i);
  });

  it('fails a pull of a missing tag with NotFound, through done and the iterator', async () => {
    const op = client.pull(`${registry.host}/berth/multi:missing`, { plainHttp: true });
    await expect(op.done).rejects.toBeInstanceOf(NotFoundError);
    await expect(collect(op)).rejects.toThrow(`failed to resolve image: ${registry.host}/berth/multi:missing: not found`);
  });

  it('pushes to a registry that wants credentials, with the callback', async () => {
    const dst = `${secured.host}/berth/pushed:${daemon.name.replace(/[^a-z0-9]/g, '')}`;
    const asked: string[] = [];
    await collect(client.push(dst, { source: `${registry.host}/berth/multi:1`, plainHttp: true, credentials: (host) => (asked.push(host), auth) }));
    expect(asked.length).toBeGreaterThan(0);
    const back = client.withNamespace('client-push-auth-check');
    await collect(back.pull(dst, { plainHttp: true, unpack: false, credentials: () => auth }));
    expect((await back.images.get(dst)).target.digest).toBe(multi.manifest.digest);
  });

  it("makes a container from a multi-platform index: the host's manifest, its config and its snapshot", async () => {
    const amd64 = await buildImage({ ...busyboxSpec('index:amd64'), runConfig: { Env: ['ARCH=amd64'], Cmd: ['sh'] } });
    const arm64 = await buildImage({ ...busyboxSpec('index:arm64'), architecture: 'arm64', variant: 'v8', runConfig: { Env: ['ARCH=arm64'], Cmd: ['sh'] } });
    await seedIndex(registry, 'berth/index', '1', [arm64, amd64]);
    const ref = `${registry.host}/berth/index:1`;
    const c = client.withNamespace('client-index');
    await collect(c.pull(ref, { plainHttp: true }));
    const container = await c.containers.create('from-index', ref);
    try {
      const host = process.arch === 'arm64' ? 'arm64' : 'amd64';
      expect(container.spec.process).toMatchObject({ args: ['sh'], env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', `ARCH=${host}`] });
      const parent = (await c.snapshots().stat('from-index')).parent;
      expect(parent).toBe(amd64.diffIds[0]);
    } finally {
      await container.delete();
    }
  });

  it('cancels a pull when its signal aborts', async () => {
    const abort = new AbortController();
    const op = client.withNamespace('client-pull-abort').pull(`${registry.host}/berth/multi:1`, { plainHttp: true, signal: abort.signal });
    abort.abort();
    await expect(op.done).rejects.toThrow(/cancel/i);
  });

  it('pushes an image with progress, and the registry then serves it', async () => {
    const src = `${registry.host}/berth/multi:1`;
    const dst = `${registry.host}/berth/pushed:${daemon.name.replace(/[^a-z0-9]/g, '')}`;
    const events = await collect(client.push(dst, { source: src, plainHttp: true }));
    expect(events).toEqual(expect.arrayContaining([expect.objectContaining({ type: 'status', message: `Completed push to OCI Registry (${dst})` })]));
    const pushed = events.filter((e) => e.type === 'blob' && (e.state === 'complete' || e.state === 'already exists'));
    expect(pushed.length).toBeGreaterThan(0);
    const back = client.withNamespace('client-push-check');
    await collect(back.pull(dst, { plainHttp: true, unpack: false }));
    expect((await back.images.get(dst)).target.digest).toBe(multi.manifest.digest);
  });
});

describe('@berth/client pull against containerd 1.6, which has no Transfer API', () => {
  let daemon: ReferenceContainerd;
  beforeAll(async () => {
    daemon = await ReferenceContainerd.start();
  }, 60_000);
  afterAll(async () => {
    await daemon?.cleanup();
  });

  it('fails with NotImplemented (UNIMPLEMENTED) and ends the progress iterator', async () => {
    const client = await connect({ address: daemon.address });
    try {
      const op = client.pull('127.0.0.1:1/none:1', { plainHttp: true });
      const err = await op.done.catch((e: unknown) => e);
      expect(err).toBeInstanceOf(NotImplementedError);
      expect(toGrpcStatus(err).code).toBe(GrpcCode.UNIMPLEMENTED);
      const events: TransferEvent[] = [];
      await expect(
        (async () => {
          for await (const e of op) events.push(e);
        })(),
      ).rejects.toBeInstanceOf(NotImplementedError);
      expect(events).toEqual([]);
    } finally {
      client.close();
    }
  });
});
