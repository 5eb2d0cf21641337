import { context } from '@berth/context';
import { LmdbImageStore, LmdbNamespaceStore, MetadataDb } from '@berth/metadata';

const MANIFEST = 'application/vnd.oci.image.manifest.v1+json';

/**
 * Opens (creating it) the metadata database in `dir`, as berthd keeps it, records two images in
 * namespace `builds` and one in `default`, and answers, after closing and reopening the database,
 * which namespaces exist and which images of `builds` carry the label `team=web`.
 */
export async function recordImages(dir: string): Promise<{ namespaces: string[]; web: string[] }> {
  const builds = context({ namespace: 'builds' });
  const db = MetadataDb.open(dir);
  try {
    const images = new LmdbImageStore(db);
    const target = (digest: string) => ({ mediaType: MANIFEST, digest, size: 527, annotations: {} });
    await images.create(builds, { name: 'example.com/web:1', labels: { team: 'web' }, target: target(`sha256:${'1'.repeat(64)}`) });
    await images.create(builds, { name: 'example.com/db:1', labels: { team: 'data' }, target: target(`sha256:${'2'.repeat(64)}`) });
    await images.create(context({ namespace: 'default' }), { name: 'example.com/web:1', labels: { team: 'web' }, target: target(`sha256:${'3'.repeat(64)}`) });
  } finally {
    await db.close();
  }
  const reopened = MetadataDb.open(dir);
  try {
    const namespaces = await new LmdbNamespaceStore(reopened).list();
    const web = await new LmdbImageStore(reopened).list(builds, ['labels.team==web']);
    return { namespaces, web: web.map((i) => `${i.name} ${i.target.digest.slice(0, 12)}`) };
  } finally {
    await reopened.close();
  }
}
