import { createReadStream } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { FileLabelStore, LocalContentStore } from '@berth/content';
import { context } from '@berth/context';
import { WalkingDiffer } from '@berth/diff';
import { importArchive, unpack } from '@berth/images';
import { mountAll } from '@berth/mount';
import { NativeSnapshotter, OverlaySnapshotter, overlaySupported } from '@berth/snapshots';

/**
 * Imports an image tarball (OCI layout or `docker save`) into a content store under `root`,
 * unpacks its layers into snapshots, and mounts a read-only view of the result on `rootfs`.
 */
export async function unpackTarball(tarball: string, root: string, rootfs: string): Promise<string> {
  const ctx = context();
  const content = await LocalContentStore.open(join(root, 'content'), {
    labelStore: new FileLabelStore(join(root, 'content-labels')),
  });
  const snapshotter = overlaySupported()
    ? OverlaySnapshotter.open(join(root, 'overlayfs'))
    : NativeSnapshotter.open(join(root, 'native'));
  const differ = new WalkingDiffer(() => content);
  try {
    const { images } = await importArchive(ctx, createReadStream(tarball), { content });
    const { chainId } = await unpack(ctx, images[0], { content, snapshotter, differ });
    const mounts = await snapshotter.view(ctx, `rootfs-${Date.now()}`, chainId);
    await mkdir(rootfs, { recursive: true });
    await mountAll(mounts, rootfs);
    return images[0].name;
  } finally {
    await snapshotter.close();
  }
}
