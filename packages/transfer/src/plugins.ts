/**
 * The transfer plugins (`@berth/transfer/plugins`):
 * - `io.containerd.transfer.v1 local`: the local transferrer, with containerd's config keys;
 * - `io.containerd.grpc.v1 transfer`: containerd.services.transfer.v1.Transfer.
 */
import { normalizeTypeUrl, type protobuf, type types, typeUrlOf, unpackAnyAs } from '@berth/api';
import { ContainerPath, ImageExportStream, ImageImportStream, ImageStore, OCIRegistry, ReadStream, WriteStream, transfer as api } from '@berth/api/transfer';
import { ContentServiceToken } from '@berth/content';
import type { Context } from '@berth/context';
import { DIFFER_PLUGIN_TYPE, DiffServiceToken } from '@berth/diff/plugins';
import { InvalidArgumentError, UnknownError } from '@berth/errdefs';
import { GRPC_PLUGIN_TYPE, type GrpcServicePlugin, createService } from '@berth/grpc';
import { ImagesServiceToken, type Platform, hostPlatform, parsePlatform } from '@berth/images';
import { LeaseManagerToken, METADATA_PLUGIN_TYPE } from '@berth/metadata';
import { definePlugin, token } from '@berth/plugin';
import { SNAPSHOTTER_PLUGIN_TYPE, SnapshotsServiceToken } from '@berth/snapshots';
import { STREAMING_PLUGIN_TYPE, StreamRegistryToken, type StreamRegistry } from '@berth/streaming';
import { progressToStream } from './stream-adapters';
import { LocalTransferrer, type OtherObject, type Transferrer } from './transferrer';
import type { TransferObject, TransferSettings } from './types';

export const TRANSFER_PLUGIN_TYPE = 'io.containerd.transfer.v1';
export const TransferrerToken = token<Transferrer>(`${TRANSFER_PLUGIN_TYPE}/transferrer`);

/** `[plugins."io.containerd.transfer.v1.local"]`, containerd's keys. */
export interface LocalTransferConfig {
  /** Blobs fetched at once. Default 3. */
  max_concurrent_downloads: number;
  /** Blobs pushed at once. Default 3. */
  max_concurrent_uploaded_layers: number;
  /** Kept for configs written for containerd; containerd 2.4 does not read it either (hosts come from the request). */
  config_path: string;
  /** Platforms that may be unpacked and where: `[{platform = "linux/amd64", snapshotter = "overlayfs", differ = "walking"}]`. Default: the host's platform into overlayfs. */
  unpack_config: Array<{ platform: string; snapshotter: string; differ?: string }>;
  /** false (default): an unpack platform matches on its OS alone, so other architectures unpack too. */
  check_platform_supported: boolean;
}

function positiveInt(section: Record<string, unknown>, key: string, fallback: number): number {
  const v = section[key] ?? fallback;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) throw new InvalidArgumentError(`${key} must be a positive integer, not ${JSON.stringify(v)}`);
  return v;
}

function platformString(p: Platform): string {
  return [p.os, p.architecture, p.variant].filter(Boolean).join('/');
}

