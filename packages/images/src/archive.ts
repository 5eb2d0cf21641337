import { createHash } from 'node:crypto';
import { posix } from 'node:path';
import type { Writable } from 'node:stream';
import type { Context } from '@berth/context';
import type { ContentStore } from '@berth/content';
import { TarSink, TarType, TarWriter, detectCompression, readTar } from '@berth/diff';
import { InvalidArgumentError, NotFoundError, isAlreadyExists, isNotFound } from '@berth/errdefs';
import type { Descriptor, ImageInput } from '@berth/metadata';
import { ANNOTATION_IMAGE_NAME, ANNOTATION_REF_NAME, MediaType, isIndexType, isManifestType } from './media-types';
import { Platform, PlatformMatcher, allPlatforms } from './platforms';
import { OciDescriptor, OciIndex, readJson, resolveManifest, walkImage } from './walk';

/** Where imported images are recorded: the images service or an image store (context first). */
export interface ImageWriter {
  create(ctx: Context, image: ImageInput): Promise<unknown>;
  update(ctx: Context, image: ImageInput, fieldpaths?: readonly string[]): Promise<unknown>;
}

/** Options of {@link importArchive}. */
export interface ImportOptions {
  /** Where the archive's blobs go. */
  content: ContentStore;
  /** Where the named images go; without it the images are only returned. */
  images?: ImageWriter;
  /** Which platforms' manifests get gc reference labels; default the host's (`allPlatforms` for all). */
  platforms?: PlatformMatcher;
  /**
   * Names an `org.opencontainers.image.ref.name` that is a bare tag: `<baseName>:<tag>`; refs
   * that are full names are kept only when they start with it. Default `import-YYYY-MM-DD`, as ctr.
   */
  baseName?: string;
}

/** What {@link importArchive} returns: the archive's index, and the named images in it. */
export interface ImportResult {
  index: OciDescriptor;
  images: Array<{ name: string; target: OciDescriptor }>;
}

type Source = AsyncIterable<Uint8Array> | Iterable<Uint8Array>;

/** Writes one stream into the content store under `ref`; returns its descriptor. */
async function writeStream(content: ContentStore, ref: string, total: number, body: AsyncIterable<Uint8Array>): Promise<{ digest: string; size: number }> {
  const w = await content.writer({ ref, total });
  try {
    if ((await w.status()).offset > 0) await w.truncate(0);
    let size = 0;
    for await (const chunk of body) {
      await w.write(chunk);
      size += chunk.length;
    }
    const digest = await w.digest();
    try {
      await w.commit(size, digest);
    } catch (err) {
      if (!isAlreadyExists(err)) throw err;
    }
    return { digest, size };
  } finally {
    await w.close().catch(() => undefined);
  }
}

/** Writes a small blob; a blob that exists already is fine. */
export async function writeBlob(content: ContentStore, ref: string, data: Buffer, desc: OciDescriptor): Promise<void> {
  let w;
  try {
    w = await content.writer({ ref, total: data.length, expected: desc.digest });
  } catch (err) {
    if (isAlreadyExists(err)) return;
    throw err;
  }
  try {
    if ((await w.status()).offset > 0) await w.truncate(0);
    await w.write(data);
    await w.commit(data.length, desc.digest);
  } catch (err) {
    if (!isAlreadyExists(err)) throw err;
  } finally {
    await w.close().catch(() => undefined);
  }
}

/** `busybox:1` -> `docker.io/library/busybox:1` (tag `latest` when none), as Docker normalizes names. */
export function normalizeDockerRef(ref: string): { name: string; tag: string } {
  let name = ref;
  let tag = '';
  const at = name.indexOf('@');
  if (at >= 0) name = name.slice(0, at);
  const slash = name.lastIndexOf('/');
  const colon = name.lastIndexOf(':');
  if (colon > slash) {
    tag = name.slice(colon + 1);
    name = name.slice(0, colon);
  }
  const first = name.split('/')[0];
  const hasDomain = name.includes('/') && (first.includes('.') || first.includes(':') || first === 'localhost' || first !== first.toLowerCase());
  if (!hasDomain) name = `docker.io/${name}`;
  if (/^docker\.io\/[^/]+$/.test(name)) name = `docker.io/library/${name.slice('docker.io/'.length)}`;
  if (!tag) tag = 'latest';
  return { name: `${name}:${tag}`, tag };
}

