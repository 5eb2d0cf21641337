import { images as api } from '@berth/api';
import { Client, createClient } from '@berth/grpc';
import { callOutcome, CtrResult, ReferenceContainerd, TestDaemon } from '@berth/testing';

/**
 * The stock ctr and a raw gRPC client against berthd and a real containerd 1.6, side by side.
 * Images are created through the API (pull and import need content and unpack): their targets
 * point at a digest that is not in the content store, and `ctr images ls` reports that the same
 * way on both daemons.
 */
const D1 = `sha256:${'a'.repeat(64)}`;
const D2 = `sha256:${'b'.repeat(64)}`;
const MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const INDEX = 'application/vnd.oci.image.index.v1+json';

const image = (name: string, over: Partial<api.Image> = {}): api.Image => ({
  name,
  labels: {},
  target: { mediaType: MANIFEST, digest: D1, size: 10, annotations: {} },
  ...over,
});

/**
 * ctr's log lines carry the time, and `label` prints a Go map (random order); everything else
 * must match byte for byte.
 */
const normalizeCtr = (args: string[], r: CtrResult) => ({
  ...r,
  stdout: args.includes('label') ? r.stdout.split('\n').map((l) => l.split(',').sort().join(',')).join('\n') : r.stdout,
  stderr: r.stderr.replace(/time="[^"]+"/g, 'time="T"'),
});

