import { statSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { EventSubscription, TestDaemon, tempDir } from '@berth/testing';

/** A GET over the debug socket; resolves with status and body. */
function get(socketPath: string, path: string): Promise<{ status: number; body: string; ms: number }> {
  const t0 = Date.now();
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, path, method: 'GET' }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (b: Buffer) => chunks.push(b));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString(), ms: Date.now() - t0 }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

describe('[debug] address and format = "json"', () => {
  let d: TestDaemon;
  let socket: string;
  beforeAll(async () => {
    const dir = tempDir('berth-debug-').path;
    socket = join(dir, 'debug', 'debug.sock');
    d = await TestDaemon.start({ dir, logLevel: 'debug', config: `[debug]\naddress = ${JSON.stringify(socket)}\nformat = "json"\n` });
  });
  afterAll(async () => {
    await d?.cleanup();
  });

  it('serves /debug/vars: uptime, memory, handles and in-flight gRPC calls, on a 0660 socket', async () => {
    expect(statSync(socket).mode & 0o777).toBe(0o660);
    const idle = JSON.parse((await get(socket, '/debug/vars')).body);
    expect(idle).toMatchObject({ pid: d.pid, grpc_in_flight: 0, handles: { total: expect.any(Number) }, memory: { rss: expect.any(Number), heapUsed: expect.any(Number) } });
    expect(idle.uptime_seconds).toBeGreaterThan(0);
    // An open event subscription is a call in flight until it ends.
    const sub = await EventSubscription.open(d.address, ['topic=="/never"']);
    expect(JSON.parse((await get(socket, '/debug/vars')).body).grpc_in_flight).toBe(1);
    sub.close();
    let after = 1;
    for (let i = 0; i < 100 && after !== 0; i++) {
      after = JSON.parse((await get(socket, '/debug/vars')).body).grpc_in_flight;
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(after).toBe(0);
  });

  it('takes a CPU profile of the seconds asked, and refuses a second one meanwhile', async () => {
    const profile = get(socket, '/debug/pprof/profile?seconds=1');
    await new Promise((r) => setTimeout(r, 200));
    const second = await get(socket, '/debug/pprof/heap');
    expect(second).toMatchObject({ status: 409, body: expect.stringContaining('already being taken') });
    const res = await profile;
    expect(res.status).toBe(200);
    expect(res.ms).toBeGreaterThanOrEqual(1000);
    const p = JSON.parse(res.body);
    expect(p.nodes.length).toBeGreaterThan(0);
    expect(p.endTime - p.startTime).toBeGreaterThanOrEqual(900_000);
  });

  it('writes a heap snapshot', async () => {
    const res = await get(socket, '/debug/pprof/heap');
    expect(res.status).toBe(200);
    const snap = JSON.parse(res.body);
    expect(snap.snapshot.meta.node_fields).toContain('name');
    expect(snap.snapshot.node_count).toBeGreaterThan(1000);
  });

  it.each([
    ['/debug/pprof/profile?seconds=0', 400, 'seconds must be a whole number from 1 to 300, not "0"'],
    ['/debug/pprof/profile?seconds=abc', 400, 'seconds must be a whole number from 1 to 300, not "abc"'],
    ['/debug/nothing', 404, '404 page not found'],
  ])('answers %s with %i', async (path, status, message) => {
    expect(await get(socket, path)).toMatchObject({ status, body: `${message}\n` });
  });

  it('writes JSON log lines; lines from a call carry its method and namespace', async () => {
    expect(await d.ctr(['-n', 'logns', 'namespaces', 'create', 'logged'])).toMatchObject({ code: 0 });
    const lines = d.output.split('\n').filter((l) => l.trim() !== '');
    const parsed = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(parsed.every((l) => typeof l.time === 'string' && typeof l.level === 'string' && typeof l.msg === 'string')).toBe(true);
    expect(parsed).toContainEqual(
      expect.objectContaining({ msg: 'event published', topic: '/namespaces/create', method: '/containerd.services.namespaces.v1.Namespaces/Create', namespace: 'logns' }),
    );
    // Lines from outside any call have no method.
    expect(parsed.find((l) => l.msg === 'serving debug endpoint')).not.toHaveProperty('method');
  });
});

describe('text logs', () => {
  it("carry the method and namespace on the gRPC layer's lines, without the json format's async context", async () => {
    const d = await TestDaemon.start({ logLevel: 'debug' });
    try {
      expect(await d.ctr(['-n', 'textns', 'containers', 'info', 'missing'])).toMatchObject({ code: 1 });
      expect(d.output).toMatch(/level=debug msg="gRPC call failed" type=io\.containerd\.grpc\.v1 id=containers method=\/containerd\.services\.containers\.v1\.Containers\/Get namespace=textns code=5 /);
      // Lines from inside the call (the exchange's) carry no method: that is the json format's.
      expect(d.output).not.toMatch(/msg="event published".* method=/);
    } finally {
      await d.cleanup();
    }
  });
});
