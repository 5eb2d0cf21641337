import { exchangePlugin } from '@berth/events';
import { healthGrpcPlugin, introspectionGrpcPlugin, introspectionServicePlugin } from '@berth/introspection';
import { metadataPlugin } from '@berth/metadata';
import { namespacesGrpcPlugin, namespacesServicePlugin } from '@berth/namespaces';
import type { Registration } from '@berth/plugin';
import { versionGrpcPlugin } from './version-plugin';

/**
 * The plugins berthd is built with, in registration order. The load order is computed from
 * their requirements; registration order only breaks ties, so it follows containerd's listing.
 */
export const builtinPlugins: readonly Registration[] = [
  metadataPlugin,
  exchangePlugin,
  introspectionServicePlugin,
  namespacesServicePlugin,
  introspectionGrpcPlugin,
  namespacesGrpcPlugin,
  healthGrpcPlugin,
  versionGrpcPlugin,
];
