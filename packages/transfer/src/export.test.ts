import { type Context } from '@berth/context';
import { readTar } from '@berth/diff';
import { GrpcCode, toGrpcStatus } from '@berth/errdefs';
import { type BuiltImage, MT, buildImage, busyboxSpec, multiLayerSpec, writeOciArchive } from '@berth/fixtures';
import { type Platform, exportArchive, hostPlatform, strictPlatformMatcher } from '@berth/images';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportImages } from './export';
import { importImages } from './import';
import { World, clientReceive, clientSend, imageStore, progressLog, streamPair } from './test-helpers';
import type { ExportStreamTarget, ImageReferenceSpec, ImageStoreTarget } from './types';

const HOST = hostPlatform();
const OTHER: Platform = { os: 'linux', architecture: HOST.architecture === 'amd64' ? 'arm64' : 'amd64', ...(HOST.architecture === 'amd64' ? { variant: 'v8' } : {}) };
const MULTI = 'example.com/multi:1';

const exact = (name: string): ImageReferenceSpec => ({ name, isPrefix: false, allowOverwrite: false, addDigest: false, skipNamedDigest: false });
/** ctr 2's `images export OUT IMAGE...` source. */
const ctrExport = (...names: string[]) => imageStore({ extraReferences: names.map(exact) });

/** The members of a tar: name to content (directories map to ''). */
async function members(tar: Buffer): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  for await (const e of readTar([tar])) out.set(e.header.name, await e.body.buffer(64 << 20));
  return out;
}

