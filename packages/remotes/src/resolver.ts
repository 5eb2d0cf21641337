import { createHash } from 'node:crypto';
import {
  BerthError,
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
  isCanceled,
  isDeadlineExceeded,
} from '@berth/errdefs';
import { repositoryScope } from './auth';
import { MANIFEST_ACCEPT, ManifestMediaType, isSchema1MediaType, type Descriptor } from './descriptor';
import type { RegistryHost, RegistryHosts } from './hosts';
import { ImageReference } from './reference';
import { errorForResponse } from './response-error';
import type { RegistryHttp, RegistryResponse } from './registry-http';

/** Largest manifest the resolver reads when it has to GET one (4 MiB, as containerd allows). */
export const MAX_MANIFEST_SIZE = 4 << 20;

/** What {@link Resolver.resolve} found: the normalized reference and its root descriptor. */
export interface ResolvedReference {
  ref: ImageReference;
  descriptor: Descriptor;
}

/** Content types that say nothing about which manifest a body is; the body is read instead. */
const GENERIC_TYPES = new Set(['', 'application/json', 'text/plain', 'application/octet-stream']);

/** How far a host got, for choosing the error to return when every host fails. */
const Progress = { Transport: 1, NotFound: 2, Status: 3 } as const;
type Progress = (typeof Progress)[keyof typeof Progress];

type Attempt = { descriptor: Descriptor } | { error: Error; progress: Progress };

/**
 * Resolves references to root descriptors over the hosts configured for their registry
 * (containerd's rules): by tag over hosts that can pull and resolve, by digest over hosts that
 * can pull (as `manifests/<d>` first and, when every host answers 404, as `blobs/<d>`). Each host
 * gets a HEAD, and a GET when the HEAD is refused or lacks what a descriptor needs. It moves to
 * the next host after a transport or auth error, a 404 or another status >= 400; a non-redirect
 * 3xx ends the resolve at once. When every host fails, the error is the most advanced one
 * (another status >= 400, then 404, then transport/auth); all 404 is `<ref>: not found`.
 */
export class Resolver {
  constructor(
    private readonly http: RegistryHttp,
    private readonly hosts: RegistryHosts,
  ) {}

  /** Resolves a reference (string or parsed) to its descriptor. */
  async resolve(input: string | ImageReference, options: { signal?: AbortSignal } = {}): Promise<ResolvedReference> {
    const ref = typeof input === 'string' ? ImageReference.parse(input) : input;
    const byDigest = ref.digest !== undefined;
    const hosts = (await this.hosts(ref.registry)).filter(
      (h) => h.capabilities.has('pull') && (byDigest || h.capabilities.has('resolve')),
    );
    if (hosts.length === 0) throw new NotFoundError(`no resolve hosts for ${ref.registry}`);

    let best: { error: Error; progress: Progress } | undefined;
    for (const kind of byDigest ? (['manifests', 'blobs'] as const) : (['manifests'] as const)) {
      best = undefined;
      for (const host of hosts) {
        const attempt = await this.tryHost(host, kind, ref, options.signal);
        if ('descriptor' in attempt) return { ref, descriptor: attempt.descriptor };
        if (!best || attempt.progress > best.progress) best = attempt;
      }
      // Blobs are asked for only when every host said the manifest does not exist.
      if (best && best.progress !== Progress.NotFound) break;
    }
    if (!best || best.progress === Progress.NotFound) throw new NotFoundError(`${ref}`, { cause: best?.error });
    throw best.error;
  }

  private async tryHost(host: RegistryHost, kind: 'manifests' | 'blobs', ref: ImageReference, signal?: AbortSignal): Promise<Attempt> {
    const path = `/${ref.repository}/${kind}/${ref.object}`;
    const headers: Record<string, string> = kind === 'manifests' ? { Accept: MANIFEST_ACCEPT } : {};
    const scopes = [repositoryScope(ref.repository)];
    const context = `resolve ${ref}`;
    for (const method of ['HEAD', 'GET'] as const) {
      let res: RegistryResponse;
      try {
        res = await this.http.request({ host, method, path, headers, scopes, signal });
      } catch (err) {
        if (isCanceled(err) || isDeadlineExceeded(err)) throw err;
        return { error: err as Error, progress: Progress.Transport };
      }
      const failed = await this.judge(host, kind, context, res);
      if (failed) return failed;
      if (method === 'HEAD') {
        await res.body.dump();
        const descriptor = headDescriptor(ref, kind, res);
        if (descriptor) return { descriptor };
        if (kind === 'blobs') {
          return { error: new FailedPreconditionError(`${context}: ${host.host} gave no size for the blob`), progress: Progress.Status };
        }
        continue; // not enough in the HEAD answer: GET the manifest.
      }
      try {
        return { descriptor: await getDescriptor(ref, res) };
      } catch (err) {
        if (!(err instanceof BerthError) || err instanceof InvalidArgumentError) throw err;
        return { error: err, progress: Progress.Status };
      }
    }
    throw new Error('unreachable');
  }