/** The short name `docker save` writes in RepoTags (`docker.io/library/x:t` -> `x:t`). */
export function familiarName(name: string): string {
  return name.replace(/^docker\.io\/library\//, '').replace(/^docker\.io\//, '');
}

function isImagePrefix(s: string, prefix: string): boolean {
  if (!s.startsWith(prefix)) return false;
  const c = s[prefix.length];
  return c === undefined || c === ':' || c === '@' || c === '/';
}

/** An image's name from index annotations as ctr reads it: the containerd name, else the ref name under `baseName`. */
export function imageNameOf(annotations: Record<string, string> | undefined, baseName: string): string {
  const full = annotations?.[ANNOTATION_IMAGE_NAME];
  if (full) return full;
  const ref = annotations?.[ANNOTATION_REF_NAME];
  if (!ref) return '';
  if (/[/:@]/.test(ref)) return isImagePrefix(ref, baseName) ? ref : '';
  return `${baseName}:${ref}`;
}

/** Media type of a `docker save` layer, from its first bytes. */
async function dockerLayerType(content: ContentStore, desc: { digest: string; size: number }): Promise<string> {
  const ra = await content.readerAt(desc);
  try {
    const head = Buffer.alloc(Math.min(512, ra.size));
    await ra.readAt(head, 0);
    const c = detectCompression(head);
    return c === 'gzip' ? MediaType.dockerLayerGzip : c === 'zstd' ? MediaType.dockerLayerZstd : MediaType.dockerLayer;
  } finally {
    await ra.close();
  }
}

interface DockerManifestEntry {
  Config: string;
  RepoTags?: string[] | null;
  Layers: string[];
}

/**
 * Imports an OCI-layout or `docker save` tar into the content store, as `ctr images import`
 * does: every member is written as a blob (ingest ref `tar-<path>`); an OCI layout's
 * `index.json` is the index; a docker archive gets Docker schema 2 manifests built from
 * `manifest.json` and an index naming them by RepoTags. Sets the gc reference labels down from
 * the index (for `platforms`) and creates or updates an image per named manifest. Names come from
 * `io.containerd.image.name`, else `org.opencontainers.image.ref.name` under `baseName`.
 */
export async function importArchive(ctx: Context, source: Source, options: ImportOptions): Promise<ImportResult> {
  const { content } = options;
  const members = new Map<string, { digest: string; size: number }>();
  const symlinks = new Map<string, string>();
  let ociLayout: { imageLayoutVersion?: string } | undefined;
  for await (const e of readTar(source)) {
    const name = posix.normalize(e.header.name.replace(/^\/+/, '')).replace(/\/$/, '');
    if (e.header.type === TarType.Symlink || e.header.type === TarType.HardLink) {
      symlinks.set(name, e.header.type === TarType.Symlink ? posix.join(posix.dirname(name), e.header.linkname) : posix.normalize(e.header.linkname));
      continue;
    }
    if (e.header.type !== TarType.File && e.header.type !== TarType.Contiguous) continue;
    if (name === 'oci-layout') {
      ociLayout = JSON.parse((await e.body.buffer(1 << 16)).toString('utf8'));
      continue;
    }
    members.set(name, await writeStream(content, `tar-${name}`, e.header.size, e.body));
  }
  const member = (path: string) => {
    let p = posix.normalize(path);
    for (let i = 0; i < 16 && !members.has(p) && symlinks.has(p); i++) p = symlinks.get(p)!;
    const m = members.get(p);
    if (!m) throw new NotFoundError(`archive member ${path}`);
    return m;
  };

  let index: OciDescriptor;
  if (ociLayout && members.has('index.json')) {
    if (ociLayout.imageLayoutVersion !== '1.0.0') throw new InvalidArgumentError(`unsupported OCI version ${ociLayout.imageLayoutVersion}`, { bare: true });
    index = { mediaType: MediaType.ociIndex, ...members.get('index.json')! };
  } else if (members.has('manifest.json')) {
    index = await importDockerManifests(content, member);
  } else {
    throw new InvalidArgumentError('unrecognized image format', { bare: true });
  }

  const idx = await readJson<OciIndex>(content, index);
  const baseName = options.baseName ?? `import-${new Date().toISOString().slice(0, 10)}`;
  const images: ImportResult['images'] = [];
  for (const m of idx.manifests ?? []) {
    const name = imageNameOf(m.annotations, baseName);
    if (name) images.push({ name, target: m });
  }
  await walkImage(content, index, { platforms: options.platforms, setGcLabels: true });
  if (options.images) {
    for (const img of images) {
      const input: ImageInput = { name: img.name, labels: {}, target: toStoreDescriptor(img.target) };
      try {
        await options.images.update(ctx, input, ['target']);
      } catch (err) {
        if (!isNotFound(err)) throw err;
        await options.images.create(ctx, input);
      }
    }
  }
  return { index, images };
}

function toStoreDescriptor(d: OciDescriptor): Descriptor {
  return { mediaType: d.mediaType, digest: d.digest, size: d.size, annotations: { ...(d.annotations ?? {}) } };
}

/** Builds Docker schema 2 manifests and an index for a `docker save` archive; returns the index. */
async function importDockerManifests(content: ContentStore, member: (p: string) => { digest: string; size: number }): Promise<OciDescriptor> {
  const entries = await readJson<DockerManifestEntry[]>(content, { mediaType: 'application/json', ...member('manifest.json') });
  const manifests: OciDescriptor[] = [];
  for (const e of entries) {
    const config = { mediaType: MediaType.dockerConfig, ...member(e.Config) };
    const layers: OciDescriptor[] = [];
    for (const l of e.Layers) {
      const b = member(l);
      layers.push({ mediaType: await dockerLayerType(content, b), ...b });
    }
    const body = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.dockerManifest, config, layers }));
    const desc = { mediaType: MediaType.dockerManifest, digest: sha256(body), size: body.length };
    await writeBlob(content, `manifest-${desc.digest}`, body, desc);
    // The platform comes from the config, in Go's field order (architecture, os, os.version, os.features, variant).
    const c = await readJson<Record<string, unknown>>(content, config);
    const platform = JSON.parse(JSON.stringify({
      architecture: c.architecture ?? '', os: c.os ?? '', 'os.version': c['os.version'] || undefined, 'os.features': c['os.features'] || undefined, variant: c.variant || undefined,
    })) as Platform;
    for (const ref of e.RepoTags ?? []) {
      const { name, tag } = normalizeDockerRef(ref);
      manifests.push({ ...desc, annotations: { [ANNOTATION_IMAGE_NAME]: name, [ANNOTATION_REF_NAME]: tag }, platform });
    }
  }
  const body = Buffer.from(JSON.stringify({ schemaVersion: 2, manifests }));
  const desc = { mediaType: MediaType.ociIndex, digest: sha256(body), size: body.length };
  await writeBlob(content, `index-${desc.digest}`, body, desc);
  return desc;
}

