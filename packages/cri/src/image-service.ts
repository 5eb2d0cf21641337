import type { ContentStore } from '@berth/content';
import { type Context, withNamespace } from '@berth/context';
import { NotFoundError, UnknownError, errorOfKind, isAlreadyExists, isNotFound, kindOf, wrap } from '@berth/errdefs';
import {
  type Image,
  type ImagesService,
  type OciDescriptor,
  type OciImageConfig,
  type PlatformMatcher,
  chainId,
  hostPlatform,
  platformMatcher,
  readJson,
  resolveManifest,
} from '@berth/images';
import type { Logger } from '@berth/log';
import type { CredentialsProvider } from '@berth/remotes';
import type { Snapshotter } from '@berth/snapshots';
import type { ImageStoreTarget, RegistrySource, Transferrer } from '@berth/transfer';
import { isDigest, parseDockerRef, parsePullReference, repoTagsAndDigests } from './references';

/** The containerd namespace every CRI object lives in. */
export const CRI_NAMESPACE = 'k8s.io';
/** The label of the image records the CRI plugin makes, as containerd's. */
export const CRI_IMAGE_LABEL = 'io.cri-containerd.image';
export const CRI_IMAGE_LABEL_VALUE = 'managed';

/** One image as CRI sees it: every record in the namespace whose config is this one. */
export interface CriImage {
  /** The config digest (`sha256:...`), CRI's image id. */
  id: string;
  /** Names of the image records (id, tags, digests), sorted. */
  references: string[];
  repoTags: string[];
  repoDigests: string[];
  /** Bytes of the blobs the host's platform uses (index, manifest, config, layers), compressed. */
  size: number;
  /** The image config's `USER` as a number, when it is one (the part before `:`). */
  uid?: number;
  /** The config's `USER` when it is not a number. */
  username: string;
  /** The layers' chain id (the snapshot the image unpacks to). */
  chainId: string;
  /** The image config (OCI image spec). */
  spec: OciImageConfig & Record<string, unknown>;
}

/** Credentials from PullImage's AuthConfig (see {@link credentialsFromAuth}). */
export interface PullAuth {
  username: string;
  password: string;
  auth: string;
  serverAddress: string;
  identityToken: string;
  registryToken: string;
}

/** What the CRI image service works with, all of it acting in the namespace `k8s.io`. */
export interface CriImageServiceOptions {
  images: ImagesService;
  /** The content store, bound to a context. */
  content: (ctx: Context) => ContentStore;
  /** The snapshotter images unpack into (`containerd.snapshotter`), and its name. */
  snapshotter: { name: string; snapshotter: Snapshotter };
  transferrer: Transferrer;
  /** hosts.toml root (`registry.config_path`); '' for none. */
  registryConfigPath: string;
  /** Where the snapshotter keeps its files: ImageFsInfo's mountpoint. */
  imageFsPath: string;
  logger: Logger;
  /** Platforms pulled and reported. Default: the host's. */
  platforms?: PlatformMatcher;
}

interface Resolved {
  configDigest: string;
  size: number;
  config: OciImageConfig & Record<string, unknown>;
}

/**
 * The CRI ImageService in domain terms, as containerd 1.6's CRI plugin behaves: images are
 * grouped by config digest (the image id) over every image record of the `k8s.io` namespace, so
 * images made by other clients there show too. Nothing is cached but what content addressing
 * makes immutable (what a target digest resolves to).
 */
export class CriImageService {
  private readonly resolved = new Map<string, Resolved>();
  private readonly platforms: PlatformMatcher;

  constructor(private readonly options: CriImageServiceOptions) {
    this.platforms = options.platforms ?? platformMatcher([hostPlatform()]);
  }

  private ns(ctx: Context): Context {
    return withNamespace(ctx, CRI_NAMESPACE);
  }

