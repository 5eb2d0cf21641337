import { resolve } from 'node:path';
import { containersGrpcPlugin, containersServicePlugin } from '@berth/containers/plugins';
import { createCriPlugin } from '@berth/cri/plugins';
import { contentGrpcPlugin, contentPlugin, contentServicePlugin } from '@berth/content/plugins';
import { diffGrpcPlugin, diffServicePlugin, walkingDifferPlugin } from '@berth/diff/plugins';
import { exchangePlugin } from '@berth/events';
import { schedulerPlugin } from '@berth/gc';
import { eventsGrpcPlugin } from '@berth/events/plugins';
import { imagesGrpcPlugin, imagesServicePlugin } from '@berth/images/plugins';
import { healthGrpcPlugin, introspectionGrpcPlugin, introspectionServicePlugin } from '@berth/introspection/plugins';
import { leasesGrpcPlugin, leasesServicePlugin } from '@berth/leases/plugins';
import { metadataPlugin } from '@berth/metadata';
import { cgroupsMonitorPlugin } from '@berth/metrics/plugins';
import { namespacesGrpcPlugin, namespacesServicePlugin } from '@berth/namespaces/plugins';
import type { Registration } from '@berth/plugin';
import { restartPlugin } from '@berth/restart';
import { createRuntimeV2Plugin } from '@berth/runtime';
import { nativeSnapshotterPlugin, overlayfsSnapshotterPlugin, snapshotsGrpcPlugin, snapshotsServicePlugin } from '@berth/snapshots/plugins';
import { streamingGrpcPlugin, streamingManagerPlugin } from '@berth/streaming/plugins';
import { gcAdminGrpcPlugin, gcAdminServicePlugin, namespaceAdminGrpcPlugin, namespaceAdminServicePlugin } from '@berth/system/plugins';
import { tasksGrpcPlugin, tasksServicePlugin } from '@berth/tasks/plugins';
import { localTransferPlugin, transferGrpcPlugin } from '@berth/transfer/plugins';
import { SERVER_VERSION } from './version';
import { versionGrpcPlugin } from './version-plugin';

/** Shims publish events through `<this launcher> publish` when ttrpc is not available. */
const runtimeV2Plugin = createRuntimeV2Plugin({ publishBinary: resolve(__dirname, '../bin/berthd') });

/** Kubernetes' CRI reports the version the containerd Version service reports. */
const criPlugin = createCriPlugin({ runtimeVersion: SERVER_VERSION });

/**
 * The plugins berthd is built with, in registration order. The load order is computed from
 * their requirements; registration order only breaks ties, so it follows containerd's listing.
 */
export const builtinPlugins: readonly Registration[] = [
  contentPlugin,
  nativeSnapshotterPlugin,
  overlayfsSnapshotterPlugin,
  metadataPlugin,
  walkingDifferPlugin,
  exchangePlugin,
  runtimeV2Plugin,
  cgroupsMonitorPlugin,
  schedulerPlugin,
  streamingManagerPlugin,
  introspectionServicePlugin,
  containersServicePlugin,
  contentServicePlugin,
  diffServicePlugin,
  imagesServicePlugin,
  leasesServicePlugin,
  namespacesServicePlugin,
  snapshotsServicePlugin,
  tasksServicePlugin,
  // Berth's own services (berth.services.*) use the services above: registered after them.
  namespaceAdminServicePlugin,
  gcAdminServicePlugin,
  localTransferPlugin,
  restartPlugin,
  introspectionGrpcPlugin,
  containersGrpcPlugin,
  contentGrpcPlugin,
  diffGrpcPlugin,
  eventsGrpcPlugin,
  namespacesGrpcPlugin,
  snapshotsGrpcPlugin,
  tasksGrpcPlugin,
  healthGrpcPlugin,
  imagesGrpcPlugin,
  leasesGrpcPlugin,
  streamingGrpcPlugin,
  transferGrpcPlugin,
  versionGrpcPlugin,
  criPlugin,
  namespaceAdminGrpcPlugin,
  gcAdminGrpcPlugin,
];
