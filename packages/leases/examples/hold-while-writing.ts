import { context } from '@berth/context';
import { GcHooks, LmdbLeaseManager, MetadataDb } from '@berth/metadata';
import { LeasesService } from '@berth/leases';

/**
 * Takes a lease as a program does before writing objects it has not linked yet (a pull in
 * progress): one that expires on its own after an hour, holding a blob. Lists it and what it
 * holds, then deletes it synchronously: the delete waits for a garbage collection through the
 * metadata hooks (at once here, where no collector is loaded).
 */
export async function holdWhileWriting(dir: string): Promise<{ leases: string[]; resources: string[]; after: number }> {
  const db = MetadataDb.open(dir);
  try {
    const hooks = new GcHooks();
    const leases = new LeasesService(new LmdbLeaseManager(db), { collectGarbage: (ctx) => hooks.collectGarbage(ctx) });
    const ctx = context({ namespace: 'default' });
    const expire = new Date(Date.now() + 3_600_000).toISOString();
    const lease = await leases.create(ctx, 'pull-busybox', { 'containerd.io/gc.expire': expire });
    await leases.addResource(ctx, lease.id, { type: 'content', id: `sha256:${'a'.repeat(64)}` });
    const listed = await leases.list(ctx, ['labels."containerd.io/gc.expire"']);
    const resources = await leases.listResources(ctx, lease.id);
    await leases.delete(ctx, lease.id, { sync: true });
    return {
      leases: listed.map((l) => l.id),
      resources: resources.map((r) => `${r.type} ${r.id.slice(0, 15)}`),
      after: (await leases.list(ctx)).length,
    };
  } finally {
    await db.close();
  }
}
