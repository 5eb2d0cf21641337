/**
 * @berth/plugin-sdk: what a plugin author imports to extend berthd from outside the repository.
 *
 * - {@link definePlugin} and the registration types: a plugin is `{ type, id, requires, config,
 *   init }`, and a module listed in berthd's `plugin_modules` exports `plugins`, an array of them;
 * - {@link PluginTypes}: containerd's plugin type strings, for `type` and `requires`;
 * - interface-typed tokens for every service a plugin can use (`ctx.get(Token)`, after declaring
 *   the token's plugin type in `requires`) or provide (`provides: [Token]` on a plugin of that type).
 *
 * At run time this module loads only @berth/plugin and @berth/context (to make a {@link context}): the interfaces are types from the subsystem
 * packages, and tokens are symbols shared by name, so the SDK's `ContentStoreToken` is the one
 * the content plugin registers. A plugin module therefore costs berthd nothing it did not load.
 */
import { token, type Token } from '@berth/plugin';
import type { ContainersService } from '@berth/containers';
import type { ContentService, ContentStore } from '@berth/content';
import type { Differ } from '@berth/diff';
import type { Exchange, Forwarder, Publisher, Subscriber } from '@berth/events';
import type { ImagesService } from '@berth/images';
import type { LeasesService } from '@berth/leases';
import type { ContainerStore, GcHooks, ImageStore, LeaseManager, MetadataDb, NamespaceStore } from '@berth/metadata';
import type { NamespacesService } from '@berth/namespaces';
import type { SnapshotsService } from '@berth/snapshots';

export {
  definePlugin,
  hostPlatform,
  parseDuration,
  SkipPluginError,
  token,
  type InitContext,
  type Platform,
  type PluginConfig,
  type PluginSetView,
  type Registration,
  type Token,
} from '@berth/plugin';
export { context, type Context } from '@berth/context';
export type { Logger } from '@berth/log';
export type { ContainersService } from '@berth/containers';
export type { ContentService, ContentStore, DescriptorLike, Info as ContentInfo, ReaderAt, Writer, WriterOptions } from '@berth/content';
export type { Differ, LayerDescriptor } from '@berth/diff';
export type { Exchange, Forwarder, Publisher, Subscriber, Subscription } from '@berth/events';
export type { ImagesService } from '@berth/images';
export type { LeasesService } from '@berth/leases';
export type { ContainerStore, GcHooks, GcKind, GcRecord, GcRef, ImageStore, Lease, LeaseManager, MetadataDb, NamespaceStore } from '@berth/metadata';
export type { NamespacesService } from '@berth/namespaces';
export type { Info as SnapshotInfo, Mount, SnapshotsService, Snapshotter } from '@berth/snapshots';

/** containerd's plugin types, as berthd and `ctr plugins ls` name them. */
export const PluginTypes = {
  content: 'io.containerd.content.v1',
  snapshotter: 'io.containerd.snapshotter.v1',
  differ: 'io.containerd.differ.v1',
  event: 'io.containerd.event.v1',
  metadata: 'io.containerd.metadata.v1',
  gc: 'io.containerd.gc.v1',
  lease: 'io.containerd.lease.v1',
  service: 'io.containerd.service.v1',
  grpc: 'io.containerd.grpc.v1',
  internal: 'io.containerd.internal.v1',
  runtime: 'io.containerd.runtime.v2',
  monitor: 'io.containerd.monitor.v1',
  transfer: 'io.containerd.transfer.v1',
} as const;

/**
 * The daemon's content store, below the namespaced layer (`io.containerd.content.v1`). A plugin
 * of that type providing this token replaces the local store (disable
 * `io.containerd.content.v1.content` so that the content service finds yours).
 */
export const ContentStoreToken: Token<ContentStore> = token('io.containerd.content.v1/store');
/** The namespaced content store with events, as the Content API serves it (`io.containerd.service.v1`). */
export const ContentServiceToken: Token<ContentService> = token('io.containerd.service.v1/content-service');
/**
 * The namespaced snapshotters, by name (`io.containerd.service.v1`). Backend snapshotters are
 * plugins of type `io.containerd.snapshotter.v1` whose instance is a {@link Snapshotter}; the
 * snapshots service serves every one that loaded under its id.
 */
export const SnapshotsServiceToken: Token<SnapshotsService> = token('io.containerd.service.v1/snapshots');
/** A differ (`io.containerd.differ.v1`): applies layers to mounts, compares mounts into layers. */
export const DifferToken: Token<Differ> = token('io.containerd.differ.v1/differ');
/** Publishes events to the daemon's exchange (`io.containerd.event.v1`). */
export const PublisherToken: Token<Publisher> = token('io.containerd.event.v1/publisher');
/** Subscribes to the daemon's events (`io.containerd.event.v1`). */
export const SubscriberToken: Token<Subscriber> = token('io.containerd.event.v1/subscriber');
/** Forwards events that carry their own namespace and time (`io.containerd.event.v1`). */
export const ForwarderToken: Token<Forwarder> = token('io.containerd.event.v1/forwarder');
/** The event exchange itself (`io.containerd.event.v1`). */
export const ExchangeToken: Token<Exchange> = token('io.containerd.event.v1/exchange');
/** The metadata database (`io.containerd.metadata.v1`). */
export const MetadataDbToken: Token<MetadataDb> = token('io.containerd.metadata.v1/db');
/** Namespaces and their labels (`io.containerd.metadata.v1`). */
export const NamespaceStoreToken: Token<NamespaceStore> = token('io.containerd.metadata.v1/namespaces');
/** Image records (`io.containerd.metadata.v1`). */
export const ImageStoreToken: Token<ImageStore> = token('io.containerd.metadata.v1/images');
/** Container records (`io.containerd.metadata.v1`). */
export const ContainerStoreToken: Token<ContainerStore> = token('io.containerd.metadata.v1/containers');
/** Leases and their resources (`io.containerd.metadata.v1`). */
export const LeaseManagerToken: Token<LeaseManager> = token('io.containerd.metadata.v1/leases');
/** Where a plugin registers what the garbage collector must clean in its own storage (`io.containerd.metadata.v1`). */
export const GcHooksToken: Token<GcHooks> = token('io.containerd.metadata.v1/gc-hooks');
/** The images service with events (`io.containerd.service.v1`). */
export const ImagesServiceToken: Token<ImagesService> = token('io.containerd.service.v1/images');
/** The containers service with events (`io.containerd.service.v1`). */
export const ContainersServiceToken: Token<ContainersService> = token('io.containerd.service.v1/containers');
/** The leases service (`io.containerd.service.v1`). */
export const LeasesServiceToken: Token<LeasesService> = token('io.containerd.service.v1/leases');
/** The namespaces service with events (`io.containerd.service.v1`). */
export const NamespacesServiceToken: Token<NamespacesService> = token('io.containerd.service.v1/namespaces');
