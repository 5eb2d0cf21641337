import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import { type Context } from '@berth/context';
import { GrpcCode, toGrpcStatus } from '@berth/errdefs';
import { type BuiltImage, MT, buildImage, busyboxSpec, multiLayerSpec } from '@berth/fixtures';
import { type OciDescriptor, type Platform, hostPlatform } from '@berth/images';
import { RegistryClient, staticHosts } from '@berth/remotes';
import { TestRegistry, rejectionOf } from '@berth/testing';
import { push } from './push';
import { World, imageStore, progressLog } from './test-helpers';
import type { ProgressEvent, RegistryAccess, RegistrySource } from './types';
import { UploadTracker } from './upload-tracker';

const HOST = hostPlatform();
const OTHER: Platform = { os: 'linux', architecture: HOST.architecture === 'amd64' ? 'arm64' : 'amd64', ...(HOST.architecture === 'amd64' ? { variant: 'v8' } : {}) };
const INDEX = 'example.com/multi:1';

const sha256 = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const registrySource = (reference: string): RegistrySource => ({ kind: 'registry', reference, defaultScheme: 'http', headers: {} });
const plainHttp: RegistryAccess = { hosts: staticHosts({ scheme: 'http' }) };

async function readStream(s: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of s) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

/** The events of one descriptor, by progress name. */
const eventsOf = (events: ProgressEvent[], name: string) => events.filter((e) => e.name === name).map((e) => e.event);

describe('UploadTracker', () => {
  it('reports waiting, uploading on ticks only when the offset grew, then complete or already exists', async () => {
    const events: ProgressEvent[] = [];
    const tracker = new UploadTracker((e) => void events.push(e), 10);
    const layer: OciDescriptor = { mediaType: MT.ociLayerGzip, digest: `sha256:${'a'.repeat(64)}`, size: 100 };
    const config: OciDescriptor = { mediaType: MT.ociConfig, digest: `sha256:${'b'.repeat(64)}`, size: 7 };
    tracker.add(layer, ['manifest-x']);
    tracker.add(config, ['manifest-x']);
    tracker.started(layer.digest);
    tracker.advanced(layer.digest, 40);
    await new Promise((r) => setTimeout(r, 40));
    tracker.advanced(layer.digest, 60);
    tracker.complete(layer.digest);
    tracker.exists(config.digest);
    tracker.stop();
    const name = `layer-${layer.digest}`;
    expect(events.map((e) => [e.event, e.name, e.parents, e.progress, e.total])).toEqual([
      ['waiting', name, ['manifest-x'], 0, 100],
      ['waiting', `config-${config.digest}`, ['manifest-x'], 0, 7],
      ['uploading', name, ['manifest-x'], 40, 100],
      ['complete', name, ['manifest-x'], 100, 100],
      ['already exists', `config-${config.digest}`, undefined, 7, 7],
    ]);
  });
});

