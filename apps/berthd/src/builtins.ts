import { containersGrpcPlugin, containersServicePlugin } from '@berth/containers';
import { contentGrpcPlugin, contentPlugin, contentServicePlugin } from '@berth/content/plugins';
import { exchangePlugin } from '@berth/events';
import { eventsGrpcPlugin } from '@berth/events/plugins';
import { imagesGrpcPlugin, imagesServicePlugin } from '@berth/images/plugins';
import { healthGrpcPlugin, introspectionGrpcPlugin, introspectionServicePlugin } from '@berth/introspection';
import { leasesGrpcPlugin, leasesServicePlugin } from '@berth/leases';
import { metadataPlugin } from '@berth/metadata';
import { namespacesGrpcPlugin, namespacesServicePlugin } from '@berth/namespaces';
import type { Registration } from '@berth/plugin';
import { nativeSnapshotterPlugin, overlayfsSnapshotterPlugin, snapshotsGrpcPlugin, snapshotsServicePlugin } from '@berth/snapshots/plugins';
import { versionGrpcPlugin } from './version-plugin';

/**
 * The plugins berthd is built with, in registration order. The load order is computed from
 * their requirements; registration order only breaks ties, so it follows containerd's listing.
 */
export const builtinPlugins: readonly Registration[] = [
  contentPlugin,
  nativeSnapshotterPlugin,
  overlayfsSnapshotterPlugin,
  metadataPlugin,
  exchangePlugin,
  introspectionServicePlugin,
  containersServicePlugin,
  contentServicePlugin,
  imagesServicePlugin,
  leasesServicePlugin,
  namespacesServicePlugin,
  snapshotsServicePlugin,
  introspectionGrpcPlugin,
  containersGrpcPlugin,
  contentGrpcPlugin,
  eventsGrpcPlugin,
  namespacesGrpcPlugin,
  snapshotsGrpcPlugin,
  healthGrpcPlugin,
  imagesGrpcPlugin,
  leasesGrpcPlugin,
  versionGrpcPlugin,
];