function sha256(b: Buffer): string {
  return `sha256:${createHash('sha256').update(b).digest('hex')}`;
}

/** Options of {@link exportArchive}. */
export interface ExportOptions {
  content: ContentStore;
  /** Which platforms' manifests to include (the index blob is kept whole); default all. */
  platforms?: PlatformMatcher;
  /** Leave out the Docker-compatible `manifest.json`. */
  skipDockerManifest?: boolean;
}

/**
 * Writes images as an OCI image layout tar (`oci-layout`, `index.json` naming each image with
 * `io.containerd.image.name` and `org.opencontainers.image.ref.name`, `blobs/sha256/<hex>`) plus
 * a Docker `manifest.json`, members sorted by name as `ctr images export` writes them. Blobs are
 * streamed from the content store.
 */
export async function exportArchive(images: ReadonlyArray<{ name: string; target: OciDescriptor }>, out: Writable | TarSink, options: ExportOptions): Promise<void> {
  const { content } = options;
  const platforms = options.platforms ?? allPlatforms;
  const blobs = new Map<string, OciDescriptor>();
  const manifests: OciDescriptor[] = [];
  const docker: DockerManifestEntry[] = [];
  for (const img of images) {
    for (const d of await walkImage(content, img.target, { platforms })) blobs.set(d.digest, d);
    const { tag } = refParts(img.name);
    const annotations: Record<string, string> = { ...(img.target.annotations ?? {}), [ANNOTATION_IMAGE_NAME]: img.name };
    if (tag) annotations[ANNOTATION_REF_NAME] = tag;
    manifests.push({ mediaType: img.target.mediaType, digest: img.target.digest, size: img.target.size, annotations, ...(img.target.platform ? { platform: img.target.platform } : {}) });
    if (!options.skipDockerManifest && (isManifestType(img.target.mediaType) || isIndexType(img.target.mediaType))) {
      try {
        const r = await resolveManifest(content, img.target, options.platforms);
        docker.push({ Config: blobPath(r.config.digest), RepoTags: tag ? [familiarName(img.name)] : [], Layers: r.layers.map((l) => blobPath(l.digest)) });
      } catch (err) {
        if (!isNotFound(err)) throw err;
      }
    }
  }
  const records: Array<{ name: string; dir?: boolean; data?: Buffer; blob?: OciDescriptor }> = [
    { name: 'blobs/', dir: true },
    { name: 'oci-layout', data: Buffer.from(JSON.stringify({ imageLayoutVersion: '1.0.0' })) },
    { name: 'index.json', data: Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.ociIndex, manifests })) },
  ];
  for (const d of blobs.values()) {
    const [alg, hex] = d.digest.split(':');
    records.push({ name: `blobs/${alg}/`, dir: true }, { name: `blobs/${alg}/${hex}`, blob: d });
  }
  if (docker.length > 0) records.push({ name: 'manifest.json', data: Buffer.from(JSON.stringify(docker)) });
  records.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const tw = new TarWriter(out as TarSink);
  let last = '';
  for (const r of records) {
    if (r.name === last) continue;
    last = r.name;
    if (r.dir) await tw.add({ name: r.name, type: TarType.Directory, mode: 0o755 });
    else if (r.data) await tw.add({ name: r.name, mode: 0o444, size: r.data.length }, r.data);
    else {
      const ra = await content.readerAt({ digest: r.blob!.digest, size: r.blob!.size });
      try {
        await tw.add({ name: r.name, mode: 0o444, size: ra.size }, ra.createReadStream());
      } finally {
        await ra.close();
      }
    }
  }
  await tw.finish();
}

function blobPath(digest: string): string {
  const [alg, hex] = digest.split(':');
  return `blobs/${alg}/${hex}`;
}

function refParts(name: string): { tag: string } {
  const base = name.split('@')[0];
  const slash = base.lastIndexOf('/');
  const colon = base.lastIndexOf(':');
  return { tag: colon > slash ? base.slice(colon + 1) : '' };
}