describe('push to a registry (docker-registry on loopback)', () => {
  let registry: TestRegistry;
  let world: World;
  let ctx: Context;
  let busybox: BuiltImage;
  let multi: BuiltImage;
  let other: BuiltImage;
  let index: OciDescriptor;
  const clients: RegistryClient[] = [];
  const client = () => {
    const c = new RegistryClient({ hosts: staticHosts({ scheme: 'http' }) });
    clients.push(c);
    return c;
  };

  /** Stores an image's blobs and names its manifest. */
  async function store(img: BuiltImage, name = img.name): Promise<void> {
    for (const [digest, data] of img.blobs) {
      const mt = digest === img.manifest.digest ? img.manifest.mediaType : digest === img.config.digest ? img.config.mediaType : img.layers.find((l) => l.digest === digest)!.mediaType;
      await world.blob(ctx, mt, data);
    }
    await world.images.create(ctx, { name, labels: {}, target: { ...img.manifest, annotations: {} } });
  }

  beforeAll(async () => {
    [registry, world] = await Promise.all([TestRegistry.start(), World.open('berth-transfer-push-')]);
    ctx = await world.ctx('push');
    busybox = await buildImage(busyboxSpec());
    multi = await buildImage(multiLayerSpec());
    other = await buildImage({ ...busyboxSpec('example.com/other:1'), architecture: OTHER.architecture, variant: OTHER.variant, layers: [{ entries: [] }] });
    await store(busybox);
    await store(multi);
    await store(other);
    const body = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MT.ociIndex, manifests: [{ ...busybox.manifest, platform: HOST }, { ...other.manifest, platform: OTHER }] }));
    index = await world.blob(ctx, MT.ociIndex, body);
    await world.images.create(ctx, { name: INDEX, labels: {}, target: { ...index, annotations: {} } });
  });
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.close()));
    await Promise.all([registry?.stop(), world?.close()]);
  });

  /** Fetches every blob of an image back and checks it against what was stored. */
  async function fetchBack(ref: string, img: BuiltImage): Promise<void> {
    const c = client();
    const { descriptor } = await c.resolve(ref);
    expect(descriptor.digest).toBe(img.manifest.digest);
    for (const d of [img.manifest, img.config, ...img.layers]) {
      expect(sha256(await readStream(await c.fetch(ref, d)))).toBe(d.digest);
    }
  }

  it('pushes an image that the registry then serves, with the progress containerd reports', async () => {
    const ref = `${registry.host}/berth/busybox:1`;
    const log = progressLog();
    await push(ctx, imageStore({ name: busybox.name }), registrySource(ref), world.services(), plainHttp, log.sink);
    await fetchBack(ref, busybox);

    const { events } = log;
    const target = { ...busybox.manifest, annotations: {} };
    expect(events[0]).toEqual({ event: `Pushing to OCI Registry (${ref})` });
    expect(events[1]).toEqual({ event: 'pushing content', name: busybox.name, desc: target });
    expect(events[events.length - 2]).toEqual({ event: 'pushed content', name: busybox.name, desc: target });
    expect(events[events.length - 1]).toEqual({ event: `Completed push to OCI Registry (${ref})`, desc: target });
    const manifest = `manifest-${busybox.manifest.digest}`;
    const config = `config-${busybox.config.digest}`;
    const layer = `layer-${busybox.layers[0].digest}`;
    for (const name of [manifest, config, layer]) expect(eventsOf(events, name)).toEqual([...['waiting'], ...eventsOf(events, name).slice(1, -1).map(() => 'uploading'), 'complete']);
    expect(events.find((e) => e.name === manifest)?.parents).toEqual([busybox.name]);
    expect(events.find((e) => e.name === layer && e.event === 'complete')).toMatchObject({ parents: [manifest], progress: busybox.layers[0].size, total: busybox.layers[0].size });
    // The manifest goes up after its blobs.
    const at = (name: string) => events.findIndex((e) => e.name === name && e.event === 'complete');
    expect(at(manifest)).toBeGreaterThan(Math.max(at(config), at(layer)));
  });

  it('skips the blobs the registry has, reporting them as already there', async () => {
    const ref = `${registry.host}/berth/busybox:again`;
    await push(ctx, imageStore({ name: busybox.name }), registrySource(`${registry.host}/berth/busybox:1`), world.services(), plainHttp, () => undefined);
    const log = progressLog();
    await push(ctx, imageStore({ name: busybox.name }), registrySource(ref), world.services(), plainHttp, log.sink);
    for (const d of [busybox.config, busybox.layers[0]]) {
      const name = d === busybox.config ? `config-${d.digest}` : `layer-${d.digest}`;
      expect(eventsOf(log.events, name)).toEqual(['waiting', 'already exists']);
      expect(log.events.find((e) => e.name === name && e.event === 'already exists')?.parents).toBeUndefined();
    }
    await fetchBack(ref, busybox);
  });

  it('mounts blobs from another repository of the registry that the labels name as their source', async () => {
    await push(ctx, imageStore({ name: multi.name }), registrySource(`${registry.host}/berth/multi:1`), world.services(), plainHttp, () => undefined);
    // Only the manifest carries the label: its children inherit it, as in containerd.
    const key = `containerd.io/distribution.source.${registry.host.replace(/:\d+$/, '')}`;
    await world.content.update(ctx, { digest: multi.manifest.digest, labels: { [key]: 'berth/multi' } }, [`labels.${key}`]);
    const ref = `${registry.host}/berth/mounted:1`;
    const log = progressLog();
    await push(ctx, imageStore({ name: multi.name }), registrySource(ref), world.services(), plainHttp, log.sink);
    // A new repository answers 404 for every blob: "already exists" means the mount was granted.
    for (const l of multi.layers) expect(eventsOf(log.events, `layer-${l.digest}`)).toEqual(['waiting', 'already exists']);
    await fetchBack(ref, multi);
  });

  it('pushes an index: every platform by default, children by digest, the tag on the index', async () => {
    const ref = `${registry.host}/berth/multi-arch:1`;
    const log = progressLog();
    await push(ctx, imageStore({ name: INDEX }), registrySource(ref), world.services({ maxConcurrentUploadedLayers: 1 }), plainHttp, log.sink);
    const c = client();
    expect((await c.resolve(ref)).descriptor.digest).toBe(index.digest);
    for (const img of [busybox, other]) {
      const byDigest = `${registry.host}/berth/multi-arch@${img.manifest.digest}`;
      expect((await c.resolve(byDigest)).descriptor.digest).toBe(img.manifest.digest);
      expect(sha256(await readStream(await c.fetch(byDigest, img.layers[0])))).toBe(img.layers[0].digest);
    }
    expect(log.events.find((e) => e.name === `index-${index.digest}`)?.parents).toEqual([INDEX]);
    expect(log.events.find((e) => e.name === `manifest-${other.manifest.digest}`)?.parents).toEqual([`index-${index.digest}`]);
    const at = (name: string) => log.events.findIndex((e) => e.name === name && e.event !== 'waiting');
    expect(at(`index-${index.digest}`)).toBeGreaterThan(Math.max(at(`manifest-${busybox.manifest.digest}`), at(`manifest-${other.manifest.digest}`)));
  });

  it('fails for a missing image before reporting anything', async () => {
    const log = progressLog();
    const err = await rejectionOf(push(ctx, imageStore({ name: 'nope' }), registrySource(`${registry.host}/berth/nope:1`), world.services(), plainHttp, log.sink));
    expect(toGrpcStatus(err)).toMatchObject({ code: GrpcCode.NOT_FOUND, details: 'image "nope": not found' });
    expect(log.events).toEqual([]);
  });

  it('authenticates with basic credentials, and fails without them', async () => {
    const secured = await TestRegistry.start({ auth: { kind: 'basic', username: 'alice', password: 's3cret' } });
    try {
      const ref = `${secured.host}/berth/secret:1`;
      const anonymous = await rejectionOf(push(ctx, imageStore({ name: busybox.name }), registrySource(ref), world.services(), plainHttp, () => undefined));
      expect(anonymous.message).toContain('authentication required');
      const access: RegistryAccess = { hosts: plainHttp.hosts, credentials: async (host) => (host === secured.host ? { username: 'alice', secret: 's3cret' } : undefined) };
      await push(ctx, imageStore({ name: busybox.name }), registrySource(ref), world.services(), access, () => undefined);
      const c = new RegistryClient({ hosts: plainHttp.hosts, credentials: access.credentials });
      try {
        expect((await c.resolve(ref)).descriptor.digest).toBe(busybox.manifest.digest);
      } finally {
        await c.close();
      }
    } finally {
      await secured.stop();
    }
  });
});
