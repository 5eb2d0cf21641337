import { join } from 'node:path';
import { FileLabelStore, LocalContentStore } from '@berth/content';
import { context } from '@berth/context';
import { WalkingDiffer } from '@berth/diff';
import { isAlreadyExists } from '@berth/errdefs';
import { type OciDescriptor, children, filterPlatforms, platformMatcher, unpack } from '@berth/images';
import { type ImageReference, RegistryClient, configureHosts } from '@berth/remotes';
import { NativeSnapshotter, OverlaySnapshotter, overlaySupported } from '@berth/snapshots';

/**
 * Pulls an image from a registry into a content store under `root` (this machine's platform
 * only) and unpacks its layers into snapshots; returns the chain ID of the top layer, the
 * snapshot to build a root filesystem on. Run it again after an interruption: blobs already
 * stored are skipped, and a partly written one resumes where it stopped.
 */
export async function pullAndUnpack(reference: string, root: string, options: { plainHttp?: boolean } = {}): Promise<string> {
  const ctx = context();
  const content = await LocalContentStore.open(join(root, 'content'), {
    labelStore: new FileLabelStore(join(root, 'content-labels')),
  });
  const snapshotter = overlaySupported()
    ? OverlaySnapshotter.open(join(root, 'overlayfs'))
    : NativeSnapshotter.open(join(root, 'native'));
  const client = new RegistryClient({
    hosts: configureHosts({ hostDir: '/etc/containerd/certs.d', defaultScheme: options.plainHttp ? 'http' : 'https' }),
  });
  const fetchTree = async (ref: ImageReference, desc: OciDescriptor): Promise<void> => {
    await fetchBlob(content, client, ref, desc);
    for (const child of filterPlatforms(await children(content, desc), platformMatcher())) await fetchTree(ref, child);
  };
  try {
    const { ref, descriptor } = await client.resolve(reference);
    await fetchTree(ref, descriptor);
    const differ = new WalkingDiffer(() => content);
    const { chainId } = await unpack(ctx, { name: reference, target: descriptor }, { content, snapshotter, differ });
    return chainId;
  } finally {
    await client.close();
    await snapshotter.close();
  }
}

/** Stores one blob, verified; resumes an earlier partial write of it. */
async function fetchBlob(content: LocalContentStore, client: RegistryClient, ref: ImageReference, desc: OciDescriptor): Promise<void> {
  let writer;
  try {
    writer = await content.writer({ ref: desc.digest, total: desc.size, expected: desc.digest });
  } catch (err) {
    if (isAlreadyExists(err)) return; // stored by an earlier run
    throw err;
  }
  try {
    const { offset } = await writer.status();
    for await (const chunk of await client.fetch(ref, desc, { offset })) await writer.write(chunk);
    await writer.commit(desc.size, desc.digest);
  } finally {
    await writer.close();
  }
}