  /**
   * Pulls an image by name through the transferrer (hosts.toml from `registry.config_path`,
   * credentials from the request), unpacks it, and records it under three names, each labelled
   * `io.cri-containerd.image=managed`: the image id, the tag (when pulled by tag), and
   * `name@<pulled digest>`. Returns the image id.
   */
  async pull(callCtx: Context, name: string, auth?: PullAuth): Promise<string> {
    const ctx = this.ns(callCtx);
    const ref = parsePullReference(name);
    const reference = ref.toString();
    const labels = { [CRI_IMAGE_LABEL]: CRI_IMAGE_LABEL_VALUE };
    const source: RegistrySource = {
      kind: 'registry',
      reference,
      headers: {},
      ...(this.options.registryConfigPath ? { hostDir: this.options.registryConfigPath } : {}),
      ...(auth ? { credentials: credentialsFromAuth(auth) } : {}),
    };
    const target: ImageStoreTarget = {
      kind: 'image-store',
      name: reference,
      labels,
      platforms: [hostPlatform()],
      allMetadata: false,
      manifestLimit: 1,
      extraReferences: [],
      unpacks: [{ platform: hostPlatform(), snapshotter: this.options.snapshotter.name }],
    };
    try {
      await this.options.transferrer.transfer(ctx, source, target, () => undefined, ['OCIRegistry', 'ImageStore']);
    } catch (err) {
      // containerd 1.6's CRI words a resolve failure `failed to resolve reference "<ref>": ...`
      // (the transfer service, as containerd 2.x's, says `failed to resolve image: ...`).
      const inner = err instanceof Error ? err.message : String(err);
      const resolve = /^failed to resolve image: /.exec(inner);
      const message = resolve ? `failed to resolve reference ${JSON.stringify(reference)}: ${inner.slice(resolve[0].length)}` : inner;
      throw errorOfKind(kindOf(err), `failed to pull and unpack image ${JSON.stringify(reference)}: ${message}`, { cause: err, bare: true });
    }
    const image = await this.options.images.get(ctx, reference);
    const { configDigest } = await this.resolve(ctx, image.target);
    const repoDigest = `${ref.name}@${image.target.digest}`;
    const repoTag = ref.digest === undefined ? reference : '';
    for (const r of [configDigest, repoTag, repoDigest]) {
      if (r !== '') await this.createReference(ctx, r, image.target, labels);
    }
    return configDigest;
  }

  /** Creates (or points at `target`) one image record, as containerd's createImageReference. */
  private async createReference(ctx: Context, name: string, target: Image['target'], labels: Record<string, string>): Promise<void> {
    try {
      await this.options.images.create(ctx, { name, target, labels });
    } catch (err) {
      if (!isAlreadyExists(err)) throw err;
      const old = await this.options.images.get(ctx, name);
      if (old.target.digest === target.digest && old.labels[CRI_IMAGE_LABEL] === labels[CRI_IMAGE_LABEL]) return;
      await this.options.images.update(ctx, { name, target, labels: { ...old.labels, ...labels } }, ['target', `labels.${CRI_IMAGE_LABEL}`]);
    }
  }

  /** What an image target resolves to on this platform (immutable: cached by digest). */
  private async resolve(ctx: Context, target: OciDescriptor): Promise<Resolved> {
    const hit = this.resolved.get(target.digest);
    if (hit) return hit;
    const content = this.options.content(ctx);
    const m = await resolveManifest(content, target, this.platforms);
    const config = await readJson<OciImageConfig & Record<string, unknown>>(content, m.config);
    let size = m.manifest.size + m.config.size + m.layers.reduce((n, l) => n + l.size, 0);
    if (m.manifest.digest !== target.digest) size += target.size;
    const r: Resolved = { configDigest: m.config.digest, size, config };
    this.resolved.set(target.digest, r);
    return r;
  }

  /** Every image of the namespace, grouped by image id; records that do not resolve are left out. */
  async list(callCtx: Context): Promise<CriImage[]> {
    const ctx = this.ns(callCtx);
    const records = await this.options.images.list(ctx);
    const groups = new Map<string, { records: Image[]; resolved: Resolved }>();
    for (const image of records) {
      let resolved: Resolved;
      try {
        resolved = await this.resolve(ctx, image.target);
      } catch (err) {
        // containerd's CRI image store skips what it cannot read, too.
        this.options.logger.debug('image left out of the CRI image list', { image: image.name, error: (err as Error).message });
        continue;
      }
      const g = groups.get(resolved.configDigest);
      if (g) g.records.push(image);
      else groups.set(resolved.configDigest, { records: [image], resolved });
    }
    return [...groups.entries()].map(([id, g]) => toCriImage(id, g.records, g.resolved)).sort((a, b) => a.id.localeCompare(b.id));
  }

  /**
   * Finds an image by id (or a unique id prefix, with or without `sha256:`), by name (normalized:
   * `busybox` is `docker.io/library/busybox:latest`) or by `name@digest`, as containerd's
   * localResolve. NotFound when nothing matches.
   */
  async get(ctx: Context, refOrId: string): Promise<CriImage> {
    const all = await this.list(ctx);
    let id: string | undefined;
    if (isDigest(refOrId)) id = refOrId;
    else {
      try {
        const name = parseDockerRef(refOrId).toString();
        id = all.find((i) => i.references.includes(name))?.id;
      } catch {
        id = undefined;
      }
    }
    const exact = id !== undefined ? all.find((i) => i.id === id) : undefined;
    if (exact) return exact;
    // An id prefix, as containerd's digest set looks one up, in its words. An empty one matches
    // every image: ambiguous, as in containerd 1.6.20 (seen side by side), but never taken as
    // the one image there is, which containerd would.
    const prefix = refOrId.startsWith('sha256:') ? refOrId : `sha256:${refOrId}`;
    if (/^sha256:[a-f0-9]*$/.test(prefix) && id === undefined) {
      const matches = all.filter((i) => i.id.startsWith(prefix));
      if (matches.length > 1) throw new UnknownError('ambiguous digest string', { bare: true });
      if (matches.length === 1 && refOrId !== '') return matches[0];
    }
    throw new NotFoundError(`image ${JSON.stringify(refOrId)}`);
  }

