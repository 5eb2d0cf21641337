import { createHash } from 'node:crypto';
import { posix } from 'node:path';
import type { Writable } from 'node:stream';
import { createGzip } from 'node:zlib';
import type { Context } from '@berth/context';
import type { ContentStore } from '@berth/content';
import { TarSink, TarType, TarWriter, detectCompression, readTar } from '@berth/diff';
import { DataLossError, InvalidArgumentError, NotFoundError, isAlreadyExists, isNotFound } from '@berth/errdefs';
import type { Descriptor, ImageInput } from '@berth/metadata';
import {
  ANNOTATION_IMAGE_NAME,
  ANNOTATION_REF_NAME,
  LABEL_DISTRIBUTION_SOURCE,
  LABEL_UNCOMPRESSED,
  MediaType,
  isIndexType,
  isManifestType,
  isNonDistributable,
} from './media-types';
import { Platform, PlatformMatcher, allPlatforms, normalizePlatform } from './platforms';
import { OciDescriptor, OciIndex, OciManifest, readJson, walkImage } from './walk';

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

/**
 * Names an image from a reference name under an import prefix, as containerd's archive reference
 * translators do: a bare tag becomes `<prefix>:<tag>`; a full name (one with `/`, `:` or `@`) is
 * kept, unless `checkPrefix` is set and it is not `prefix` itself or under it (then ''). An empty
 * prefix names nothing.
 */
export function prefixRef(ref: string, prefix: string, checkPrefix: boolean): string {
  if (prefix === '') return '';
  if (/[/:@]/.test(ref)) return checkPrefix && !isImagePrefix(ref, prefix) ? '' : ref;
  return `${prefix}:${ref}`;
}

/** An image's name from index annotations as ctr reads it: the containerd name, else the ref name under `baseName`. */
export function imageNameOf(annotations: Record<string, string> | undefined, baseName: string): string {
  const full = annotations?.[ANNOTATION_IMAGE_NAME];
  if (full) return full;
  const ref = annotations?.[ANNOTATION_REF_NAME];
  if (!ref) return '';
  return prefixRef(ref, baseName, true);
}

/**
 * The `org.opencontainers.image.ref.name` containerd writes for a full image name: what follows
 * the repository (`docker.io/library/busybox:1.36` -> `1.36`, `x.io/a:1@sha256:..` ->
 * `1@sha256:..`, `x.io/a@sha256:..` -> `@sha256:..`). A name without a `/` has no repository
 * part ('') unless it does not even parse as a host (`busybox:latest`), which is kept whole.
 */
