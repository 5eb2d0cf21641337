/*
 * Reading an image from the daemon's content store: the manifest for a platform, its config, the
 * chain IDs of its layers, and unpacking them into a snapshotter (through the Diff service) when
 * the daemon has not done it yet.
 */
import { createHash, randomBytes } from 'node:crypto';
import { content, diff, leases, snapshots, types } from '@berth/api';
import { FailedPreconditionError, NotFoundError, isAlreadyExists, isNotFound } from '@berth/errdefs';
import { type Connection, type Scope, callOptions } from './connection';
import type { ImageRuntimeConfig } from '@berth/oci-spec';

/** An OCI platform. */
export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
}

/** An OCI descriptor. */
export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
  platform?: Platform;
}

/** The platform this process runs on, in OCI terms (`linux/amd64`, `linux/arm64/v8`). */
export function hostPlatform(): Platform {
  const arch = ({ x64: 'amd64', ia32: '386', arm64: 'arm64', arm: 'arm', ppc64: 'ppc64le', s390x: 's390x', riscv64: 'riscv64' } as Record<string, string>)[process.arch] ?? process.arch;
  return { os: process.platform, architecture: arch, ...(arch === 'arm64' ? { variant: 'v8' } : {}) };
}

const matches = (want: Platform, got: Platform | undefined) =>
  got !== undefined && got.os === want.os && got.architecture === want.architecture && (!want.variant || !got.variant || want.variant === got.variant);

const INDEX_TYPES = new Set(['application/vnd.oci.image.index.v1+json', 'application/vnd.docker.distribution.manifest.list.v2+json']);

/** An image as a runnable whole: manifest, config, layers and their chain IDs. */
export interface ResolvedImage {
  manifest: Descriptor;
  config: Descriptor;
  layers: Descriptor[];
  /** The image config's `config` section (entrypoint, cmd, env, user...). */
  runtime: ImageRuntimeConfig;
  diffIds: string[];
  /** Chain IDs, one per layer; the last names the image's top snapshot. */
  chainIds: string[];
}

/** Chain IDs of a list of diff IDs, as the OCI image spec defines them. */
export function chainIds(diffIds: readonly string[]): string[] {
  const out: string[] = [];
  for (const d of diffIds) out.push(out.length === 0 ? d : `sha256:${createHash('sha256').update(`${out[out.length - 1]} ${d}`).digest('hex')}`);
  return out;
}

/** Reads a whole (small) blob, such as a manifest or config. */
export async function readBlob(conn: Connection, scope: Scope, digest: string): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const r of conn.service(content.ContentService).read({ digest, offset: 0, size: 0 }, callOptions(scope))) parts.push(r.data);
  return Buffer.concat(parts);
}

/** Resolves an image's target (index or manifest) to the manifest for `platform` and reads its config. */
export async function resolveImage(conn: Connection, scope: Scope, target: Descriptor, platform: Platform = hostPlatform()): Promise<ResolvedImage> {
  let manifest = target;
  let doc = JSON.parse((await readBlob(conn, scope, target.digest)).toString('utf8'));
  for (let depth = 0; INDEX_TYPES.has(manifest.mediaType) || Array.isArray(doc.manifests); depth++) {
    const found = (doc.manifests as Descriptor[]).find((m) => matches(platform, m.platform));
    if (!found || depth > 4) throw new NotFoundError(`no manifest for ${platform.os}/${platform.architecture} in image index ${target.digest}`);
    manifest = found;
    doc = JSON.parse((await readBlob(conn, scope, found.digest)).toString('utf8'));
  }
  const config: Descriptor = doc.config;
  const layers: Descriptor[] = doc.layers ?? [];
  const configDoc = JSON.parse((await readBlob(conn, scope, config.digest)).toString('utf8'));
  const diffIds: string[] = configDoc.rootfs?.diff_ids ?? [];
  if (diffIds.length !== layers.length) throw new FailedPreconditionError(`image config ${config.digest} lists ${diffIds.length} diff IDs for ${layers.length} layers`);
  return { manifest, config, layers, runtime: configDoc.config ?? {}, diffIds, chainIds: chainIds(diffIds) };
}

