import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { type Context, context } from '@berth/context';
import { TarType, TarWriter } from '@berth/diff';
import { GrpcCode, toGrpcStatus } from '@berth/errdefs';
import { type BuiltImage, MT, buildImage, busyboxSpec, multiLayerSpec, writeDockerArchive, writeOciArchive } from '@berth/fixtures';
import { type Platform, chainIds, hostPlatform, importArchive, snapshotExists } from '@berth/images';
import { importImages } from './import';
import { ANNOTATION_REF_SOURCE, LABEL_GC_BREF_IMAGE, LABEL_GC_EXPIRE, importedImages } from './import-naming';
import { World, clientSend, imageStore, progressLog, streamPair } from './test-helpers';
import type { ImageReferenceSpec, ImageStoreTarget, ProgressEvent } from './types';

const D = `sha256:${'d'.repeat(64)}`;
const HOST = hostPlatform();
const OTHER: Platform = { os: 'linux', architecture: HOST.architecture === 'amd64' ? 'arm64' : 'amd64' };

const prefix = (name: string, o: Partial<ImageReferenceSpec> = {}): ImageReferenceSpec => ({
  name,
  isPrefix: true,
  allowOverwrite: false,
  addDigest: false,
  skipNamedDigest: false,
  ...o,
});
const exact = (name: string, o: Partial<ImageReferenceSpec> = {}) => prefix(name, { isPrefix: false, ...o });

/** ctr 2's `images import` destination: `import-<date>` as an overwritable prefix, or `--base-name`. */
const ctrImport = (o: Partial<ImageStoreTarget> = {}, ref: Partial<ImageReferenceSpec> = {}) =>
  imageStore({ platforms: [HOST], extraReferences: [prefix('import-2024-05-01', { allowOverwrite: true, ...ref })], ...o });

