import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { berthGc, berthNamespaces, content } from '@berth/api';
import { kindOf } from '@berth/errdefs';
import { BUSYBOX_IMAGE, type BuiltImage, buildBusyboxImage, busyboxImage } from '@berth/fixtures';
import { TestDaemon, cleanupShims, ctrEventsDuring, rejectionOf, shimsOf, tempDir } from '@berth/testing';

/**
 * Berth's own services on a real berthd, set up and checked with the stock ctr: two namespaces
 * with the same busybox image (so their blobs are shared), one of them with a running task, more
 * snapshots and a lease. The collector is kept quiet (it runs only when asked), so that what
 * explain calls unreferenced is still there to be explained and then collected.
 */
const CGROUPS = '/sys/fs/cgroup';
/** A freezer cgroup of this test's own, the parent of the task that will not die. */
const ICE = `berth-system-ice-${process.pid}`;

/** Removes the (empty) cgroup directories runc made for `path` in every v1 hierarchy. */
function removeCgroups(path: string): void {
  for (const controller of existsSync(CGROUPS) ? readdirSync(CGROUPS) : []) {
    try {
      rmdirSync(join(CGROUPS, controller, path));
    } catch {
      /* absent, or not a hierarchy */
    }
  }
}

const freezer = (state: 'FROZEN' | 'THAWED') => writeFileSync(join(CGROUPS, 'freezer', ICE, 'freezer.state'), state);

