import { join } from 'node:path';
import { context } from '@berth/context';
import { LocalContentStore, MetadataContentStore, contentGcKinds, digestOf } from '@berth/content';
import { MetadataCollector } from '@berth/gc';
import { GcHooks, LmdbImageStore, MetadataDb } from '@berth/metadata';

/**
 * Garbage collection without the daemon, over a metadata database and content store in `dir`: a
 * manifest blob references a layer through a `gc.ref` label, an image names the manifest, and a
 * third blob nothing references. The collector learns what blobs are from the hooks content
 * registers, keeps what the image reaches, and removes the rest, record and file. Returns what
 * the collection removed and the blobs left.
 */
export async function collectUnreferenced(dir: string): Promise<{ removed: Record<string, number>; files: number; left: string[] }> {
  const db = MetadataDb.open(join(dir, 'meta'));
  try {
    const content = new MetadataContentStore(db, await LocalContentStore.open(join(dir, 'content')));
    const hooks = new GcHooks();
    for (const kind of contentGcKinds) hooks.registerKind(kind);
    hooks.registerBackend('content', () => content.collectBackend());

    const ctx = context({ namespace: 'default' });
    const put = async (data: string, labels: Record<string, string> = {}) => {
      const w = await content.writer(ctx, { ref: `upload-${digestOf(data)}` });
      await w.write(Buffer.from(data));
      await w.commit(Buffer.byteLength(data), digestOf(data), labels);
      return digestOf(data);
    };
    const layer = await put('layer bytes');
    const manifest = await put('manifest bytes', { 'containerd.io/gc.ref.content.l.0': layer });
    await put('nobody needs me');
    await new LmdbImageStore(db).create(ctx, {
      name: 'example.com/app:1',
      labels: {},
      target: { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: manifest, size: 14, annotations: {} },
    });

    const stats = await new MetadataCollector(db, hooks).collect();
    const left = (await content.list(ctx)).map((i) => (i.digest === layer ? 'layer' : i.digest === manifest ? 'manifest' : i.digest));
    return { removed: stats.removed, files: stats.backendRemoved.content, left: left.sort() };
  } finally {
    await db.close();
  }
}
