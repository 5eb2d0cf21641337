import * as containers from '@berth/containers';
import * as content from '@berth/content';
import { CONTENT_PLUGIN_TYPE } from '@berth/content/plugins';
import * as diff from '@berth/diff/plugins';
import * as events from '@berth/events';
import * as images from '@berth/images';
import * as leases from '@berth/leases';
import * as metadata from '@berth/metadata';
import * as namespaces from '@berth/namespaces';
import * as snapshots from '@berth/snapshots';
import * as sdk from './index';

/** The SDK declares its tokens by name; each must be the very token its subsystem registers. */
describe('@berth/plugin-sdk tokens', () => {
  it.each([
    ['ContentStoreToken', content.ContentStoreToken],
    ['ContentServiceToken', content.ContentServiceToken],
    ['SnapshotsServiceToken', snapshots.SnapshotsServiceToken],
    ['DifferToken', diff.DifferToken],
    ['PublisherToken', events.PublisherToken],
    ['SubscriberToken', events.SubscriberToken],
    ['ForwarderToken', events.ForwarderToken],
    ['ExchangeToken', events.ExchangeToken],
    ['MetadataDbToken', metadata.MetadataDbToken],
    ['NamespaceStoreToken', metadata.NamespaceStoreToken],
    ['ImageStoreToken', metadata.ImageStoreToken],
    ['ContainerStoreToken', metadata.ContainerStoreToken],
    ['LeaseManagerToken', metadata.LeaseManagerToken],
    ['GcHooksToken', metadata.GcHooksToken],
    ['ImagesServiceToken', images.ImagesServiceToken],
    ['ContainersServiceToken', containers.ContainersServiceToken],
    ['LeasesServiceToken', leases.LeasesServiceToken],
    ['NamespacesServiceToken', namespaces.NamespacesServiceToken],
  ])('%s is the subsystem token', (name, subsystem) => {
    expect((sdk as unknown as Record<string, symbol>)[name]).toBe(subsystem);
  });

  it('names the plugin types the subsystems use', () => {
    expect(sdk.PluginTypes).toMatchObject({
      content: CONTENT_PLUGIN_TYPE,
      snapshotter: snapshots.SNAPSHOTTER_PLUGIN_TYPE,
      event: events.EVENT_PLUGIN_TYPE,
      metadata: metadata.METADATA_PLUGIN_TYPE,
      differ: diff.DIFFER_PLUGIN_TYPE,
    });
  });
});