describe('exportImages over an export stream (ctr 2 playing the client)', () => {
  let world: World;
  let ctx: Context;
  let busybox: BuiltImage;
  let multi: BuiltImage;
  let other: BuiltImage;

  beforeAll(async () => {
    world = await World.open('berth-transfer-export-');
    ctx = await world.ctx('export');
    busybox = await buildImage(busyboxSpec());
    multi = await buildImage(multiLayerSpec());
    const dir = mkdtempSync(join(tmpdir(), 'berth-export-tar-'));
    try {
      await writeOciArchive(join(dir, 'in.tar'), [busybox, multi]);
      const tar = readFileSync(join(dir, 'in.tar'));
      await runImport(ctx, tar, imageStore({ platforms: [HOST], extraReferences: [{ ...exact('import-2024-05-01'), isPrefix: true, allowOverwrite: true }] }));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    // An index with the host's busybox and another platform's image.
    other = await buildImage({ ...busyboxSpec('example.com/other:1'), architecture: OTHER.architecture, variant: OTHER.variant, layers: [{ entries: [] }] });
    for (const [digest, data] of other.blobs) await world.blob(ctx, digest === other.manifest.digest ? MT.ociManifest : 'application/octet-stream', data);
    const index = Buffer.from(JSON.stringify({
      schemaVersion: 2,
      mediaType: MT.ociIndex,
      manifests: [{ ...busybox.manifest, platform: HOST }, { ...other.manifest, platform: OTHER }],
    }));
    const desc = await world.blob(ctx, MT.ociIndex, index);
    await world.images.create(ctx, { name: MULTI, labels: {}, target: { ...desc, annotations: {} } });
  });
  afterAll(async () => {
    await world?.close();
  });

  async function runImport(c: Context, bytes: Buffer, dst: ImageStoreTarget): Promise<void> {
    const { server, client } = streamPair();
    const sending = clientSend(client, bytes);
    try {
      await importImages(c, { kind: 'import-stream', stream: server, mediaType: '', forceCompress: false }, dst, world.services(), () => undefined);
    } finally {
      server.close();
    }
    await sending;
  }

  /** Runs an export with the client receiving; closes the daemon's end afterwards, as the gRPC adapter does. */
  async function runExport(src: ImageStoreTarget, o: Partial<ExportStreamTarget> = {}) {
    const { server, client } = streamPair();
    const log = progressLog();
    const receiving = clientReceive(client);
    let closedByExport: boolean;
    try {
      await exportImages(ctx, src, { kind: 'export-stream', stream: server, platforms: [], allPlatforms: false, skipCompatibilityManifest: false, skipNonDistributable: false, ...o }, world.services(), log.sink);
      closedByExport = server.closed;
    } finally {
      server.close();
    }
    const received = await receiving;
    return { ...received, events: log.events, closedByExport };
  }

  /** What exportArchive writes for the same images and options. */
  async function archiveOf(names: string[], platforms: Platform[] = [HOST], o: { allPlatforms?: boolean } = {}): Promise<Buffer> {
    const images = await Promise.all(names.map((n) => world.images.get(ctx, n)));
    const parts: Buffer[] = [];
    await exportArchive(images, (b) => void parts.push(Buffer.from(b)), { content: world.content.bind(ctx), platforms: strictPlatformMatcher(platforms), allPlatforms: o.allPlatforms });
    return Buffer.concat(parts);
  }

  it('sends exactly the tar exportArchive writes, in credited frames, and leaves closing the stream to the caller', async () => {
    const { data, largestFrame, events, closedByExport } = await runExport(ctrExport(busybox.name, multi.name));
    expect(data.equals(await archiveOf([busybox.name, multi.name]))).toBe(true);
    expect(largestFrame).toBeLessThanOrEqual(32 * 1024);
    expect(events).toEqual([{ event: 'Exporting' }, { event: 'Completed export' }]);
    expect(closedByExport).toBe(false);

    const files = await members(data);
    expect([...files.keys()].filter((n) => !n.startsWith('blobs/sha256/') || n === 'blobs/sha256/')).toEqual(['blobs/', 'blobs/sha256/', 'index.json', 'manifest.json', 'oci-layout']);
    const index = JSON.parse(files.get('index.json')!.toString()) as { manifests: Array<{ digest: string; annotations: Record<string, string> }> };
    expect(index.manifests.map((m) => [m.digest, m.annotations['io.containerd.image.name'], m.annotations['org.opencontainers.image.ref.name']])).toEqual([
      [busybox.manifest.digest, busybox.name, 'berth'],
      [multi.manifest.digest, multi.name, '1'],
    ]);
    const docker = JSON.parse(files.get('manifest.json')!.toString()) as Array<{ Config: string; RepoTags: string[] }>;
    expect(docker.map((d) => [d.Config, d.RepoTags])).toEqual([
      [`blobs/sha256/${busybox.config.digest.slice(7)}`, ['busybox:berth']],
      [`blobs/sha256/${multi.config.digest.slice(7)}`, ['berth/multilayer:1']],
    ]);
  });

  it('writes a tar that imports again with the same images', async () => {
    const { data } = await runExport(ctrExport(busybox.name, multi.name));
    const again = await world.ctx('export-again');
    await runImport(again, data, imageStore({ extraReferences: [{ ...exact('import-2024-05-01'), isPrefix: true, allowOverwrite: true }] }));
    const back = (await world.images.list(again)).map((i) => [i.name, i.target.digest]);
    expect(back).toEqual([
      [multi.name, multi.manifest.digest],
      [busybox.name, busybox.manifest.digest],
    ]);
  });

  it('leaves out manifest.json with skip_compatibility_manifest, and copies distribution sources into index.json', async () => {
    await world.content.update(ctx, { digest: busybox.manifest.digest, labels: { 'containerd.io/distribution.source.docker.io': 'library/busybox' } }, ['labels.containerd.io/distribution.source.docker.io']);
    try {
      const { data } = await runExport(ctrExport(busybox.name), { skipCompatibilityManifest: true });
      const files = await members(data);
      expect(files.has('manifest.json')).toBe(false);
      const index = JSON.parse(files.get('index.json')!.toString()) as { manifests: Array<{ annotations: Record<string, string> }> };
      expect(index.manifests[0].annotations).toEqual({
        'containerd.io/distribution.source.docker.io': 'library/busybox',
        'io.containerd.image.name': busybox.name,
        'org.opencontainers.image.ref.name': 'berth',
      });
    } finally {
      await world.content.update(ctx, { digest: busybox.manifest.digest, labels: {} }, ['labels.containerd.io/distribution.source.docker.io']);
    }
  });

  it('exports the host platform of an index by default, another with platforms, every one with all_platforms', async () => {
    const blobsOf = async (tar: Buffer) => new Set([...(await members(tar)).keys()].filter((n) => /^blobs\/sha256\/[0-9a-f]{64}$/.test(n)).map((n) => `sha256:${n.slice(13)}`));
    const dockerConfig = async (tar: Buffer) => (JSON.parse((await members(tar)).get('manifest.json')!.toString()) as Array<{ Config: string }>)[0].Config;

    const host = await runExport(ctrExport(MULTI));
    expect(host.data.equals(await archiveOf([MULTI]))).toBe(true);
    const hostBlobs = await blobsOf(host.data);
    expect(hostBlobs.has(busybox.layers[0].digest)).toBe(true);
    expect(hostBlobs.has(other.config.digest)).toBe(false);
    expect(await dockerConfig(host.data)).toBe(`blobs/sha256/${busybox.config.digest.slice(7)}`);

    const theirs = await runExport(ctrExport(MULTI), { platforms: [OTHER] });
    expect(theirs.data.equals(await archiveOf([MULTI], [OTHER]))).toBe(true);
    expect((await blobsOf(theirs.data)).has(busybox.layers[0].digest)).toBe(false);
    expect(await dockerConfig(theirs.data)).toBe(`blobs/sha256/${other.config.digest.slice(7)}`);

    const all = await runExport(ctrExport(MULTI), { allPlatforms: true });
    expect(all.data.equals(await archiveOf([MULTI], [HOST], { allPlatforms: true }))).toBe(true);
    const allBlobs = await blobsOf(all.data);
    for (const d of [busybox.config.digest, other.config.digest, other.layers[0].digest]) expect(allBlobs.has(d)).toBe(true);
    expect(await dockerConfig(all.data)).toBe(`blobs/sha256/${busybox.config.digest.slice(7)}`);

    const none = await runExport(ctrExport(MULTI), { platforms: [{ os: 'linux', architecture: 's390x' }] }).catch((e: Error) => e);
    expect(toGrpcStatus(none)).toMatchObject({ code: GrpcCode.NOT_FOUND, details: 'no manifest found for platform: not found' });
  });

  it.each<[string, ImageStoreTarget, number, string]>([
    ['a missing image', ctrExport('docker.io/library/busybox:berth', 'docker.io/library/nope:1'), GrpcCode.NOT_FOUND, 'image "docker.io/library/nope:1": not found'],
    ['a missing name', imageStore({ name: 'nope' }), GrpcCode.NOT_FOUND, 'image "nope": not found'],
    ['a prefix reference', imageStore({ extraReferences: [{ ...exact('docker.io/library'), isPrefix: true }] }), GrpcCode.UNIMPLEMENTED, 'prefix lookup on export not implemented: not implemented'],
  ])('refuses %s before sending anything', async (_what, src, code, details) => {
    const out = await runExport(src).catch((e: Error) => e);
    expect(toGrpcStatus(out)).toMatchObject({ code, details });
  });

  it('exports the source name first, then the extra references', async () => {
    const { data } = await runExport(imageStore({ name: multi.name, extraReferences: [exact(busybox.name)] }));
    const index = JSON.parse((await members(data)).get('index.json')!.toString()) as { manifests: Array<{ digest: string }> };
    expect(index.manifests.map((m) => m.digest)).toEqual([multi.manifest.digest, busybox.manifest.digest]);
  });

  it('fails, without waiting forever, when the client stops reading', async () => {
    const { server, client } = streamPair();
    client.send({ typeUrl: 'containerd.types.transfer.WindowUpdate', value: Buffer.from([8, 0x80, 0x80, 0x04]) }); // 65536
    client.closeSend();
    const dst: ExportStreamTarget = { kind: 'export-stream', stream: server, platforms: [], allPlatforms: false, skipCompatibilityManifest: false, skipNonDistributable: false };
    const err = await exportImages(ctx, ctrExport(busybox.name), dst, world.services(), () => undefined).catch((e: Error) => e);
    server.close();
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toBe('end of stream');
  });
});
