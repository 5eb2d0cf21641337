import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { context } from '@berth/context';
import { unmountAll } from '@berth/mount';
import { tempDir } from '@berth/testing';
import { LocalSnapshotter } from './local';
import { NativeSnapshotter } from './native';
import { OverlaySnapshotter } from './overlay';
import { runSnapshotterSuite, SnapshotterFixture } from './testsuite';

function backendFixture(open: (root: string) => LocalSnapshotter): () => Promise<SnapshotterFixture> {
  return async () => {
    const dir = tempDir('berth-snap-');
    let sn = open(join(dir.path, 'root'));
    return {
      get snapshotter() {
        return sn;
      },
      ctx: context(),
      reopen: async () => {
        await sn.close();
        sn = open(join(dir.path, 'root'));
        return sn;
      },
      cleanup: async () => {
        await unmountAll(dir.path, { lazyFallback: true });
        await sn.close();
        dir.remove();
      },
    };
  };
}

runSnapshotterSuite('overlayfs', backendFixture((root) => OverlaySnapshotter.open(root)));
runSnapshotterSuite('native', backendFixture((root) => NativeSnapshotter.open(root)));

describe('overlayfs snapshotter specifics', () => {
  const dir = tempDir('berth-overlay-');
  const root = join(dir.path, 'io.containerd.snapshotter.v1.overlayfs');
  const ctx = context();
  let sn: OverlaySnapshotter;
  beforeAll(() => (sn = OverlaySnapshotter.open(root, { indexOff: true })));
  afterAll(async () => {
    await sn.close();
    dir.remove();
  });
  const s = (id: number, sub = 'fs') => join(root, 'snapshots', String(id), sub);

  it('returns mounts exactly as containerd', async () => {
    expect(await sn.prepare(ctx, 'a1', '')).toEqual([{ type: 'bind', source: s(1), target: '', options: ['rw', 'rbind'] }]);
    await sn.commit(ctx, 'c1', 'a1');
    expect(await sn.prepare(ctx, 'a2', 'c1')).toEqual([
      { type: 'overlay', source: 'overlay', target: '', options: ['index=off', `workdir=${s(2, 'work')}`, `upperdir=${s(2)}`, `lowerdir=${s(1)}`] },
    ]);
    expect(await sn.view(ctx, 'v1', 'c1')).toEqual([{ type: 'bind', source: s(1), target: '', options: ['ro', 'rbind'] }]);
    await sn.commit(ctx, 'c2', 'a2');
    expect(await sn.view(ctx, 'v2', 'c2')).toEqual([{ type: 'overlay', source: 'overlay', target: '', options: ['index=off', `lowerdir=${s(2)}:${s(1)}`] }]);
    expect(await sn.view(ctx, 'v0', '')).toEqual([{ type: 'bind', source: s(5), target: '', options: ['ro', 'rbind'] }]);
    expect(readdirSync(join(root, 'snapshots')).sort()).toEqual(['1', '2', '3', '4', '5']);
    expect(readdirSync(join(root, 'snapshots', '3'))).toEqual(['fs']);
  });

  it('reclaims directories on remove, and cleanup removes only what no record owns', async () => {
    await sn.remove(ctx, 'v0');
    expect(existsSync(join(root, 'snapshots', '5'))).toBe(false);
    mkdirSync(join(root, 'snapshots', 'new-crash'));
    mkdirSync(join(root, 'snapshots', 'rm-9'));
    mkdirSync(join(root, 'snapshots', '77', 'fs'), { recursive: true });
    writeFileSync(join(root, 'snapshots', 'not-ours'), '');
    expect((await sn.cleanup(ctx)).directories.sort()).toEqual(['77', 'new-crash', 'rm-9']);
    expect(readdirSync(join(root, 'snapshots')).sort()).toEqual(['1', '2', '3', '4', 'not-ours']);
  });

  it('replaces an unrecorded directory that has the next id (left by a crash mid-create)', async () => {
    const next = 6;
    mkdirSync(join(root, 'snapshots', String(next), 'fs'), { recursive: true });
    writeFileSync(join(root, 'snapshots', String(next), 'fs', 'stale'), '');
    await sn.prepare(ctx, 'fresh', '');
    expect(readdirSync(s(next))).toEqual([]);
  });
});

describe('native snapshotter specifics', () => {
  const dir = tempDir('berth-native-');
  const root = join(dir.path, 'io.containerd.snapshotter.v1.native');
  const ctx = context();
  let sn: NativeSnapshotter;
  beforeAll(() => (sn = NativeSnapshotter.open(root)));
  afterAll(async () => {
    await sn.close();
    dir.remove();
  });
  const s = (id: number) => join(root, 'snapshots', String(id));

  it('returns mounts exactly as containerd and copies on prepare', async () => {
    expect(await sn.prepare(ctx, 'n1', '')).toEqual([{ type: 'bind', source: s(1), target: '', options: ['rbind', 'rw'] }]);
    writeFileSync(join(s(1), 'f'), 'data');
    await sn.commit(ctx, 'nc1', 'n1');
    expect(await sn.prepare(ctx, 'n2', 'nc1')).toEqual([{ type: 'bind', source: s(2), target: '', options: ['rbind', 'rw'] }]);
    expect(readdirSync(s(2))).toEqual(['f']);
    expect(await sn.view(ctx, 'nv', 'nc1')).toEqual([{ type: 'bind', source: s(1), target: '', options: ['rbind', 'ro'] }]);
    expect(await sn.view(ctx, 'nv0', '')).toEqual([{ type: 'bind', source: s(4), target: '', options: ['rbind', 'ro'] }]);
    expect(readdirSync(join(root, 'snapshots')).sort()).toEqual(['1', '2', '4']);
  });
});
