import { join } from 'node:path';
import { LocalContentStore, MetadataContentStore } from '@berth/content';
import { context } from '@berth/context';
import { WalkingDiffer } from '@berth/diff';
import { ImagesService, hostPlatform } from '@berth/images';
import { nullLogger } from '@berth/log';
import { LmdbImageStore, MetadataDb } from '@berth/metadata';
import { configureHosts } from '@berth/remotes';
import { MetadataSnapshotter, OverlaySnapshotter } from '@berth/snapshots';
import { type ProgressEvent, pull } from '@berth/transfer';

/**
 * Pulls an image from a registry into stores under `root`, as berthd's transfer service does but
 * without the daemon: the blobs into a content store, the layers unpacked into overlayfs while
 * they download, and the image recorded by name in the metadata database (namespace
 * "default"). Returns the digest the image record points at.
 */
export async function pullIntoStores(reference: string, root: string, onProgress: (e: ProgressEvent) => void = () => undefined): Promise<string> {
  const db = MetadataDb.open(join(root, 'metadata'));
  const content = new MetadataContentStore(db, await LocalContentStore.open(join(root, 'content')));
  const overlay = OverlaySnapshotter.open(join(root, 'overlayfs'));
  const snapshotter = new MetadataSnapshotter(db, 'overlayfs', overlay);
  const images = new ImagesService(new LmdbImageStore(db), { publish: async () => undefined }, nullLogger);
  try {
    const ctx = context({ namespace: 'default' });
    await pull(
      ctx,
      { kind: 'registry', reference, defaultScheme: 'http', headers: {} },
      { kind: 'image-store', name: reference, labels: {}, platforms: [], allMetadata: false, manifestLimit: 0, extraReferences: [], unpacks: [{ snapshotter: 'overlayfs' }] },
      {
        content,
        images,
        snapshotter: () => snapshotter,
        differ: new WalkingDiffer((c) => content.bind(c)),
        settings: {
          maxConcurrentDownloads: 3,
          maxConcurrentUploadedLayers: 3,
          unpackPlatforms: [{ platform: hostPlatform(), snapshotter: 'overlayfs' }],
          checkPlatformSupported: false,
        },
      },
      { hosts: configureHosts({ defaultScheme: 'http' }) },
      onProgress,
    );
    return (await images.get(ctx, reference)).target.digest;
  } finally {
    await overlay.close();
    await db.close();
  }
}
