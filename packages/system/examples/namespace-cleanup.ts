import { berthGc, berthNamespaces } from '@berth/api';
import { createClient } from '@berth/grpc';

/**
 * On the berthd serving `address`: reports the disk that namespace `name` alone takes (its
 * exclusive blobs and its snapshots), says what keeps blob `digest` there, then deletes the
 * namespace with everything in it and returns what went.
 */
export async function cleanUpNamespace(
  address: string,
  name: string,
  digest: string,
): Promise<{ exclusiveBytes: number; keptBy: string[]; removed: berthNamespaces.DeleteResponse }> {
  const namespaces = createClient(berthNamespaces.NamespacesService, address);
  const gc = createClient(berthGc.GCService, address, { namespace: name });
  try {
    const [usage] = (await namespaces.usage({ name })).namespaces;
    const exclusiveBytes = (usage.content?.exclusive?.bytes ?? 0) + (usage.snapshots?.exclusive?.bytes ?? 0);
    const why = await gc.explain({ digest, snapshotter: '', key: '' });
    const keptBy = why.chain.map((link) => `${link.kind} ${link.id.join(' ')} (${link.via})`);
    const removed = await namespaces.delete({ name, cascade: true });
    return { exclusiveBytes, keptBy, removed };
  } finally {
    namespaces.close();
    gc.close();
  }
}