/** `io.containerd.transfer.v1 local`: the local transferrer over the daemon's own services. */
export const localTransferPlugin = definePlugin<LocalTransferConfig, Transferrer>({
  type: TRANSFER_PLUGIN_TYPE,
  id: 'local',
  requires: [METADATA_PLUGIN_TYPE, 'io.containerd.service.v1', DIFFER_PLUGIN_TYPE, SNAPSHOTTER_PLUGIN_TYPE],
  config: {
    defaults: () => ({
      max_concurrent_downloads: 3,
      max_concurrent_uploaded_layers: 3,
      config_path: '',
      unpack_config: [{ platform: platformString(hostPlatform()), snapshotter: 'overlayfs', differ: 'walking' }],
      check_platform_supported: false,
    }),
    parse: (section, d) => {
      const unpack = section.unpack_config ?? d.unpack_config;
      if (!Array.isArray(unpack)) throw new InvalidArgumentError('unpack_config must be a list of {platform, snapshotter, differ} tables');
      const unpack_config = unpack.map((u, i) => {
        const e = u as Record<string, unknown>;
        if (typeof e?.platform !== 'string' || typeof e.snapshotter !== 'string') {
          throw new InvalidArgumentError(`unpack_config[${i}] needs platform and snapshotter strings`);
        }
        parsePlatform(e.platform);
        return { platform: e.platform, snapshotter: e.snapshotter, ...(typeof e.differ === 'string' ? { differ: e.differ } : {}) };
      });
      const check = section.check_platform_supported ?? d.check_platform_supported;
      if (typeof check !== 'boolean') throw new InvalidArgumentError('check_platform_supported must be a boolean');
      const configPath = section.config_path ?? d.config_path;
      if (typeof configPath !== 'string') throw new InvalidArgumentError('config_path must be a string');
      return {
        max_concurrent_downloads: positiveInt(section, 'max_concurrent_downloads', d.max_concurrent_downloads),
        max_concurrent_uploaded_layers: positiveInt(section, 'max_concurrent_uploaded_layers', d.max_concurrent_uploaded_layers),
        config_path: configPath,
        unpack_config,
        check_platform_supported: check,
      };
    },
  },
  provides: [TransferrerToken],
  init: (ctx) => {
    const c = ctx.config;
    const snapshots = ctx.get(SnapshotsServiceToken);
    for (const u of c.unpack_config) snapshots.snapshotter(u.snapshotter); // a missing snapshotter fails init, as containerd
    const settings: TransferSettings = {
      maxConcurrentDownloads: c.max_concurrent_downloads,
      maxConcurrentUploadedLayers: c.max_concurrent_uploaded_layers,
      unpackPlatforms: c.unpack_config.map((u) => ({ platform: parsePlatform(u.platform), snapshotter: u.snapshotter })),
      checkPlatformSupported: c.check_platform_supported,
    };
    return new LocalTransferrer({
      services: {
        content: ctx.get(ContentServiceToken).store,
        images: ctx.get(ImagesServiceToken),
        snapshotter: (name) => snapshots.snapshotter(name),
        differ: ctx.get(DiffServiceToken),
        settings,
        logger: ctx.logger,
      },
      leases: ctx.get(LeaseManagerToken),
      hostsLogger: (msg, fields) => {
        const { level, ...rest } = fields ?? {};
        const logged = Object.fromEntries(Object.entries(rest).map(([k, v]) => [k, typeof v === 'number' || typeof v === 'boolean' ? v : String(v)]));
        if (level === 'error') ctx.logger.error(msg, logged);
        else if (level === 'warn') ctx.logger.warn(msg, logged);
        else ctx.logger.debug(msg, logged);
      },
    });
  },
});

/** Known transfer types that no operation takes (they reach the NotImplemented answer). */
const OTHER_TYPES = new Set([ReadStream, WriteStream, ContainerPath].map(typeUrlOf));

function toPlatform(p: types.Platform): Platform {
  return {
    os: p.os,
    architecture: p.architecture,
    ...(p.variant ? { variant: p.variant } : {}),
    ...(p.osVersion ? { 'os.version': p.osVersion } : {}),
    ...(p.osFeatures.length > 0 ? { 'os.features': [...p.osFeatures] } : {}),
  };
}

/**
 * Decodes a request's transfer object. Type URLs are matched exactly, as containerd's table
 * does: an unknown one is Unknown `type with url <u>: not found`; a known type under another
 * spelling (a `type.googleapis.com/` prefix) reaches the NotImplemented answer. A named stream
 * that was not opened is NotFound.
 */