  /** Deletes every record of an image; the last one waits for a garbage collection. Missing: nothing to do. */
  async remove(callCtx: Context, refOrId: string): Promise<void> {
    const ctx = this.ns(callCtx);
    let image: CriImage;
    try {
      image = await this.get(ctx, refOrId);
    } catch (err) {
      if (isNotFound(err)) return;
      throw wrap(err, `can not resolve ${JSON.stringify(refOrId)} locally`);
    }
    for (const [i, ref] of image.references.entries()) {
      try {
        await this.options.images.delete(ctx, ref, { sync: i === image.references.length - 1 });
      } catch (err) {
        if (!isNotFound(err)) throw wrap(err, `failed to delete image reference ${JSON.stringify(ref)} for ${JSON.stringify(image.id)}`);
      }
    }
  }

  /**
   * The image filesystem's usage: the namespace's snapshots in the image snapshotter (sizes and
   * inodes of their own layers), at the snapshotter's directory.
   */
  async fsInfo(callCtx: Context): Promise<{ timestampNs: bigint; mountpoint: string; usedBytes: number; inodesUsed: number }> {
    const ctx = this.ns(callCtx);
    const { snapshotter } = this.options.snapshotter;
    const keys: string[] = [];
    await snapshotter.walk(ctx, (info) => void keys.push(info.name));
    let usedBytes = 0;
    let inodesUsed = 0;
    for (const key of keys) {
      try {
        const u = await snapshotter.usage(ctx, key);
        usedBytes += u.size;
        inodesUsed += u.inodes;
      } catch (err) {
        if (!isNotFound(err)) throw err; // removed meanwhile
      }
    }
    return { timestampNs: BigInt(Date.now()) * 1_000_000n, mountpoint: this.options.imageFsPath, usedBytes, inodesUsed };
  }
}

function toCriImage(id: string, records: Image[], resolved: Resolved): CriImage {
  const references = records.map((r) => r.name).sort();
  const { repoTags, repoDigests } = repoTagsAndDigests(references);
  const user = typeof resolved.config.config?.User === 'string' ? resolved.config.config.User : '';
  const { uid, username } = userOf(user);
  return {
    id,
    references,
    repoTags,
    repoDigests,
    size: resolved.size,
    ...(uid !== undefined ? { uid } : {}),
    username,
    chainId: chainId(resolved.config.rootfs?.diff_ids ?? []),
    spec: resolved.config,
  };
}

/** containerd's getUserFromImage: `USER` before `:`, a uid when it is a number, else a name. */
export function userOf(user: string): { uid?: number; username: string } {
  if (user === '') return { username: '' };
  const name = user.split(':')[0];
  if (/^-?\d+$/.test(name)) {
    const n = Number(name);
    if (Number.isSafeInteger(n)) return { uid: n, username: '' };
  }
  return { username: name };
}

/**
 * The credentials a PullImage AuthConfig gives for a registry host, as containerd's ParseAuth:
 * none when `server_address` names another host; then username and password, or the identity
 * token as password, or base64 `auth` (`user:password`).
 */
export function credentialsFromAuth(auth: PullAuth): CredentialsProvider {
  return async (host) => {
    if (auth.serverAddress !== '') {
      let serverHost = '';
      try {
        serverHost = new URL(auth.serverAddress).host;
      } catch {
        serverHost = '';
      }
      if (serverHost !== host) return undefined;
    }
    if (auth.username !== '') return { username: auth.username, secret: auth.password };
    if (auth.identityToken !== '') return { username: '', secret: auth.identityToken };
    if (auth.auth !== '') {
      const decoded = Buffer.from(auth.auth, 'base64').toString('utf8');
      const colon = decoded.indexOf(':');
      if (colon < 0) throw new UnknownError(`invalid decoded auth: ${JSON.stringify(decoded)}`);
      return { username: decoded.slice(0, colon), secret: decoded.slice(colon + 1).replace(/\0+$/, '') };
    }
    throw new UnknownError('invalid auth config');
  };
}