export function ociReferenceName(name: string): string {
  if (name.includes('://')) return name;
  const slash = name.indexOf('/');
  if (slash < 0) {
    // The whole name is a host[:port]: a port that is not a number makes it unparseable.
    const colon = name.lastIndexOf(':');
    return colon >= 0 && !/^\d*$/.test(name.slice(colon + 1)) ? name : '';
  }
  const path = name.slice(slash);
  const at = path.search(/[:@]/);
  if (at < 0) return '';
  const object = path.slice(at);
  return object.startsWith(':') ? object.slice(1) : object;
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

/** Largest `oci-layout` or `manifest.json` read from an archive. */
const MAX_ARCHIVE_JSON = 20 << 20;

/** Options of {@link importIndex}. */
export interface ImportIndexOptions {
  /** Where the archive's blobs go. */
  content: ContentStore;
  /**
   * Compress the uncompressed layers of a `docker save` archive with gzip (ctr's
   * `--compress-blobs`); the gzip blob is labelled `containerd.io/uncompressed` with the tar's digest.
   */
  compress?: boolean;
}

type Member = { digest: string; size: number };

function parseArchiveJson<T>(data: Buffer, what: string): T {
  try {
    return JSON.parse(data.toString('utf8')) as T;
  } catch (err) {
    throw new InvalidArgumentError(`${what}: ${(err as Error).message}`, { cause: err });
  }
}

/**
 * Reads an OCI-layout or `docker save` tar into the content store and returns the descriptor of
 * its index, as containerd's archive importer does: every regular member becomes a blob (ingest
 * ref `tar-<path>`), except `oci-layout` and `manifest.json`, which are read. An OCI layout's
 * `index.json` is the index. A docker archive gets a Docker schema 2 manifest per entry of
 * `manifest.json` (layer media types from their first bytes; a compressed copy of a layer made by
 * an earlier import is used in its place) and an OCI index listing each manifest once per
 * RepoTag, annotated with the normalized name (`io.containerd.image.name`) and its tag
 * (`org.opencontainers.image.ref.name`), with the platform of its config. Names nothing and
 * labels nothing: callers walk the index.
 */
export async function importIndex(source: Source, options: ImportIndexOptions): Promise<OciDescriptor> {
  const { content } = options;
  const members = new Map<string, Member>();
  const links = new Map<string, string>();
  let ociLayout: { imageLayoutVersion?: string } | undefined;
  let dockerEntries: DockerManifestEntry[] | undefined;
  for await (const e of readTar(source)) {
    const name = posix.normalize(e.header.name.replace(/^\/+/, '')).replace(/\/$/, '');
    if (e.header.type === TarType.Symlink || e.header.type === TarType.HardLink) {
      links.set(name, e.header.type === TarType.Symlink ? posix.join(posix.dirname(name), e.header.linkname) : posix.normalize(e.header.linkname));
      continue;
    }
    if (e.header.type !== TarType.File && e.header.type !== TarType.Contiguous) continue;
    if (name === 'oci-layout') {
      ociLayout = parseArchiveJson(await e.body.buffer(MAX_ARCHIVE_JSON), `untar oci layout "${e.header.name}"`);
      continue;
    }
    if (name === 'manifest.json') {
      dockerEntries = parseArchiveJson(await e.body.buffer(MAX_ARCHIVE_JSON), `untar manifest "${e.header.name}"`);
      continue;
    }
    members.set(name, await writeStream(content, `tar-${name}`, e.header.size, e.body));
  }
  const member = (path: string, what: string): Member => {
    let p = posix.normalize(path);
    for (let i = 0; i < 16 && !members.has(p) && links.has(p); i++) p = links.get(p)!;
    const m = members.get(p);
    if (!m) throw new NotFoundError(`${what} ${JSON.stringify(path)}`);
    return m;
  };

  if (ociLayout?.imageLayoutVersion) {
    if (ociLayout.imageLayoutVersion !== '1.0.0') throw new InvalidArgumentError(`unsupported OCI version ${ociLayout.imageLayoutVersion}`, { bare: true });
    const index = members.get('index.json');
    if (!index) throw new InvalidArgumentError('missing index.json in OCI layout 1.0.0', { bare: true });
    return { mediaType: MediaType.ociIndex, ...index };
  }
  if (!Array.isArray(dockerEntries)) throw new InvalidArgumentError('unrecognized image format', { bare: true });
  return importDockerManifests(content, dockerEntries, member, options.compress ?? false);
}

/**
 * Imports an OCI-layout or `docker save` tar into the content store, as `ctr images import` 1.6
 * does on the client side: {@link importIndex}, then the gc reference labels down from the index
 * (for `platforms`), then an image created or updated per named manifest. Names come from
 * `io.containerd.image.name`, else `org.opencontainers.image.ref.name` under `baseName`.
 */
export async function importArchive(ctx: Context, source: Source, options: ImportOptions): Promise<ImportResult> {
  const { content } = options;
  const index = await importIndex(source, { content });
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

/** The platform of an image config as containerd records it on a manifest descriptor, in Go's field order. */
function configPlatform(c: Record<string, unknown>): Platform {
  const str = (v: unknown) => (typeof v === 'string' ? v : '');
  let { os, architecture, variant } = { os: str(c.os), architecture: str(c.architecture), variant: str(c.variant) };
  if (os && architecture) ({ os, architecture, variant = '' } = normalizePlatform({ os, architecture, variant }));
  const features = Array.isArray(c['os.features']) && c['os.features'].length > 0 ? (c['os.features'] as string[]) : undefined;
  return JSON.parse(JSON.stringify({ architecture, os, 'os.version': str(c['os.version']) || undefined, 'os.features': features, variant: variant || undefined })) as Platform;
}

/** Builds Docker schema 2 manifests and an index for a `docker save` archive; returns the index. */
async function importDockerManifests(content: ContentStore, entries: DockerManifestEntry[], member: (p: string, what: string) => Member, compress: boolean): Promise<OciDescriptor> {
  const manifests: OciDescriptor[] = [];
  for (const e of entries) {
    const config = { mediaType: MediaType.dockerConfig, ...member(e.Config, 'image config') };
    const layers = await dockerLayers(content, (e.Layers ?? []).map((l) => member(l, 'layer')), compress);
    const body = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.dockerManifest, config, layers }));
    const desc = { mediaType: MediaType.dockerManifest, digest: sha256(body), size: body.length };
    await writeBlob(content, `manifest-${desc.digest}`, body, desc);
    const platform = configPlatform(await readJson<Record<string, unknown>>(content, config));
    if (!e.RepoTags || e.RepoTags.length === 0) manifests.push({ ...desc, platform });
    for (const ref of e.RepoTags ?? []) {
      const { name } = normalizeDockerRef(ref);
      manifests.push({ ...desc, annotations: { [ANNOTATION_IMAGE_NAME]: name, [ANNOTATION_REF_NAME]: ociReferenceName(name) }, platform });
    }
  }
  const body = Buffer.from(JSON.stringify({ schemaVersion: 2, manifests }));
  const desc = { mediaType: MediaType.ociIndex, digest: sha256(body), size: body.length };
  await writeBlob(content, `index-${desc.digest}`, body, desc);
  return desc;
}