describe('berth.services.namespaces.v1 and berth.services.gc.v1 on berthd', () => {
  const work = tempDir('berth-system-');
  let d: TestDaemon;
  let img: BuiltImage;
  let admin: ReturnType<typeof d.client<typeof berthNamespaces.NamespacesService>>;

  const ok = async (args: string[], namespace?: string) => {
    const res = await d.ctr(args, { namespace, timeoutMs: 60_000 });
    expect({ args, code: res.code, stderr: res.stderr }).toEqual({ args, code: 0, stderr: '' });
    return res.stdout;
  };
  const gc = (namespace?: string) => d.client(berthGc.GCService, namespace);
  const kindOfRejection = async (p: Promise<unknown>) => kindOf(await rejectionOf(p));

  beforeAll(async () => {
    d = await TestDaemon.start({
      logLevel: 'info',
      // No collection unless asked for (a huge interval, no mutation or deletion trigger).
      config:
        '\n[plugins."io.containerd.gc.v1.scheduler"]\npause_threshold = 0.00001\ndeletion_threshold = 1000000000\nmutation_threshold = 0\n' +
        '\n[plugins."io.containerd.service.v1.berth-namespaces-service"]\nkill_timeout = "3s"\n',
    });
    admin = d.client(berthNamespaces.NamespacesService);
    img = await busyboxImage();
    const tar = await buildBusyboxImage(work.path);
    await ok(['images', 'import', tar], 'keeper');
    await ok(['images', 'import', tar], 'doomed');
    await ok(['images', 'tag', BUSYBOX_IMAGE, 'docker.io/library/doomed:extra'], 'doomed');
    await ok(['run', '-d', BUSYBOX_IMAGE, 'sleeper', 'sleep', '1000'], 'doomed');
    await ok(['snapshots', 'prepare', 'extra-active', img.diffIds[0]], 'doomed');
    await ok(['snapshots', 'view', 'extra-view', img.diffIds[0]], 'doomed');
    // Kept by their own label (the collector would otherwise take them: no lease holds them).
    await ok(['snapshots', 'label', 'extra-active', 'containerd.io/gc.root=yes'], 'doomed');
    await ok(['snapshots', 'label', 'extra-view', 'containerd.io/gc.root=yes'], 'doomed');
    // One on the other snapshotter: the cascade goes through every one.
    await ok(['snapshots', '--snapshotter', 'native', 'prepare', 'native-active'], 'doomed');
    await ok(['snapshots', '--snapshotter', 'native', 'label', 'native-active', 'containerd.io/gc.root=yes'], 'doomed');
    await ok(['leases', 'create', '--id', 'held', '--expires', '0'], 'doomed');
  }, 180_000);

  afterAll(async () => {
    if (existsSync(join(CGROUPS, 'freezer', ICE))) freezer('THAWED');
    if (d) {
      await cleanupShims(d.address, d.dir);
      await d.cleanup();
    }
    // runc removes a task's own cgroup; the parents it made for ctr's `/<namespace>/<id>` stay.
    for (const path of ['doomed', 'keeper', 'stuck', `${ICE}/ice`, ICE]) removeCgroups(path);
    work.remove();
  }, 60_000);

  it('plain containerd Namespaces.Delete and berth Delete without cascade both refuse a non-empty namespace', async () => {
    const res = await d.ctr(['namespaces', 'rm', 'doomed']);
    expect(res.stderr).toMatch(/namespace "doomed" must be empty, but it still has images, blobs, containers, snapshots on "native" snapshotter, snapshots on "overlayfs" snapshotter: failed precondition/);
    const err = await rejectionOf(admin.delete({ name: 'doomed', cascade: false }));
    expect({ kind: kindOf(err), message: err.message }).toEqual({
      kind: 'failed-precondition',
      message: 'namespace "doomed" must be empty, but it still has images, blobs, containers, snapshots on "native" snapshotter, snapshots on "overlayfs" snapshotter: failed precondition',
    });
    expect(await ok(['namespaces', 'ls', '-q'])).toBe('doomed\nkeeper\n');
  });

  it('explains a kept layer blob as image -> manifest -> layer, and a snapshot from its image', async () => {
    const layer = img.layers[0].digest;
    expect(await gc('keeper').explain({ digest: layer, snapshotter: '', key: '' })).toEqual({
      referenced: true,
      skipped: false,
      keptBy: [{ kind: 'images', id: [BUSYBOX_IMAGE], via: 'root' }],
      chain: [
        { kind: 'images', id: [BUSYBOX_IMAGE], via: 'root' },
        { kind: 'blobs', id: [img.manifest.digest], via: 'target' },
        { kind: 'blobs', id: [layer], via: 'label containerd.io/gc.ref.content.l.0' },
      ],
    });
    const snapshot = await gc('keeper').explain({ digest: '', snapshotter: 'overlayfs', key: img.diffIds[0] });
    expect(snapshot.chain[0]).toEqual({ kind: 'images', id: [BUSYBOX_IMAGE], via: 'root' });
    expect(snapshot.chain.at(-1)).toEqual({ kind: 'snapshots', id: ['overlayfs', img.diffIds[0]], via: 'label containerd.io/gc.ref.snapshot.overlayfs' });
    // A container keeps its own snapshot; a labelled snapshot keeps itself.
    const active = await gc('doomed').explain({ digest: '', snapshotter: 'overlayfs', key: 'sleeper' });
    // Two images name the layer in doomed: both keep it.
    expect((await gc('doomed').explain({ digest: layer, snapshotter: '', key: '' })).keptBy).toEqual([
      { kind: 'images', id: [BUSYBOX_IMAGE], via: 'root' },
      { kind: 'images', id: ['docker.io/library/doomed:extra'], via: 'root' },
    ]);
    expect(active.chain).toEqual([
      { kind: 'containers', id: ['sleeper'], via: 'root' },
      { kind: 'snapshots', id: ['overlayfs', 'sleeper'], via: 'snapshot' },
    ]);
    expect((await gc('doomed').explain({ digest: '', snapshotter: 'overlayfs', key: 'extra-active' })).chain).toEqual([
      { kind: 'snapshots', id: ['overlayfs', 'extra-active'], via: 'root (label containerd.io/gc.root)' },
    ]);
  });

  it('calls a blob nothing references unreferenced, and Collect removes it', async () => {
    const data = 'nobody keeps me\n';
    const digest = `sha256:${createHash('sha256').update(data).digest('hex')}`;
    const res = await d.ctr(['content', 'ingest', '--expected-digest', digest, 'orphan'], { namespace: 'keeper', input: data });
    expect(res.code).toBe(0);
    expect(await gc('keeper').explain({ digest, snapshotter: '', key: '' })).toEqual({ referenced: false, skipped: false, chain: [], keptBy: [] });
    const stats = await gc().collect({});
    expect(stats.removed.blobs).toBeGreaterThanOrEqual(1);
    expect(stats.startedAt).toBeInstanceOf(Date);
    expect(await ok(['content', 'ls', '-q'], 'keeper')).not.toContain(digest);
    expect(await kindOfRejection(gc('keeper').explain({ digest, snapshotter: '', key: '' }))).toBe('not-found');
  });

  it('reports usage per namespace, shared blobs apart, with totals matching du within 1%', async () => {
    // Nothing unreferenced on disk: du sees exactly what the records name.
    await gc().collect({});
    // An ingest in progress in doomed: 5000 bytes of 8000 written, then the writer goes away.
    const writer = d.client(content.ContentService, 'doomed').write();
    const req = (m: Partial<content.WriteContentRequest>): content.WriteContentRequest => ({
      action: content.WriteAction.STAT, ref: 'half-written', total: 8000, expected: '', offset: 0, data: Buffer.alloc(0), labels: {}, ...m,
    });
    writer.write(req({}));
    await writer.read();
    writer.write(req({ action: content.WriteAction.WRITE, data: Buffer.alloc(5000, 7) }));
    expect((await writer.read())?.offset).toBe(5000);
    writer.end();
    while ((await writer.read()) !== undefined);
    const usage = await admin.usage({ name: '' });
    const byName = Object.fromEntries(usage.namespaces.map((n) => [n.name, n]));
    expect(Object.keys(byName).sort()).toEqual(['doomed', 'keeper']);
    expect(byName.keeper.images).toBe(1);
    expect(byName.doomed.images).toBe(2);
    expect(byName.doomed.containers).toBe(1);
    // The same image in both: every blob of keeper is shared with doomed.
    expect(byName.keeper.content!.exclusive!.count).toBe(0);
    expect(byName.keeper.content!.shared!.count).toBe(byName.keeper.content!.total!.count);
    expect(byName.keeper.content!.total!.count).toBeGreaterThanOrEqual(3);
    // doomed: the layer, the container's snapshot, extra-active and extra-view; native-active.
    expect(byName.doomed.snapshots!.total!.count).toBe(5);
    expect(byName.doomed.snapshotters.map((s) => [s.snapshotter, s.snapshots!.total!.count])).toEqual([
      ['native', 1],
      ['overlayfs', 4],
    ]);
    expect(byName.doomed.snapshots!.shared!.count).toBe(0);
    expect(usage.content!.count).toBe(byName.keeper.content!.total!.count);

    // What is counted: each snapshot's own layer (`<id>/fs`, as the snapshotter's Usage measures
    // it: hard links once, the directory's own blocks included) and each blob file. Not counted:
    // the stores' bookkeeping directories (`snapshots/<id>` with its `work`, `blobs/sha256`).
    const overlay = join(d.root, 'io.containerd.snapshotter.v1.overlayfs', 'snapshots');
    const native = join(d.root, 'io.containerd.snapshotter.v1.native', 'snapshots');
    const blobs = join(d.root, 'io.containerd.content.v1.content', 'blobs', 'sha256');
    const du = (paths: string[]) => Number(/^(\d+)\s+total$/m.exec(execFileSync('du', ['-s', '-B1', '-c', ...paths]).toString())![1]);
    // A native snapshot's layer is its directory.
    const layers = [...readdirSync(overlay).map((id) => join(overlay, id, 'fs')), ...readdirSync(native).map((id) => join(native, id))].filter((p) => existsSync(p));
    const blobFiles = readdirSync(blobs).map((f) => join(blobs, f));
    const snapshotsDu = du(layers);
    const contentDu = du(blobFiles);
    expect(Math.abs(usage.snapshots!.bytes - snapshotsDu) / snapshotsDu).toBeLessThan(0.01);
    expect(Math.abs(usage.content!.bytes - contentDu) / contentDu).toBeLessThan(0.01);
    // The whole directories add only their own blocks (a few KiB per snapshot).
    const whole = du([overlay, native, blobs]);
    expect(whole - (snapshotsDu + contentDu)).toBeLessThan(16384 * (layers.length + 1));
    expect(usage.ingests).toEqual({ count: 1, bytes: 5000 });
    expect(byName.doomed.ingests).toEqual({ count: 1, bytes: 5000 });

    const one = await admin.usage({ name: 'keeper' });
    expect(one.namespaces.map((n) => n.name)).toEqual(['keeper']);
    expect(one.namespaces[0]).toEqual(byName.keeper);
  });

  it('cascade-deletes a namespace with a running task, images, snapshots and a lease; the other namespace keeps its blobs and works', async () => {
    expect(shimsOf(d.address).filter((s) => s.namespace === 'doomed')).toHaveLength(1);
    let removed: berthNamespaces.DeleteResponse | undefined;
    const events = await ctrEventsDuring(d, [], async () => {
      removed = await admin.delete({ name: 'doomed', cascade: true });
    });
    expect(removed).toEqual({ tasks: 1, containers: 1, images: 2, leases: 1, snapshots: 5, ingests: 1, blobs: removed!.blobs });
    expect(removed!.blobs).toBeGreaterThanOrEqual(3);
    // The events each subsystem publishes for its removals (the shim's /tasks/exit and
    // /tasks/delete first), children's snapshots before their parent's, the namespace last.
    const lines = events.map((l) => l.split(' ').slice(1, 4).join(' '));
    expect(lines.filter((l) => l.startsWith('doomed /tasks/')).map((l) => l.split(' ')[1])).toEqual(['/tasks/exit', '/tasks/delete']);
    expect(lines.filter((l) => !l.startsWith('doomed /tasks/'))).toEqual([
      'doomed /containers/delete {"id":"sleeper"}',
      `doomed /images/delete {"name":"${BUSYBOX_IMAGE}"}`,
      'doomed /images/delete {"name":"docker.io/library/doomed:extra"}',
      'doomed /snapshot/remove {"key":"native-active"}',
      'doomed /snapshot/remove {"key":"extra-active"}',
      'doomed /snapshot/remove {"key":"extra-view"}',
      'doomed /snapshot/remove {"key":"sleeper"}',
      `doomed /snapshot/remove {"key":"${img.diffIds[0]}"}`,
      ...[img.manifest.digest, img.config.digest, ...img.layers.map((l) => l.digest)].sort().map((digest) => `doomed /content/delete {"digest":"${digest}"}`),
      'doomed /namespaces/delete {"name":"doomed"}',
    ]);

    expect(await ok(['namespaces', 'ls', '-q'])).toBe('keeper\n');
    expect(await ok(['images', 'ls', '-q'], 'doomed')).toBe('');
    expect(await ok(['containers', 'ls', '-q'], 'doomed')).toBe('');
    expect((await ok(['tasks', 'ls'], 'doomed')).trim().split('\n')).toHaveLength(1);
    expect((await ok(['snapshots', 'ls'], 'doomed')).trim().split('\n')).toHaveLength(1);
    expect(await ok(['content', 'ls', '-q'], 'doomed')).toBe('');
    expect(await ok(['leases', 'ls', '-q'], 'doomed')).toBe('');
    expect(shimsOf(d.address).filter((s) => s.namespace === 'doomed')).toEqual([]);

    // keeper's blobs are the same blobs: still there after a collection, and the image runs.
    await gc().collect({});
    const blobs = join(d.root, 'io.containerd.content.v1.content', 'blobs', 'sha256');
    expect(readdirSync(blobs)).toContain(img.layers[0].digest.slice('sha256:'.length));
    expect(await ok(['content', 'ls', '-q'], 'keeper')).toContain(img.layers[0].digest);
    expect(await ok(['run', '--rm', BUSYBOX_IMAGE, 'still-here', 'echo', 'hello'], 'keeper')).toBe('hello\n');

    // Deleting it again: it is gone.
    expect(await kindOfRejection(admin.delete({ name: 'doomed', cascade: true }))).toBe('not-found');
  }, 120_000);

  it('stops at a task that will not die, naming it and what it removed; deleting again finishes once it can', async () => {
    mkdirSync(join(CGROUPS, 'freezer', ICE));
    await ok(['images', 'import', await buildBusyboxImage(work.path)], 'stuck');
    await ok(['run', '-d', '--cgroup', `/${ICE}/ice`, BUSYBOX_IMAGE, 'ice', 'sleep', '1000'], 'stuck');
    // Frozen from its parent cgroup: the task's own state says running, and SIGKILL waits.
    freezer('FROZEN');
    let err: Error;
    try {
      err = await rejectionOf(admin.delete({ name: 'stuck', cascade: true }));
    } finally {
      freezer('THAWED');
    }
    expect(kindOf(err)).toBe('deadline-exceeded');
    expect(err.message).toBe(
      'cascade delete of namespace "stuck" stopped (removed before: nothing; removals are not undone, delete again to finish): ' +
        'removing task ice: task did not exit within 3000 ms of SIGKILL: context deadline exceeded',
    );
    expect(await ok(['namespaces', 'ls', '-q'])).toContain('stuck');
    expect(await ok(['containers', 'ls', '-q'], 'stuck')).toBe('ice\n');

    // The collector is quiet here: what the import left unreferenced is still a blob of the namespace.
    const again = await admin.delete({ name: 'stuck', cascade: true });
    expect(again).toEqual({ tasks: 1, containers: 1, images: 1, leases: 0, snapshots: 2, ingests: 0, blobs: again.blobs });
    expect(again.blobs).toBeGreaterThanOrEqual(3);
    expect(await ok(['namespaces', 'ls', '-q'])).not.toContain('stuck');
    expect(shimsOf(d.address).filter((s) => s.namespace === 'stuck')).toEqual([]);
  }, 120_000);

  it.each([
    ['usage of an unknown namespace', 'not-found', () => admin.usage({ name: 'nope' })],
    ['usage of a malformed namespace name', 'invalid-argument', () => admin.usage({ name: 'Not A Name!' })],
    ['cascade delete of an unknown namespace', 'not-found', () => admin.delete({ name: 'nope', cascade: true })],
    ['plain delete of an unknown namespace', 'not-found', () => admin.delete({ name: 'nope', cascade: false })],
    ['explain of a malformed digest', 'invalid-argument', () => gc('keeper').explain({ digest: 'sha256:xyz', snapshotter: '', key: '' })],
    ['explain on an unknown snapshotter', 'invalid-argument', () => gc('keeper').explain({ digest: '', snapshotter: 'nosuch', key: 'k' })],
    ['explain naming a digest and a snapshot', 'invalid-argument', () => gc('keeper').explain({ digest: 'sha256:' + '0'.repeat(64), snapshotter: 'overlayfs', key: 'k' })],
    ['explain naming nothing', 'invalid-argument', () => gc('keeper').explain({ digest: '', snapshotter: '', key: '' })],
    ['explain without a namespace', 'failed-precondition', () => gc().explain({ digest: 'sha256:' + '0'.repeat(64), snapshotter: '', key: '' })],
    ['explain in an unknown namespace', 'not-found', () => gc('nope').explain({ digest: 'sha256:' + '0'.repeat(64), snapshotter: '', key: '' })],
    ['explain of an absent blob', 'not-found', () => gc('keeper').explain({ digest: 'sha256:' + '0'.repeat(64), snapshotter: '', key: '' })],
    ['explain of an absent snapshot', 'not-found', () => gc('keeper').explain({ digest: '', snapshotter: 'overlayfs', key: 'nothing-here' })],
  ] as const)('%s answers %s', async (_what, kind, call) => {
    expect(await kindOfRejection(call())).toBe(kind);
  });
});
