import { createHash } from 'node:crypto';
import { readFileSync, readdirSync } from 'node:fs';
import { containers, content, namespaces, version } from '@berth/api';
import { isInvalidArgument, isNotFound } from '@berth/errdefs';
import { EventSubscription, PromFamily, TestDaemon, freePort, rejectionOf, scrapeMetrics, tempDir } from '@berth/testing';


/** The non-zero samples of a family, as `label=value,...` -> value. */
function nonZero(f: PromFamily | undefined): Record<string, number> {
  const out: Record<string, number> = {};
  for (const m of f?.metrics ?? []) {
    const v = Number(m.value ?? m.count);
    if (v === 0) continue;
    const { grpc_service, grpc_method, grpc_code, grpc_type } = m.labels ?? {};
    out[[grpc_type, `${grpc_service}/${grpc_method}`, grpc_code].filter(Boolean).join(' ')] = v;
  }
  return out;
}

const NS = 'containerd.services.namespaces.v1.Namespaces';

describe('[metrics] address: /v1/metrics', () => {
  let d: TestDaemon;
  let address: string;
  beforeAll(async () => {
    address = `127.0.0.1:${await freePort()}`;
    d = await TestDaemon.start({ logLevel: 'info', config: `[metrics]\naddress = "${address}"\ngrpc_histogram = true\n` });
  });
  afterAll(async () => {
    await d?.cleanup();
  });

  it('counts a known workload exactly, by method and code, with go-grpc-prometheus names and labels', async () => {
    const ns = d.client(namespaces.NamespacesService);
    const v = d.client(version.VersionService);
    for (const name of ['m1', 'm2', 'm3']) await ns.create({ namespace: { name, labels: {} } });
    expect(isInvalidArgument(await rejectionOf(ns.create({ namespace: { name: 'bad..name', labels: {} } })))).toBe(true);
    const ctrs = d.client(containers.ContainersService, 'm1');
    for (let i = 0; i < 2; i++) expect(isNotFound(await rejectionOf(ctrs.get({ id: 'missing' })))).toBe(true);
    await ns.list({ filter: '' });
    await v.version({});
    await v.version({});
    const list = d.client(content.ContentService, 'm1');
    for await (const _ of list.list({ filters: [] })) void _;

    const m = await scrapeMetrics(address);
    expect(nonZero(m.get('grpc_server_handled_total'))).toEqual({
      [`unary ${NS}/Create OK`]: 3,
      [`unary ${NS}/Create InvalidArgument`]: 1,
      'unary containerd.services.containers.v1.Containers/Get NotFound': 2,
      [`unary ${NS}/List OK`]: 1,
      'unary containerd.services.version.v1.Version/Version OK': 2,
      'server_stream containerd.services.content.v1.Content/List OK': 1,
    });
    expect(nonZero(m.get('grpc_server_started_total'))).toEqual({
      [`unary ${NS}/Create`]: 4,
      'unary containerd.services.containers.v1.Containers/Get': 2,
      [`unary ${NS}/List`]: 1,
      'unary containerd.services.version.v1.Version/Version': 2,
      'server_stream containerd.services.content.v1.Content/List': 1,
    });
    expect(nonZero(m.get('grpc_server_msg_received_total'))).toEqual({
      [`unary ${NS}/Create`]: 4,
      'unary containerd.services.containers.v1.Containers/Get': 2,
      [`unary ${NS}/List`]: 1,
      'unary containerd.services.version.v1.Version/Version': 2,
      'server_stream containerd.services.content.v1.Content/List': 1,
    });
    // Failed unary calls send no message.
    expect(nonZero(m.get('grpc_server_msg_sent_total'))).toEqual({
      [`unary ${NS}/Create`]: 3,
      [`unary ${NS}/List`]: 1,
      'unary containerd.services.version.v1.Version/Version': 2,
    });
    expect(m.get('grpc_server_handled_total')!.type).toBe('COUNTER');
    // Every method of every service is there from the start, every code at 0.
    const zero = m.get('grpc_server_handled_total')!.metrics.find(
      (s) => s.labels?.grpc_service === 'containerd.services.tasks.v1.Tasks' && s.labels.grpc_method === 'Create' && s.labels.grpc_code === 'Unavailable',
    );
    expect(zero).toMatchObject({ labels: { grpc_type: 'unary' }, value: '0' });
    // grpc_histogram = true: handling times, one observation per handled call.
    const hist = m.get('grpc_server_handling_seconds')!;
    expect(hist.type).toBe('HISTOGRAM');
    expect(nonZero(hist)[`unary ${NS}/Create`]).toBe(4);
  });

  it('reports the process, gc, and content and snapshot totals per namespace', async () => {
    // One blob kept by a gc.root label (an unlabelled one would be collected at once).
    const data = Buffer.from('hello metrics');
    const w = d.client(content.ContentService, 'm2').write();
    const expected = `sha256:${createHash('sha256').update(data).digest('hex')}`;
    w.write({ action: content.WriteAction.COMMIT, ref: 'blob1', total: data.length, expected, offset: 0, data, labels: { 'containerd.io/gc.root': 'x' } });
    w.end();
    for await (const _ of w) void _;
    const m = await scrapeMetrics(address);
    for (const name of ['process_cpu_seconds_total', 'process_resident_memory_bytes', 'process_open_fds', 'nodejs_eventloop_lag_seconds', 'nodejs_eventloop_lag_p99_seconds', 'berth_gc_collections_total', 'berth_gc_duration_seconds']) {
      expect([name, m.has(name)]).toEqual([name, true]);
    }
    const value = (name: string) => Number(m.get(name)!.metrics[0].value);
    const fds = readdirSync(`/proc/${d.pid}/fd`).length;
    expect(Math.abs(value('process_open_fds') - fds)).toBeLessThanOrEqual(5);
    const rss = Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${d.pid}/status`, 'utf8'))![1]) * 1024;
    expect(value('process_resident_memory_bytes') / rss).toBeGreaterThan(0.8);
    expect(value('process_resident_memory_bytes') / rss).toBeLessThan(1.25);
    // No GC observer: it would cost something on every garbage collection.
    expect(m.has('nodejs_gc_duration_seconds')).toBe(false);
    const blobs = m.get('berth_content_blobs')!.metrics.find((s) => s.labels?.namespace === 'm2');
    expect(blobs?.value).toBe('1');
    expect(m.get('berth_content_bytes')!.metrics.find((s) => s.labels?.namespace === 'm2')?.value).toBe(String('hello metrics'.length));
    expect(m.get('berth_snapshots')!.metrics.find((s) => s.labels?.namespace === 'm2' && s.labels.snapshotter === 'overlayfs')?.value).toBe('0');
    // The ingest itself was counted: a client stream of Write messages.
    expect(Number(m.get('grpc_server_msg_received_total')!.metrics.find((s) => s.labels?.grpc_method === 'Write')?.value)).toBeGreaterThan(0);
  });

  it('counts a stream the client cancels as handled with code Canceled, once', async () => {
    const sub = await EventSubscription.open(d.address, ['topic=="/never"']);
    sub.close();
    const subscribe = (m: Map<string, PromFamily>, code: string) =>
      Number(m.get('grpc_server_handled_total')!.metrics.find((s) => s.labels?.grpc_method === 'Subscribe' && s.labels.grpc_code === code)?.value);
    let m = await scrapeMetrics(address);
    for (let i = 0; i < 100 && subscribe(m, 'Canceled') !== 1; i++) {
      await new Promise((r) => setTimeout(r, 20));
      m = await scrapeMetrics(address);
    }
    expect(subscribe(m, 'Canceled')).toBe(1);
    expect(subscribe(m, 'OK')).toBe(0);
    const started = m.get('grpc_server_started_total')!.metrics.find((s) => s.labels?.grpc_method === 'Subscribe');
    expect(started).toMatchObject({ labels: { grpc_type: 'server_stream', grpc_service: 'containerd.services.events.v1.Events' }, value: '1' });
  });

  it("answers Prometheus' text format, and 404 elsewhere", async () => {
    expect((await fetch(`http://${address}/v1/metrics`)).headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    expect((await fetch(`http://${address}/metrics`)).status).toBe(404);
  });
});

describe('[metrics] without grpc_histogram, and bad addresses', () => {
  it('leaves grpc_server_handling_seconds out', async () => {
    const address = `127.0.0.1:${await freePort()}`;
    const d = await TestDaemon.start({ logLevel: 'info', config: `[metrics]\naddress = "${address}"\n` });
    try {
      const m = await scrapeMetrics(address);
      expect(m.has('grpc_server_handled_total')).toBe(true);
      expect(m.has('grpc_server_handling_seconds')).toBe(false);
    } finally {
      await d.cleanup();
    }
  });

  it.each([
    ['not-an-address', /metrics address "not-an-address" must be host:port/],
    ['127.0.0.1:99999', /metrics address "127.0.0.1:99999" must be host:port/],
  ])('refuses [metrics] address = %j with a clear error', async (bad, message) => {
    const dir = tempDir('berth-metrics-bad-');
    const d = await TestDaemon.start({ dir: dir.path, expectExit: true, logLevel: 'info', config: `[metrics]\naddress = "${bad}"\n` });
    try {
      expect(await d.waitExit()).toBe(1);
      expect(d.output).toMatch(message);
    } finally {
      await d.cleanup();
    }
  });
});