  /**
   * Returns how a response failed, or undefined when it succeeded (2xx) or was a HEAD refused in
   * a way a GET may get past. Throws for a non-redirect 3xx, which ends the resolve.
   */
  private async judge(host: RegistryHost, kind: 'manifests' | 'blobs', context: string, res: RegistryResponse): Promise<Attempt | undefined> {
    const { status } = res;
    if (status >= 200 && status <= 299) return undefined;
    const error = errorForResponse(host.host, context, await res.error());
    if (status >= 300 && status <= 399) throw error;
    if (status === 404) return { error, progress: Progress.NotFound };
    if (status === 401 || status === 403) return { error, progress: Progress.Transport };
    if (res.method === 'HEAD' && kind === 'manifests') return undefined;
    return { error, progress: Progress.Status };
  }
}

function mediaTypeOf(res: RegistryResponse): string {
  return (res.header('content-type') ?? '').split(';')[0].trim().toLowerCase();
}

function schema1Error(ref: ImageReference, mediaType: string): InvalidArgumentError {
  return new InvalidArgumentError(
    `${ref}: schema 1 manifests (${mediaType}) are not supported; push the image again as ` +
      `${ManifestMediaType.ociManifest} or ${ManifestMediaType.dockerManifest}`,
  );
}

/** Builds the descriptor from a successful HEAD, or returns undefined when a GET must fill gaps. */
function headDescriptor(ref: ImageReference, kind: 'manifests' | 'blobs', res: RegistryResponse): Descriptor | undefined {
  if (res.status < 200 || res.status > 299) return undefined;
  const mediaType = mediaTypeOf(res);
  if (isSchema1MediaType(mediaType)) throw schema1Error(ref, mediaType);
  const length = res.header('content-length');
  const size = length !== undefined && /^\d+$/.test(length) ? Number(length) : undefined;
  const headerDigest = res.header('docker-content-digest');
  if (size === undefined) return undefined;
  if (kind === 'blobs') return { mediaType: mediaType || 'application/octet-stream', digest: ref.digest!, size };
  if (GENERIC_TYPES.has(mediaType)) return undefined;
  // By digest the reference names the digest; a different header is settled by reading the body.
  if (ref.digest !== undefined) return headerDigest === undefined || headerDigest === ref.digest ? { mediaType, digest: ref.digest, size } : undefined;
  return headerDigest ? { mediaType, digest: headerDigest, size } : undefined;
}

/** Reads a manifest body (bounded), digests it and works out its media type. */
async function getDescriptor(ref: ImageReference, res: RegistryResponse): Promise<Descriptor> {
  const context = `resolve ${ref}: GET ${res.url.href}`;
  const declared = Number(res.header('content-length') ?? NaN);
  if (declared > MAX_MANIFEST_SIZE) {
    await res.body.dump();
    throw new FailedPreconditionError(`${context}: manifest of ${declared} bytes is larger than ${MAX_MANIFEST_SIZE}`);
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of res.body as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_MANIFEST_SIZE) {
      res.body.destroy();
      throw new FailedPreconditionError(`${context}: manifest is larger than ${MAX_MANIFEST_SIZE} bytes`);
    }
    chunks.push(chunk);
  }
  const body = Buffer.concat(chunks);
  const algorithm = ref.digest ? ref.digest.slice(0, ref.digest.indexOf(':')) : 'sha256';
  const digest = `${algorithm}:${createHash(algorithm).update(body).digest('hex')}`;
  if (ref.digest !== undefined && digest !== ref.digest) {
    throw new FailedPreconditionError(`${context}: manifest digest mismatch: got ${digest}, expected ${ref.digest}`);
  }
  let mediaType = mediaTypeOf(res);
  if (isSchema1MediaType(mediaType)) throw schema1Error(ref, mediaType);
  if (GENERIC_TYPES.has(mediaType)) mediaType = sniffMediaType(ref, body);
  return { mediaType, digest, size: body.length };
}

/** Works out a manifest's media type from its JSON when the registry did not say. */
function sniffMediaType(ref: ImageReference, body: Buffer): string {
  let json: { schemaVersion?: unknown; mediaType?: unknown; manifests?: unknown; config?: unknown; layers?: unknown; fsLayers?: unknown };
  try {
    json = JSON.parse(body.toString('utf8'));
  } catch (err) {
    throw new FailedPreconditionError(`resolve ${ref}: manifest is not JSON and has no media type`, { cause: err });
  }
  if (json.schemaVersion === 1 || json.fsLayers !== undefined) throw schema1Error(ref, ManifestMediaType.dockerSchema1);
  if (typeof json.mediaType === 'string' && json.mediaType !== '') return json.mediaType;
  if (Array.isArray(json.manifests)) return ManifestMediaType.ociIndex;
  if (json.config !== undefined || Array.isArray(json.layers)) return ManifestMediaType.ociManifest;
  throw new FailedPreconditionError(`resolve ${ref}: cannot tell the manifest's media type`);
}