/**
 * The layer descriptors of a docker archive entry: a compressed copy already in the store (a
 * blob labelled `containerd.io/uncompressed` = the layer's digest) stands in for the layer;
 * otherwise the media type follows the layer's first bytes, and with `compress` an uncompressed
 * layer is gzipped into a new blob.
 */
async function dockerLayers(content: ContentStore, members: Member[], compress: boolean): Promise<OciDescriptor[]> {
  const wanted = new Set(members.map((m) => m.digest));
  const compressed = new Map<string, Member>();
  if (wanted.size > 0) {
    await content.walk((info) => {
      const u = info.labels?.[LABEL_UNCOMPRESSED];
      if (u && wanted.has(u) && u !== info.digest && !compressed.has(u)) compressed.set(u, { digest: info.digest, size: info.size });
    });
  }
  const out: OciDescriptor[] = [];
  for (const m of members) {
    const b = compressed.get(m.digest) ?? m;
    const mediaType = await dockerLayerType(content, b);
    if (mediaType === MediaType.dockerLayer && compress && b === m) out.push({ mediaType: MediaType.dockerLayerGzip, ...(await gzipBlob(content, m)) });
    else out.push({ mediaType, ...b });
  }
  return out;
}

/** Gzips a blob into a new one labelled with the original's digest as its uncompressed form. */
async function gzipBlob(content: ContentStore, desc: Member): Promise<Member> {
  const ra = await content.readerAt(desc);
  const ref = `compress-blob-${desc.digest.replace(':', '-')}`;
  const w = await content.writer({ ref });
  try {
    if ((await w.status()).offset > 0) await w.truncate(0);
    const gz = createGzip();
    const input = ra.createReadStream();
    input.pipe(gz);
    input.once('error', (err) => gz.destroy(err));
    let size = 0;
    for await (const chunk of gz as AsyncIterable<Buffer>) {
      await w.write(chunk);
      size += chunk.length;
    }
    const digest = await w.digest();
    try {
      await w.commit(size, digest, { [LABEL_UNCOMPRESSED]: desc.digest });
    } catch (err) {
      if (!isAlreadyExists(err)) throw err;
    }
    return { digest, size };
  } finally {
    await w.close().catch(() => undefined);
    await ra.close();
  }
}