describe('importedImages: the names containerd 2 gives imported descriptors', () => {
  type Kind = 'ref-name' | 'image-name' | 'marked' | 'index';
  const descOf = (kind: Kind, name = '') => {
    const annotations: Record<string, string> = {};
    if (kind !== 'index') annotations[ANNOTATION_REF_SOURCE] = 'annotation';
    if (kind === 'ref-name') annotations['org.opencontainers.image.ref.name'] = name;
    if (kind === 'image-name') annotations['io.containerd.image.name'] = name;
    return { mediaType: MT.ociManifest, digest: D, size: 10, annotations };
  };

  it.each<[string, Kind[], string, Partial<ImageStoreTarget>, string[]]>([
    ['a full name under the prefix', ['ref-name', 'image-name'], 'registry.test/image:latest', { extraReferences: [prefix('registry.test/image')] }, ['registry.test/image:latest']],
    ['any full name when overwriting', ['ref-name', 'image-name'], 'registry.test/image:latest', { extraReferences: [prefix('placeholder', { allowOverwrite: true })] }, ['registry.test/image:latest']],
    ['a bare tag under the prefix', ['ref-name'], 'latest', { extraReferences: [prefix('registry.test/image')] }, ['registry.test/image:latest']],
    ['only the digest when unnamed', ['marked'], '', { extraReferences: [prefix('registry.test/base', { addDigest: true })] }, ['registry.test/base@']],
    ['the name and the digest', ['ref-name'], 'latest', { extraReferences: [prefix('registry.test/base', { addDigest: true })] }, ['registry.test/base:latest', 'registry.test/base@']],
    ['no digest for a named one', ['ref-name'], 'latest', { extraReferences: [prefix('registry.test/base', { addDigest: true, skipNamedDigest: true })] }, ['registry.test/base:latest']],
    ['an overwriting name and the digest', ['ref-name', 'image-name'], 'registry.test/base:latest', { extraReferences: [prefix('base-name', { allowOverwrite: true, addDigest: true })] }, ['registry.test/base:latest', 'base-name@']],
    ['an overwriting name without digest', ['ref-name', 'image-name'], 'registry.test/base:latest', { extraReferences: [prefix('base-name', { allowOverwrite: true, addDigest: true, skipNamedDigest: true })] }, ['registry.test/base:latest']],
    ['nothing for a name outside the prefix', ['ref-name', 'image-name'], 'registry.test/base:latest', { extraReferences: [prefix('registry.test/image')] }, []],
    ['nothing for a partial path match', ['image-name'], 'registry.test/imagex:1', { extraReferences: [prefix('registry.test/image')] }, []],
    ['nothing without references', ['marked', 'index'], '', {}, []],
    ['the index under its name', ['index'], '', { name: 'registry.test/index:latest' }, ['registry.test/index:latest']],
    ['the index name and prefix digest', ['index'], '', { name: 'registry.test/index:latest', extraReferences: [prefix('registry.test/base', { addDigest: true })] }, ['registry.test/index:latest', 'registry.test/base@']],
    ['the index name and an exact reference', ['index'], '', { name: 'registry.test/index:latest', extraReferences: [exact('registry.test/extra:v1')] }, ['registry.test/index:latest', 'registry.test/extra:v1']],
    ['the index digest despite skipNamedDigest', ['index'], '', { name: 'registry.test/index:latest', extraReferences: [prefix('registry.test/base', { addDigest: true, skipNamedDigest: true })] }, ['registry.test/index:latest', 'registry.test/base@']],
    ['an exact reference with the digest', ['index'], '', { extraReferences: [exact('registry.test/extra', { addDigest: true })] }, ['registry.test/extra@']],
  ])('%s', (_what, kinds, annotated, dst, want) => {
    for (const kind of kinds) {
      const got = importedImages(descOf(kind, annotated), { name: '', labels: {}, extraReferences: [], ...dst });
      expect({ kind, names: got.map((i) => i.name) }).toEqual({ kind, names: want.map((n) => (n.endsWith('@') ? n + D : n)) });
      for (const i of got) expect(i.target.annotations).not.toHaveProperty(ANNOTATION_REF_SOURCE);
    }
  });

  it('ties the other images to the named one with a back reference and an immediate expiry', () => {
    const now = new Date('2024-05-01T10:20:30.456Z');
    const got = importedImages(descOf('index'), { name: 'x.io/idx:1', labels: { a: 'b' }, extraReferences: [exact('x.io/extra:1')] }, now);
    expect(got.map((i) => [i.name, i.labels])).toEqual([
      ['x.io/idx:1', { a: 'b' }],
      ['x.io/extra:1', { a: 'b', [LABEL_GC_BREF_IMAGE]: 'x.io/idx:1', [LABEL_GC_EXPIRE]: '2024-05-01T10:20:30Z' }],
    ]);
    const alone = importedImages(descOf('ref-name', '1'), { name: '', labels: { a: 'b' }, extraReferences: [prefix('x.io/app')] }, now);
    expect(alone.map((i) => [i.name, i.labels])).toEqual([['x.io/app:1', { a: 'b' }]]);
  });

  it('refuses an unknown ref source', () => {
    const desc = { mediaType: MT.ociManifest, digest: D, size: 1, annotations: { [ANNOTATION_REF_SOURCE]: 'elsewhere' } };
    expect(() => importedImages(desc, { name: '', labels: {}, extraReferences: [prefix('x')] })).toThrow('ref source not supported: invalid argument');
  });
});