/**
 * Makes sure the image's layers are unpacked in `snapshotter`: for each missing chain ID,
 * prepares a snapshot on its parent, applies the layer through the Diff service and commits it
 * under the chain ID, all under a short lease; then labels the config blob with the top
 * snapshot (`containerd.io/gc.ref.snapshot.<snapshotter>`) so that the image keeps it, as
 * containerd's unpacker does. Returns whether anything was unpacked.
 */
export async function ensureUnpacked(conn: Connection, scope: Scope, image: ResolvedImage, snapshotter: string): Promise<boolean> {
  const snaps = conn.service(snapshots.SnapshotsService);
  const exists = async (key: string) =>
    snaps.stat({ snapshotter, key }, callOptions(scope)).then(
      () => true,
      (err) => {
        if (isNotFound(err)) return false;
        throw err;
      },
    );
  const top = image.chainIds[image.chainIds.length - 1];
  if (top === undefined || (await exists(top))) return false;
  return withTemporaryLease(conn, scope, async (leased) => {
    let parent = '';
    for (let i = 0; i < image.layers.length; i++) {
      const chainId = image.chainIds[i];
      if (!(await exists(chainId))) {
        const key = `extract-${Date.now()}-${randomBytes(4).toString('hex')} ${chainId}`;
        const prepared = await snaps.prepare({ snapshotter, key, parent, labels: { 'containerd.io/snapshot.ref': chainId } }, callOptions(leased));
        try {
          const layer = image.layers[i];
          const applied = await conn.service(diff.DiffService).apply({ diff: types.Descriptor.fromPartial({ mediaType: layer.mediaType, digest: layer.digest, size: layer.size }), mounts: prepared.mounts, payloads: {} }, callOptions(leased));
          if (applied.applied && applied.applied.digest !== image.diffIds[i]) throw new FailedPreconditionError(`layer ${layer.digest} unpacked to ${applied.applied.digest}, the config says ${image.diffIds[i]}`);
          await snaps.commit({ snapshotter, name: chainId, key, labels: {} }, callOptions(leased)).catch((err) => {
            if (!isAlreadyExists(err)) throw err;
          });
        } finally {
          await snaps.remove({ snapshotter, key }, callOptions(leased)).catch(() => undefined);
        }
      }
      parent = chainId;
    }
    const cs = conn.service(content.ContentService);
    const info = await cs.info({ digest: image.config.digest }, callOptions(scope));
    const label = `containerd.io/gc.ref.snapshot.${snapshotter}`;
    await cs.update({ info: { ...info.info!, labels: { ...info.info!.labels, [label]: top } }, updateMask: [`labels.${label}`] }, callOptions(scope));
    return true;
  });
}

/**
 * Runs `fn` under the scope's lease, or under a temporary one (expiring after `expireMs`, an
 * hour by default) deleted after:
 * what `fn` makes (snapshots, content) is safe from a garbage collection until something else
 * references it, as containerd's client does with `WithLease`.
 */
export async function withTemporaryLease<T>(conn: Connection, scope: Scope, fn: (leased: Scope) => Promise<T>, expireMs = 3600_000): Promise<T> {
  if (scope.lease) return fn(scope);
  const svc = conn.service(leases.LeasesService);
  const expire = new Date(Date.now() + expireMs).toISOString().replace(/\.\d+Z$/, 'Z');
  const lease = await svc.create({ id: `berth-client-${Date.now()}-${randomBytes(3).toString('hex')}`, labels: { 'containerd.io/gc.expire': expire } }, callOptions(scope));
  try {
    return await fn({ ...scope, lease: lease.lease!.id });
  } finally {
    await svc.delete({ id: lease.lease!.id, sync: false }, callOptions(scope)).catch(() => undefined);
  }
}