function sha256(b: Buffer): string {
  return `sha256:${createHash('sha256').update(b).digest('hex')}`;
}

/** Options of {@link exportArchive}. */
export interface ExportOptions {
  content: ContentStore;
  /**
   * Which manifests of an image index to write, and which one the Docker `manifest.json` entry
   * names (the best ranked); default all. An index with no manifest for them is NotFound `no
   * manifest found for platform`. The index blob itself is always written whole.
   */
  platforms?: PlatformMatcher;
  /** Write the blobs of every manifest of an index, not only those of `platforms` (`--all-platforms`). */
  allPlatforms?: boolean;
  /** Leave out the Docker-compatible `manifest.json`. */
  skipDockerManifest?: boolean;
  /** Leave out the blobs of non-distributable (foreign) layers; they stay referenced. */
  skipNonDistributable?: boolean;
}

type TarRecord = { name: string; dir?: boolean; data?: Buffer; blob?: OciDescriptor; mode?: number };

/**
 * Writes images as an OCI image layout tar, as containerd's archive exporter lays it out:
 * `oci-layout`; `index.json` listing each image's target, annotated with its name
 * (`io.containerd.image.name`), its `org.opencontainers.image.ref.name` and the blob's
 * `containerd.io/distribution.source.*` labels (an image whose root blob is missing is left
 * out); `blobs/<alg>/<hex>` for everything under each target (see {@link ExportOptions} for
 * indexes); and a Docker `manifest.json` with one entry per manifest, naming it by every image
 * that resolves to it. Members are sorted by name; blobs are streamed from the content store.
 */