/** A tar file's bytes, written by `write` into a temp dir. */
async function tarBytes(write: (path: string) => Promise<void>): Promise<Buffer> {
  const dir = mkdtempSync(join(tmpdir(), 'berth-import-tar-'));
  try {
    const path = join(dir, 'image.tar');
    await write(path);
    return readFileSync(path);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** An OCI layout tar from blobs and an index (for indexes the fixtures do not write). */
async function ociLayout(blobs: Buffer[], index: unknown): Promise<Buffer> {
  const parts: Buffer[] = [];
  const tw = new TarWriter((b) => void parts.push(Buffer.from(b)));
  await tw.add({ name: 'oci-layout', mode: 0o644, size: 30 }, Buffer.from('{"imageLayoutVersion":"1.0.0"}'));
  const json = Buffer.from(JSON.stringify(index));
  await tw.add({ name: 'index.json', mode: 0o644, size: json.length }, json);
  await tw.add({ name: 'blobs/sha256/', type: TarType.Directory, mode: 0o755 });
  for (const b of blobs) await tw.add({ name: `blobs/sha256/${createHash('sha256').update(b).digest('hex')}`, mode: 0o644, size: b.length }, b);
  await tw.finish();
  return Buffer.concat(parts);
}

describe('importImages over an import stream (ctr 2 playing the client)', () => {
  let world: World;
  let busybox: BuiltImage;
  let multi: BuiltImage;
  let ociTar: Buffer;
  let nsCount = 0;

  beforeAll(async () => {
    world = await World.open('berth-transfer-import-');
    busybox = await buildImage(busyboxSpec());
    multi = await buildImage(multiLayerSpec());
    ociTar = await tarBytes((p) => writeOciArchive(p, [busybox]));
  });
  afterAll(async () => {
    await world?.close();
  });

  /** A fresh namespace (with its lease) per import. */
  const freshCtx = () => world.ctx(`import${++nsCount}`);

  /** Runs an import with the client sending `bytes`; closes the daemon's end afterwards, as the daemon does. */
  async function runImport(ctx: Context, bytes: Buffer, dst: ImageStoreTarget, o: { mediaType?: string; forceCompress?: boolean; settings?: object } = {}) {
    const { server, client } = streamPair();
    const log = progressLog();
    const sending = clientSend(client, bytes);
    try {
      await importImages(ctx, { kind: 'import-stream', stream: server, mediaType: o.mediaType ?? '', forceCompress: o.forceCompress ?? false }, dst, world.services(o.settings), log.sink);
    } finally {
      server.close();
    }
    const sent = await sending;
    return { events: log.events, sent };
  }

  const imageNames = async (ctx: Context) => (await world.images.list(ctx)).map((i) => i.name).sort();
  const labels = async (ctx: Context, digest: string) => (await world.content.info(ctx, digest)).labels;
  const brief = (events: ProgressEvent[]) => events.map((e) => [e.event, e.name ?? '', e.desc?.digest ?? '']);

  it('imports an OCI layout, names the image from its annotation and reports Importing, saved, Completed import', async () => {
    const ctx = await freshCtx();
    const { events, sent } = await runImport(ctx, ociTar, ctrImport());
    expect(sent).toBe(ociTar.length); // the whole tar was taken, and the client could half-close
    expect(brief(events)).toEqual([
      ['Importing', '', ''],
      ['saved', busybox.name, busybox.manifest.digest],
      ['Completed import', '', ''],
    ]);
    expect(events[1].desc).toEqual({ ...busybox.manifest, annotations: { 'io.containerd.image.name': busybox.name, 'org.opencontainers.image.ref.name': 'berth' } });
    const image = await world.images.get(ctx, busybox.name);
    expect(image.target).toEqual({ ...busybox.manifest, annotations: events[1].desc!.annotations });
    expect(image.labels).toEqual({});
    expect(await imageNames(ctx)).toEqual([busybox.name]);
    expect(await labels(ctx, busybox.manifest.digest)).toEqual({
      'containerd.io/gc.ref.content.config': busybox.config.digest,
      'containerd.io/gc.ref.content.l.0': busybox.layers[0].digest,
    });
  });

  it('imports a docker save archive with the manifest and index ctr 1.6 builds for it', async () => {
    const ctx = await freshCtx();
    const tar = await tarBytes((p) => writeDockerArchive(p, [busybox]));
    const { events } = await runImport(ctx, tar, ctrImport());
    const image = await world.images.get(ctx, busybox.name);
    const legacy = await importArchive(context({ namespace: 'legacy-docker' }), [tar], { content: world.content.bind(context({ namespace: 'legacy-docker' })) });
    expect(image.target.digest).toBe(legacy.images[0].target.digest);
    expect(image.target.mediaType).toBe(MT.dockerManifest);
    expect(brief(events).map((e) => e[0])).toEqual(['Importing', 'saved', 'Completed import']);
    expect(events[1].desc?.platform).toEqual({ architecture: 'amd64', os: 'linux' });
  });

  it.each([
    ['gzip', (b: Buffer) => gzipSync(b)],
    ['zstd', (b: Buffer) => execFileSync('zstd', ['-q', '-c'], { input: b, maxBuffer: 1 << 30 })],
  ])('detects and decompresses a %s-compressed archive when the media type is empty', async (_kind, compress) => {
    const ctx = await freshCtx();
    await runImport(ctx, compress(ociTar), ctrImport());
    expect((await world.images.get(ctx, busybox.name)).target.digest).toBe(busybox.manifest.digest);
  });

  it('takes the bytes as a raw tar when a media type is given', async () => {
    const ctx = await freshCtx();
    await runImport(ctx, ociTar, ctrImport(), { mediaType: 'application/x-tar' });
    expect(await imageNames(ctx)).toEqual([busybox.name]);
    await expect(runImport(await freshCtx(), gzipSync(ociTar), ctrImport(), { mediaType: 'application/x-tar' })).rejects.toThrow();
  });

  it('names tag-only images under --base-name, adds --digests references and ties them to --index-name', async () => {
    const ctx = await freshCtx();
    const tar = await tarBytes((p) => writeOciArchive(p, [busybox, multi], { tagsOnly: true }));
    const base = 'example.com/base';
    const dst = imageStore({ name: 'example.com/index:v1', labels: { team: 'a' }, extraReferences: [prefix(base, { addDigest: true })] });
    const { events } = await runImport(ctx, tar, dst);
    const index = events.find((e) => e.name === 'example.com/index:v1')!.desc!;
    expect(index.mediaType).toBe(MT.ociIndex);
    expect(brief(events).slice(1, -1)).toEqual([
      ['saved', 'example.com/index:v1', index.digest],
      ['saved', `${base}@${index.digest}`, index.digest],
      ['saved', `${base}:berth`, busybox.manifest.digest],
      ['saved', `${base}@${busybox.manifest.digest}`, busybox.manifest.digest],
      ['saved', `${base}:1`, multi.manifest.digest],
      ['saved', `${base}@${multi.manifest.digest}`, multi.manifest.digest],
    ]);
    expect((await world.images.get(ctx, 'example.com/index:v1')).labels).toEqual({ team: 'a' });
    const extra = await world.images.get(ctx, `${base}:1`);
    expect(extra.labels).toEqual({ team: 'a', [LABEL_GC_BREF_IMAGE]: 'example.com/index:v1', [LABEL_GC_EXPIRE]: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/) });
    expect(extra.target.annotations).toEqual({ 'org.opencontainers.image.ref.name': '1' });
  });

  it('skips the digest of a named image with skip_named_digest, and names nothing outside the prefix', async () => {
    const ctx = await freshCtx();
    const tar = await tarBytes((p) => writeOciArchive(p, [busybox, multi], { tagsOnly: true }));
    const { events } = await runImport(ctx, tar, imageStore({ extraReferences: [prefix('example.com/base', { addDigest: true, skipNamedDigest: true })] }));
    // The index has no name to skip for: its digest reference stays.
    const index = events.find((e) => e.desc?.mediaType === MT.ociIndex)!.desc!;
    expect(await imageNames(ctx)).toEqual(['example.com/base:1', 'example.com/base:berth', `example.com/base@${index.digest}`]);

    const other = await freshCtx();
    const outside = await runImport(other, ociTar, imageStore({ platforms: [HOST], extraReferences: [prefix('example.com/base')] }));
    expect(brief(outside.events)).toEqual([['Importing', '', ''], ['Completed import', '', '']]);
    expect(await imageNames(other)).toEqual([]);
  });

  it('replaces the target of an image that exists (create, then a full update)', async () => {
    const ctx = await freshCtx();
    await world.images.create(ctx, { name: busybox.name, labels: { old: 'label' }, target: { ...multi.manifest, annotations: {} } });
    await runImport(ctx, ociTar, ctrImport({ labels: { new: 'label' } }));
    const image = await world.images.get(ctx, busybox.name);
    expect(image.target.digest).toBe(busybox.manifest.digest);
    expect(image.labels).toEqual({ new: 'label' });
  });

  it('unpacks for the requested platform into the configured snapshotter, and skips unpacks nothing serves', async () => {
    const ctx = await freshCtx();
    await runImport(ctx, ociTar, ctrImport({ unpacks: [{ platform: HOST, snapshotter: '' }, { platform: HOST, snapshotter: 'overlayfs' }] }));
    const chains = chainIds(busybox.diffIds);
    expect(await snapshotExists(ctx, world.snapshotter, chains[chains.length - 1])).toBe(true);
    expect(await labels(ctx, busybox.config.digest)).toMatchObject({ 'containerd.io/gc.ref.snapshot.native': chains[chains.length - 1] });
    expect(await labels(ctx, busybox.layers[0].digest)).toEqual({ 'containerd.io/uncompressed': busybox.diffIds[0] });

    const none = await freshCtx();
    await runImport(none, ociTar, ctrImport({ unpacks: [{ platform: HOST, snapshotter: 'overlayfs' }] }));
    expect(await snapshotExists(none, world.snapshotter, chains[0])).toBe(false);
  });

  it('labels an index for every manifest but follows only the wanted platforms', async () => {
    const ctx = await freshCtx();
    const other = await buildImage({ ...busyboxSpec('example.com/other:1'), architecture: OTHER.architecture, variant: OTHER.architecture === 'arm64' ? 'v8' : undefined, layers: [{ entries: [] }] });
    const blobs = [...busybox.blobs.values(), ...other.blobs.values()];
    const index = {
      schemaVersion: 2,
      manifests: [
        { ...busybox.manifest, platform: HOST, annotations: { 'org.opencontainers.image.ref.name': 'host' } },
        { ...other.manifest, platform: OTHER, annotations: { 'org.opencontainers.image.ref.name': 'other' } },
      ],
    };
    const tar = await ociLayout(blobs, index);
    const { events } = await runImport(ctx, tar, imageStore({ platforms: [HOST], extraReferences: [prefix('example.com/multi')] }));
    const indexDigest = `sha256:${createHash('sha256').update(JSON.stringify(index)).digest('hex')}`;
    expect(await labels(ctx, indexDigest)).toEqual({
      'containerd.io/gc.ref.content.m.0': busybox.manifest.digest,
      'containerd.io/gc.ref.content.m.1': other.manifest.digest,
    });
    expect(await labels(ctx, busybox.manifest.digest)).toHaveProperty(['containerd.io/gc.ref.content.config'], busybox.config.digest);
    expect(await labels(ctx, other.manifest.digest)).toEqual({});
    // Every top-level manifest is named, whatever its platform, as containerd does.
    expect(events.filter((e) => e.event === 'saved').map((e) => e.name)).toEqual(['example.com/multi:host', 'example.com/multi:other']);
  });

  it('fails when the platforms filter out every manifest, and for a tar that is no image', async () => {
    const tar = await tarBytes((p) => writeDockerArchive(p, [busybox]));
    await expect(runImport(await freshCtx(), tar, ctrImport({ platforms: [OTHER] }))).rejects.toThrow(/^image might be filtered out$/);
    const parts: Buffer[] = [];
    const tw = new TarWriter((b) => void parts.push(Buffer.from(b)));
    await tw.add({ name: 'hello', mode: 0o644, size: 5 }, Buffer.from('hello'));
    await tw.finish();
    const err = await runImport(await freshCtx(), Buffer.concat(parts), ctrImport()).catch((e: Error) => e);
    expect(toGrpcStatus(err)).toMatchObject({ code: GrpcCode.INVALID_ARGUMENT, details: 'unrecognized image format' });
  });

  it('gzips the uncompressed layers of a docker archive with force_compress', async () => {
    const ctx = await freshCtx();
    const plain = await buildImage({ ...busyboxSpec(), layers: [{ ...busyboxSpec().layers[0], compression: 'none' }] });
    const tar = await tarBytes((p) => writeDockerArchive(p, [plain]));
    await runImport(ctx, tar, ctrImport(), { forceCompress: true });
    const image = await world.images.get(ctx, busybox.name);
    const manifest = JSON.parse((await readAll(ctx, image.target.digest)).toString()) as { layers: Array<{ mediaType: string; digest: string }> };
    expect(manifest.layers[0].mediaType).toBe(MT.dockerLayerGzip);
    expect(await labels(ctx, manifest.layers[0].digest)).toMatchObject({ 'containerd.io/uncompressed': plain.diffIds[0] });
  });

  async function readAll(ctx: Context, digest: string): Promise<Buffer> {
    const info = await world.content.info(ctx, digest);
    const ra = await world.content.readerAt(ctx, { digest, size: info.size });
    try {
      const b = Buffer.alloc(info.size);
      await ra.readAt(b, 0);
      return b;
    } finally {
      await ra.close();
    }
  }
});
