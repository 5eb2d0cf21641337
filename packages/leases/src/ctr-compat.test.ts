import { leases as api } from '@berth/api';
import { Client, createClient } from '@berth/grpc';
import { callOutcome, CtrResult, ReferenceContainerd, TestDaemon } from '@berth/testing';

/** The stock ctr and a raw gRPC client against berthd and a real containerd 1.6, side by side. */
const D = `sha256:${'a'.repeat(64)}`;

/** Creation times and expiry labels are wall-clock times; generated ids are random. */
const normalizeCtr = (r: CtrResult) => ({
  ...r,
  stdout: r.stdout.replace(/\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ/g, 'T'),
  stderr: r.stderr.replace(/time="[^"]+"/g, 'time="T"'),
});

describe('leases: ctr and the Leases API, berthd against containerd 1.6', () => {
  let berthd: TestDaemon;
  let containerd: ReferenceContainerd;
  let clients: Array<Client<typeof api.LeasesService>>;

  beforeAll(async () => {
    [berthd, containerd] = await Promise.all([TestDaemon.start(), ReferenceContainerd.start()]);
    clients = [berthd.address, containerd.address].map((a) => createClient(api.LeasesService, a, { namespace: 'lns' }));
  });
  afterAll(async () => {
    for (const c of clients ?? []) c.close();
    await Promise.all([berthd?.cleanup(), containerd?.cleanup()]);
  });

  it('answers every request as containerd does, errors included', async () => {
    const res = (type: string, id: string) => ({ type, id });
    const script: Array<[string, (c: Client<typeof api.LeasesService>) => Promise<unknown>]> = [
      ['create', (c) => c.create({ id: 'pl1', labels: { 'containerd.io/gc.expire': 'not a time', x: 'y' } })],
      ['create dup', (c) => c.create({ id: 'pl1', labels: {} })],
      ['create odd id', (c) => c.create({ id: 'Not an identifier!', labels: {} })],
      ['create big label', (c) => c.create({ id: 'pl2', labels: { k: 'v'.repeat(5000) } })],
      ['add content', (c) => c.addResource({ id: 'pl1', resource: res('content', D) })],
      ['add snapshot', (c) => c.addResource({ id: 'pl1', resource: res('snapshots/overlayfs', 'k1') })],
      ['add ingest', (c) => c.addResource({ id: 'pl1', resource: res('ingests', 'ref/x y') })],
      ['add weird', (c) => c.addResource({ id: 'pl1', resource: res('weird', 'a') })],
      ['add no resource', (c) => c.addResource({ id: 'pl1' })],
      ['add bad digest', (c) => c.addResource({ id: 'pl1', resource: res('content', 'xx') })],
      ['add content/x', (c) => c.addResource({ id: 'pl1', resource: res('content/x', D) })],
      ['add snapshots', (c) => c.addResource({ id: 'pl1', resource: res('snapshots', 'k') })],
      ['add snapshots/', (c) => c.addResource({ id: 'pl1', resource: res('snapshots/', 'k') })],
      ['add empty ingest', (c) => c.addResource({ id: 'pl1', resource: res('ingests', '') })],
      ['add to missing', (c) => c.addResource({ id: 'nope', resource: res('weird', 'a') })],
      ['list resources', (c) => c.listResources({ id: 'pl1' })],
      ['list resources missing', (c) => c.listResources({ id: 'nope' })],
      ['delete resource', (c) => c.deleteResource({ id: 'pl1', resource: res('content', D) })],
      ['delete resource again', (c) => c.deleteResource({ id: 'pl1', resource: res('content', D) })],
      ['delete resource weird', (c) => c.deleteResource({ id: 'pl1', resource: res('weird', 'a') })],
      ['delete resource bad digest', (c) => c.deleteResource({ id: 'pl1', resource: res('content', 'xx') })],
      ['delete resource missing lease', (c) => c.deleteResource({ id: 'nope', resource: res('content', D) })],
      ['list resources after', (c) => c.listResources({ id: 'pl1' })],
      ['list', (c) => c.list({ filters: [] })],
      ['list by label', (c) => c.list({ filters: ['labels.x==y'] })],
      ['list by id', (c) => c.list({ filters: ['id==pl2', 'id==nope'] })],
      ['list bad filter', (c) => c.list({ filters: ['id=='] })],
      ['list other namespace', (c) => c.list({ filters: [] }, { namespace: 'other' })],
      ['no namespace', (c) => c.list({ filters: [] }, { namespace: '' })],
      ['delete', (c) => c.delete({ id: 'pl1', sync: false })],
      ['delete again', (c) => c.delete({ id: 'pl1', sync: false })],
      ['delete sync', (c) => c.delete({ id: 'pl2', sync: true })],
      ['list after', (c) => c.list({ filters: [] })],
    ];
    for (const [name, call] of script) {
      const [ours, theirs] = await Promise.all(clients.map((c) => callOutcome(call(c))));
      expect({ name, ...(ours as object) }).toEqual({ name, ...(theirs as object) });
    }
  });

  it('refuses a filter on an unknown field, where containerd lists nothing', async () => {
    const [ours, theirs] = await Promise.all(clients.map((c) => callOutcome(c.list({ filters: ['foo==1'] }))));
    expect(ours).toMatchObject({ code: 3 });
    expect(theirs).toEqual({ ok: { leases: [] } });
  });

  it('generates ids of containerd shape', async () => {
    const ids = await Promise.all(clients.map(async (c) => (await c.create({ id: '', labels: {} })).lease!.id));
    for (const id of ids) expect(id).toMatch(/^\d{1,9}-[A-Za-z0-9_-]{4}$/);
    await Promise.all(clients.map((c, i) => c.delete({ id: ids[i], sync: false })));
  });

  it('prints what containerd prints for ctr leases create, ls and rm', async () => {
    const script: string[][] = [
      ['leases', 'create', '--id', 'l1', 'a=b', 'c'],
      ['leases', 'create', '--id', 'l1'],
      ['leases', 'create', '--id', 'l2', '--expires', '0'],
      ['leases', 'create', '--id', 'l3', '--expires', '1h'],
      ['leases', 'ls'],
      ['leases', 'ls', '-q'],
      ['leases', 'ls', 'id==l2'],
      ['leases', 'ls', 'labels.a==b'],
      ['leases', 'ls', 'id=='],
      ['leases', 'rm', 'l1'],
      ['leases', 'rm', 'l1', 'l3'],
      ['leases', 'rm', '--sync', 'l2', 'l3'],
      ['leases', 'ls'],
    ];
    for (const args of script) {
      const [ours, theirs] = await Promise.all([berthd.ctr(args, { namespace: 'ctrns' }), containerd.ctr(args, { namespace: 'ctrns' })]);
      expect({ args, ...normalizeCtr(ours) }).toEqual({ args, ...normalizeCtr(theirs) });
    }
    const created = await Promise.all([berthd.ctr(['leases', 'create']), containerd.ctr(['leases', 'create'])]);
    for (const r of created) expect(r).toMatchObject({ code: 0, stdout: expect.stringMatching(/^\d{1,9}-[A-Za-z0-9_-]{4}\n$/) });
  });
});