describe('images: ctr and the Images API, berthd against containerd 1.6', () => {
  let berthd: TestDaemon;
  let containerd: ReferenceContainerd;
  let clients: Array<Client<typeof api.ImagesService>>;

  beforeAll(async () => {
    [berthd, containerd] = await Promise.all([TestDaemon.start(), ReferenceContainerd.start()]);
    clients = [berthd.address, containerd.address].map((a) => createClient(api.ImagesService, a, { namespace: 'default' }));
  });
  afterAll(async () => {
    for (const c of clients ?? []) c.close();
    await Promise.all([berthd?.cleanup(), containerd?.cleanup()]);
  });

  /** Runs the same call on both daemons and expects the same outcome. */
  const same = async (call: (c: Client<typeof api.ImagesService>) => Promise<unknown>) => {
    const [ours, theirs] = await Promise.all(clients.map((c) => callOutcome(call(c))));
    expect(ours).toEqual(theirs);
    return ours;
  };

  it('answers every request as containerd does, errors included', async () => {
    const script: Array<[string, (c: Client<typeof api.ImagesService>) => Promise<unknown>]> = [
      ['create', (c) => c.create({ image: image('docker.io/library/a:1', { labels: { x: 'y' } }) })],
      ['create index', (c) => c.create({ image: image('b:2', { target: { mediaType: INDEX, digest: D2, size: 20, annotations: { an: '1' } } }) })],
      ['create dup', (c) => c.create({ image: image('b:2') })],
      ['create no name', (c) => c.create({ image: image('') })],
      ['create no image', (c) => c.create({})],
      ['create no target', (c) => c.create({ image: image('n1', { target: undefined }) })],
      ['create bad digest', (c) => c.create({ image: image('n2', { target: { mediaType: MANIFEST, digest: 'xx', size: 1, annotations: {} } }) })],
      ['create short digest', (c) => c.create({ image: image('n3', { target: { mediaType: MANIFEST, digest: 'sha256:abc', size: 1, annotations: {} } }) })],
      ['create md5', (c) => c.create({ image: image('n4', { target: { mediaType: MANIFEST, digest: `md5:${'a'.repeat(32)}`, size: 1, annotations: {} } }) })],
      ['create size 0', (c) => c.create({ image: image('n5', { target: { mediaType: MANIFEST, digest: D1, size: 0, annotations: {} } }) })],
      ['create no media type', (c) => c.create({ image: image('n6', { target: { mediaType: '', digest: D1, size: 1, annotations: {} } }) })],
      ['create big label', (c) => c.create({ image: image('n7', { labels: { k: 'v'.repeat(5000) } }) })],
      ['create odd name', (c) => c.create({ image: image('Not a reference!') })],
      ['get', (c) => c.get({ name: 'b:2' })],
      ['get missing', (c) => c.get({ name: 'nope' })],
      ['update missing', (c) => c.update({ image: image('nope'), updateMask: ['target'] })],
      ['update no name', (c) => c.update({ image: image(''), updateMask: [] })],
      ['update bad path', (c) => c.update({ image: image('b:2'), updateMask: ['name'] })],
      ['update labels.k', (c) => c.update({ image: image('b:2', { labels: { k: 'v', j: 'w' } }), updateMask: ['labels.k'] })],
      ['update labels.k empty', (c) => c.update({ image: image('b:2', { labels: {} }), updateMask: ['labels.k'] })],
      ['update labels', (c) => c.update({ image: image('b:2', { labels: { r: '1', e: '' } }), updateMask: ['labels'] })],
      ['update target', (c) => c.update({ image: image('b:2', { target: { mediaType: MANIFEST, digest: D1, size: 5, annotations: { z: '1' } } }), updateMask: ['target'] })],
      ['update bad target', (c) => c.update({ image: image('b:2', { target: { mediaType: MANIFEST, digest: 'zz', size: 5, annotations: {} } }), updateMask: ['target'] })],
      ['update annotations.x', (c) => c.update({ image: image('b:2', { target: { mediaType: MANIFEST, digest: D1, size: 5, annotations: { x: 'y', q: 'no' } } }), updateMask: ['annotations.x', 'annotations.z'] })],
      ['update annotations', (c) => c.update({ image: image('b:2', { target: { mediaType: MANIFEST, digest: D1, size: 5, annotations: { n: '1' } } }), updateMask: ['annotations'] })],
      ['update empty label key', (c) => c.update({ image: image('b:2', { labels: { '': 'x' } }), updateMask: ['labels.'] })],
      ['update whole', (c) => c.update({ image: image('b:2', { labels: { w: '1' }, target: { mediaType: INDEX, digest: D2, size: 7, annotations: {} } }), updateMask: [] })],
      ['list', (c) => c.list({ filters: [] })],
      ['list empty filter', (c) => c.list({ filters: [''] })],
      ['list by name', (c) => c.list({ filters: ['name==b:2', 'labels.x==y'] })],
      ['list by digest', (c) => c.list({ filters: [`target.digest==${D2}`] })],
      ['list by media type', (c) => c.list({ filters: ['target.mediatype~=manifest'] })],
      ['list by annotation', (c) => c.list({ filters: ['annotations.an'] })],
      ['list bad filter', (c) => c.list({ filters: ['name=='] })],
      ['other namespace', (c) => c.get({ name: 'b:2' }, { namespace: 'other' })],
      ['no namespace', (c) => c.list({ filters: [] }, { namespace: '' })],
      ['delete missing', (c) => c.delete({ name: 'nope', sync: false })],
      ['delete', (c) => c.delete({ name: 'Not a reference!', sync: true })],
      ['list after', (c) => c.list({ filters: [] })],
    ];
    for (const [name, call] of script) {
      const [ours, theirs] = await Promise.all(clients.map((c) => callOutcome(call(c))));
      expect({ name, ...(ours as object) }).toEqual({ name, ...(theirs as object) });
    }
  });

  it('refuses a filter on an unknown field, where containerd lists nothing', async () => {
    const [ours, theirs] = await Promise.all(clients.map((c) => callOutcome(c.list({ filters: ['foo==bar'] }))));
    expect(ours).toMatchObject({ code: 3 });
    expect(theirs).toMatchObject({ ok: { images: [] } });
  });

  it('prints what containerd prints for ctr images ls, label, tag and rm', async () => {
    await same((c) => c.create({ image: image('c:3', { labels: { x: 'y' } }) }));
    const script: string[][] = [
      ['images', 'ls'],
      ['images', 'ls', '-q'],
      ['images', 'ls', 'name==c:3'],
      ['images', 'ls', 'labels.x==y'],
      ['images', 'ls', 'name=='],
      ['images', 'label', 'c:3', 'k=v', 'k2=v2'],
      ['images', 'label', 'c:3', 'k='],
      ['images', 'label', 'nope', 'k=v'],
      ['images', 'label', '-r', 'c:3', 'z=1'],
      ['images', 'label', 'c:3'],
      ['images', 'tag', 'c:3', 'c:4', 'c:5'],
      ['images', 'tag', 'c:3', 'c:4'],
      ['images', 'tag', '--force', 'c:3', 'c:4'],
      ['images', 'tag', 'nope', 'x:1'],
      ['images', 'ls', '-q'],
      ['images', 'rm', 'c:4', 'nope'],
      ['images', 'rm', '--sync', 'c:5'],
      ['images', 'ls'],
      ['-n', 'other', 'images', 'ls', '-q'],
    ];
    for (const args of script) {
      const [ours, theirs] = await Promise.all([berthd.ctr(args), containerd.ctr(args)]);
      expect({ args, ...normalizeCtr(args, ours) }).toEqual({ args, ...normalizeCtr(args, theirs) });
    }
  });

  it('keeps serving after a request over the message size limit', async () => {
    const err = await clients[0].create({ image: image('huge', { labels: { k: 'v'.repeat(17 * 1024 * 1024) } }) }).catch((e) => e);
    expect(err).toBeInstanceOf(Error);
    expect((await clients[0].get({ name: 'c:3' })).image?.name).toBe('c:3');
  });
});