function decode(any: protobuf.Any | undefined, ctx: Context, streams: StreamRegistry): TransferObject | OtherObject {
  const frame = any ?? { typeUrl: '', value: Buffer.alloc(0) };
  const stream = (id: string) => streams.get(ctx, id);
  // unpackAnyAs answers InvalidArgument for bytes that do not decode.
  switch (frame.typeUrl) {
    case typeUrlOf(OCIRegistry): {
      const r = unpackAnyAs(frame, OCIRegistry);
      const resolver = r.resolver;
      const scheme = resolver?.defaultScheme;
      if (scheme && scheme !== 'http' && scheme !== 'https') throw new InvalidArgumentError(`unsupported default scheme ${JSON.stringify(scheme)}`);
      return {
        kind: 'registry',
        reference: r.reference,
        ...(resolver?.hostDir ? { hostDir: resolver.hostDir } : {}),
        ...(scheme ? { defaultScheme: scheme as 'http' | 'https' } : {}),
        headers: { ...(resolver?.headers ?? {}) },
        ...(resolver?.authStream ? { authStream: stream(resolver.authStream) } : {}),
      };
    }
    case typeUrlOf(ImageStore): {
      const s = unpackAnyAs(frame, ImageStore);
      return {
        kind: 'image-store',
        name: s.name,
        labels: { ...s.labels },
        platforms: s.platforms.map(toPlatform),
        allMetadata: s.allMetadata,
        manifestLimit: s.manifestLimit,
        extraReferences: s.extraReferences.map((r) => ({ ...r })),
        unpacks: s.unpacks.map((u) => ({ ...(u.platform ? { platform: toPlatform(u.platform) } : {}), snapshotter: u.snapshotter })),
      };
    }
    case typeUrlOf(ImageImportStream): {
      const s = unpackAnyAs(frame, ImageImportStream);
      return { kind: 'import-stream', stream: stream(s.stream), mediaType: s.mediaType, forceCompress: s.forceCompress };
    }
    case typeUrlOf(ImageExportStream): {
      const s = unpackAnyAs(frame, ImageExportStream);
      return {
        kind: 'export-stream',
        stream: stream(s.stream),
        platforms: s.platforms.map(toPlatform),
        allPlatforms: s.allPlatforms,
        skipCompatibilityManifest: s.skipCompatibilityManifest,
        skipNonDistributable: s.skipNonDistributable,
      };
    }
    default: {
      const known = [OCIRegistry, ImageStore, ImageImportStream, ImageExportStream].map(typeUrlOf);
      const bare = normalizeTypeUrl(frame.typeUrl);
      if (OTHER_TYPES.has(bare) || known.includes(bare)) return { kind: 'other', typeUrl: frame.typeUrl };
      throw new UnknownError(`type with url ${frame.typeUrl}: not found`, { bare: true });
    }
  }
}

/**
 * `io.containerd.grpc.v1 transfer`: containerd.services.transfer.v1.Transfer. Progress goes to
 * the stream named by `options.progress_stream`, which is closed (OK) once the transfer ends,
 * before the reply.
 */
export const transferGrpcPlugin = definePlugin<undefined, GrpcServicePlugin>({
  type: GRPC_PLUGIN_TYPE,
  id: 'transfer',
  requires: [TRANSFER_PLUGIN_TYPE, STREAMING_PLUGIN_TYPE],
  init: (ctx) => {
    const transferrer = ctx.get(TransferrerToken);
    const streams = ctx.get(StreamRegistryToken);
    const service = createService(
      api.TransferService,
      {
        transfer: async (req, call) => {
          const src = decode(req.source, call, streams);
          const dst = decode(req.destination, call, streams);
          const progressId = req.options?.progressStream ?? '';
          const progressStream = progressId ? streams.get(call, progressId) : undefined;
          const progress = progressStream ? progressToStream(progressStream) : undefined;
          try {
            await transferrer.transfer(call, src, dst, progress?.sink ?? (() => undefined), [req.source?.typeUrl ?? '', req.destination?.typeUrl ?? '']);
            // The data streams end (OK) before the reply, so the client has every byte of an
            // export when Transfer returns (ctr closes its output file then).
            for (const o of [src, dst]) {
              if (o.kind === 'import-stream' || o.kind === 'export-stream') {
                o.stream.close();
                await o.stream.done;
              }
            }
          } finally {
            if (progress) {
              // Every event is written before the reply: ctr stops reading progress once
              // Transfer returns, so events still queued then would never be shown.
              await progress.finish();
              progressStream!.close();
              await progressStream!.done;
            }
          }
          return {};
        },
      },
      ctx.logger,
    );
    return { services: [service] };
  },
});