export async function exportArchive(images: ReadonlyArray<{ name: string; target: OciDescriptor }>, out: Writable | TarSink, options: ExportOptions): Promise<void> {
  const { content } = options;
  const platforms = options.platforms ?? allPlatforms;
  const blobs = new Map<string, OciDescriptor>();
  const addBlob = (d: OciDescriptor) => {
    if (options.skipNonDistributable && isNonDistributable(d.mediaType)) return;
    if (!blobs.has(d.digest)) blobs.set(d.digest, d);
  };
  const manifests: OciDescriptor[] = [];
  const docker = new Map<string, { manifest: OciDescriptor; names: string[] }>();
  const resolvedIndexes = new Map<string, string>();

  for (const img of images) {
    const annotations: Record<string, string> = { ...(img.target.annotations ?? {}), [ANNOTATION_IMAGE_NAME]: img.name, [ANNOTATION_REF_NAME]: ociReferenceName(img.name) };
    try {
      const info = await content.info(img.target.digest);
      for (const [k, v] of Object.entries(info.labels ?? {})) if (k.startsWith(LABEL_DISTRIBUTION_SOURCE)) annotations[k] = v;
    } catch (err) {
      if (!isNotFound(err)) throw err;
      continue;
    }
    const target: OciDescriptor = {
      mediaType: img.target.mediaType,
      digest: img.target.digest,
      size: img.target.size,
      ...(img.target.urls ? { urls: img.target.urls } : {}),
      annotations: sortedKeys(annotations),
      ...(img.target.platform ? { platform: img.target.platform } : {}),
    };
    manifests.push(target);

    if (isManifestType(target.mediaType)) {
      for (const d of await walkImage(content, target, { platforms: allPlatforms })) addBlob(d);
      const entry = docker.get(target.digest) ?? { manifest: target, names: [] };
      entry.names.push(img.name);
      docker.set(target.digest, entry);
    } else if (isIndexType(target.mediaType)) {
      let chosen = resolvedIndexes.get(target.digest);
      if (chosen === undefined) {
        addBlob(target);
        const candidates: OciDescriptor[] = [];
        for (const m of (await readJson<OciIndex>(content, target)).manifests ?? []) {
          const wanted = !m.platform || platforms.match(m.platform);
          if (wanted) candidates.push(m);
          else if (!options.allPlatforms) continue;
          for (const d of await walkImage(content, m, { platforms: allPlatforms })) addBlob(d);
        }
        if (candidates.length === 0) throw new NotFoundError('no manifest found for platform');
        const rank = (d: OciDescriptor) => (d.platform ? platforms.rank(d.platform) : Number.MAX_SAFE_INTEGER);
        const best = candidates.map((d, i) => ({ d, i })).sort((a, b) => rank(a.d) - rank(b.d) || a.i - b.i)[0].d;
        chosen = best.digest;
        resolvedIndexes.set(target.digest, chosen);
        if (!docker.has(chosen)) docker.set(chosen, { manifest: best, names: [] });
      }
      docker.get(chosen)!.names.push(img.name);
    } else {
      throw new InvalidArgumentError('only manifests may be exported');
    }
  }

  const records: TarRecord[] = [
    { name: 'oci-layout', data: Buffer.from(JSON.stringify({ imageLayoutVersion: '1.0.0' })), mode: 0o444 },
    { name: 'index.json', data: Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.ociIndex, manifests })), mode: 0o644 },
  ];
  if (blobs.size > 0) records.push({ name: 'blobs/', dir: true });
  for (const d of blobs.values()) {
    const [alg, hex] = d.digest.split(':');
    records.push({ name: `blobs/${alg}/`, dir: true }, { name: `blobs/${alg}/${hex}`, blob: d, mode: 0o444 });
  }
  if (!options.skipDockerManifest && docker.size > 0) {
    const entries: DockerManifestEntry[] = [];
    for (const { manifest, names } of docker.values()) {
      const m = await readJson<OciManifest>(content, manifest);
      const layers = (m.layers ?? []).map((l) => blobPath(l.digest));
      entries.push({ Config: blobPath(m.config.digest), RepoTags: names.length > 0 ? names.map(dockerRepoTag) : null, Layers: layers.length > 0 ? layers : (null as unknown as string[]) });
    }
    records.push({ name: 'manifest.json', data: Buffer.from(JSON.stringify(entries)), mode: 0o644 });
  }
  records.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const tw = new TarWriter(out as TarSink);
  let last = '';
  for (const r of records) {
    if (r.name === last) continue;
    last = r.name;
    if (r.dir) await tw.add({ name: r.name, type: TarType.Directory, mode: 0o755 });
    else if (r.data) await tw.add({ name: r.name, mode: r.mode, size: r.data.length }, r.data);
    else await tw.add({ name: r.name, mode: r.mode, size: r.blob!.size }, verifiedBlob(content, r.blob!));
  }
  await tw.finish();
}

/** Streams a blob for the archive, failing if its bytes do not hash to its digest. */
async function* verifiedBlob(content: ContentStore, desc: OciDescriptor): AsyncGenerator<Buffer> {
  const ra = await content.readerAt({ digest: desc.digest, size: desc.size });
  try {
    const [alg] = desc.digest.split(':');
    const hash = createHash(alg);
    for await (const chunk of ra.createReadStream(0, desc.size) as AsyncIterable<Buffer>) {
      hash.update(chunk);
      yield chunk;
    }
    const got = `${alg}:${hash.digest('hex')}`;
    if (got !== desc.digest) throw new DataLossError(`unexpected digest ${got} copied`);
  } finally {
    await ra.close();
  }
}

/** A RepoTags entry as Docker writes it: the familiar name, with `:latest` when it has neither tag nor digest. */
function dockerRepoTag(name: string): string {
  const base = name.split('@')[0];
  const tagged = base.lastIndexOf(':') > base.lastIndexOf('/');
  return familiarName(tagged || name.includes('@') ? name : `${name}:latest`);
}

/** The same map with its keys sorted, as Go marshals maps. */
function sortedKeys(m: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(m).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

function blobPath(digest: string): string {
  const [alg, hex] = digest.split(':');
  return `blobs/${alg}/${hex}`;
}
