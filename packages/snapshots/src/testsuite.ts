/**
 * The conformance suite every {@link Snapshotter} runs, with real mounts (tests run as root):
 * `runSnapshotterSuite('overlayfs', makeFixture)` inside a jest test file. It uses jest globals,
 * which is why it is its own entry point (`@berth/snapshots/testsuite`).
 */
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Context } from '@berth/context';
import { GrpcCode, toGrpcStatus } from '@berth/errdefs';
import { withTempMount } from '@berth/mount';
import type { Info, Snapshotter } from './types';

/** One snapshotter under test, made fresh for every test group. */
export interface SnapshotterFixture {
  snapshotter: Snapshotter;
  /** The context every call uses (a namespace for the metadata layer). */
  ctx: Context;
  /** Closes the snapshotter and removes everything the fixture created. */
  cleanup(): Promise<void>;
  /** Closes the snapshotter and opens a new one over the same storage; required unless the suite is told `{ reopen: false }`. */
  reopen?(): Promise<Snapshotter>;
}

export interface SnapshotterSuiteOptions {
  /** How many layers the deep-chain test stacks (default 150). */
  chainDepth?: number;
  /**
   * Whether the fixtures can reopen the snapshotter (default true). With false the reopen test
   * is reported as skipped; with true a fixture without `reopen` fails it.
   */
  reopen?: boolean;
}

async function expectError(p: Promise<unknown>, code: GrpcCode, message?: RegExp | string): Promise<void> {
  const err = await p.then(
    () => {
      throw new Error('expected a rejection');
    },
    (e: unknown) => e,
  );
  const status = toGrpcStatus(err);
  expect({ code: GrpcCode[status.code], message: status.details }).toEqual({
    code: GrpcCode[code],
    message: message === undefined ? expect.any(String) : typeof message === 'string' ? message : expect.stringMatching(message),
  });
}

/** Registers the conformance tests for a snapshotter implementation. */
export function runSnapshotterSuite(name: string, makeFixture: () => Promise<SnapshotterFixture>, options: SnapshotterSuiteOptions = {}): void {
  const depth = options.chainDepth ?? 150;
  // Chosen at definition time, so a snapshotter that cannot reopen reports a skip, never a pass.
  const withReopen = options.reopen === false ? it.skip : it;
  const reopenNote = options.reopen === false ? ' (skipped: the fixture cannot reopen the snapshotter)' : '';

  describe(`${name}: snapshotter conformance`, () => {
    let fx: SnapshotterFixture;
    let sn: Snapshotter;
    let ctx: Context;

    beforeEach(async () => {
      fx = await makeFixture();
      sn = fx.snapshotter;
      ctx = fx.ctx;
    });
    afterEach(async () => {
      await fx.cleanup();
    });

    /** Mounts an active snapshot or view, runs fn on it, always unmounts. */
    const onMount = async <T>(key: string, fn: (dir: string) => T | Promise<T>) => withTempMount(await sn.mounts(ctx, key), fn);

    /** Prepares `key` over `parent`, writes files through its mount, commits it as `name`. */
    async function layer(name: string, parent: string, files: Record<string, string>, remove: string[] = []): Promise<void> {
      const key = `${name}-active`;
      await sn.prepare(ctx, key, parent);
      await onMount(key, (dir) => {
        for (const [f, data] of Object.entries(files)) {
          mkdirSync(join(dir, f, '..'), { recursive: true });
          writeFileSync(join(dir, f), data);
        }
        for (const f of remove) rmSync(join(dir, f), { recursive: true });
      });
      await sn.commit(ctx, name, key);
    }

    it('writes through an active mount, commits, and shows the layer read-only in a view', async () => {
      await layer('base', '', { 'etc/hostname': 'berth\n', 'bin/tool': 'x'.repeat(5000) });
      const info = await sn.stat(ctx, 'base');
      expect(info).toEqual({ name: 'base', parent: '', kind: 'committed', labels: {}, created: expect.any(Date), updated: expect.any(Date) });
      await expectError(sn.stat(ctx, 'base-active'), GrpcCode.NOT_FOUND, 'snapshot base-active does not exist: not found');

      await sn.view(ctx, 'v', 'base');
      expect((await sn.stat(ctx, 'v')).kind).toBe('view');
      await onMount('v', (dir) => {
        expect(readFileSync(join(dir, 'etc/hostname'), 'utf8')).toBe('berth\n');
        expect(() => writeFileSync(join(dir, 'new'), 'n')).toThrow(/EROFS/);
      });
    });

    it('stacks layers: a child sees its parent, deletes in the child do not touch the parent', async () => {
      await layer('l1', '', { a: '1', b: 'b1', 'd/x': 'x' });
      await layer('l2', 'l1', { c: '2', a: 'a2' }, ['b', 'd']);
      await sn.prepare(ctx, 'work', 'l2');
      await onMount('work', (dir) => {
        expect(readdirSync(dir).sort()).toEqual(['a', 'c']);
        expect(readFileSync(join(dir, 'a'), 'utf8')).toBe('a2');
        writeFileSync(join(dir, 'w'), 'w');
      });
      await sn.view(ctx, 'v1', 'l1');
      await onMount('v1', (dir) => {
        expect(readdirSync(dir).sort()).toEqual(['a', 'b', 'd']);
        expect(readFileSync(join(dir, 'a'), 'utf8')).toBe('1');
        expect(existsSync(join(dir, 'w'))).toBe(false);
      });
      await sn.view(ctx, 'v2', 'l2');
      await onMount('v2', (dir) => expect(readdirSync(dir).sort()).toEqual(['a', 'c']));
      expect((await sn.stat(ctx, 'work')).parent).toBe('l2');
      expect((await sn.stat(ctx, 'l2')).parent).toBe('l1');
    });

    it('an empty view and a parentless active snapshot mount', async () => {
      await sn.view(ctx, 'empty', '');
      await onMount('empty', (dir) => {
        expect(readdirSync(dir)).toEqual([]);
        expect(() => writeFileSync(join(dir, 'x'), 'x')).toThrow(/EROFS/);
      });
      await sn.prepare(ctx, 'scratch', '');
      await onMount('scratch', (dir) => writeFileSync(join(dir, 'x'), 'x'));
    });

    it('answers errors as containerd', async () => {
      await layer('p', '', { f: 'f' });
      await sn.prepare(ctx, 'a', 'p');
      await sn.view(ctx, 'v', 'p');
      await expectError(sn.prepare(ctx, 'a', ''), GrpcCode.ALREADY_EXISTS);
      await expectError(sn.prepare(ctx, 'b', 'nope'), GrpcCode.NOT_FOUND);
      await expectError(sn.prepare(ctx, 'b', 'a'), GrpcCode.INVALID_ARGUMENT, /^failed to create snapshot: parent ".*a" is not committed snapshot: invalid argument$/);
      await expectError(sn.view(ctx, 'b', 'v'), GrpcCode.INVALID_ARGUMENT, /is not committed snapshot/);
      await expectError(sn.commit(ctx, 'c', 'v'), GrpcCode.FAILED_PRECONDITION, /^failed to commit snapshot: snapshot ".*v" is not active: failed precondition$/);
      await expectError(sn.commit(ctx, 'c', 'p'), GrpcCode.FAILED_PRECONDITION, /is not active/);
      await expectError(sn.commit(ctx, 'p', 'a'), GrpcCode.ALREADY_EXISTS);
      await expectError(sn.commit(ctx, 'c', 'missing'), GrpcCode.NOT_FOUND);
      await expectError(sn.mounts(ctx, 'p'), GrpcCode.FAILED_PRECONDITION, /^failed to get (active|snapshot) mount: requested snapshot .*p not active or view: failed precondition$/);
      await expectError(sn.mounts(ctx, 'missing'), GrpcCode.NOT_FOUND);
      await expectError(sn.remove(ctx, 'p'), GrpcCode.FAILED_PRECONDITION, /cannot remove snapshot with child: failed precondition$/);
      await expectError(sn.remove(ctx, 'missing'), GrpcCode.NOT_FOUND);
      await expectError(sn.usage(ctx, 'missing'), GrpcCode.NOT_FOUND);
      await expectError(sn.update(ctx, { name: 'p', labels: {} }, ['parent']), GrpcCode.INVALID_ARGUMENT, /cannot update "parent" field on snapshot "p"/);
      // Nothing above changed anything.
      const names: string[] = [];
      await sn.walk(ctx, (i) => void names.push(i.name));
      expect(names.map((n) => n.replace(/^.*\//, '')).sort()).toEqual(['a', 'p', 'v']);
      await sn.remove(ctx, 'a');
      await sn.remove(ctx, 'v');
      await sn.remove(ctx, 'p');
      await expectError(sn.stat(ctx, 'p'), GrpcCode.NOT_FOUND);
    });

    it('keeps keys that look like paths or are 4 KiB long as plain keys', async () => {
      const keys = ['../../etc', '/abs/../x', 'k'.repeat(4096), 'ü'.repeat(1500), 'a b\tc'];
      for (const k of keys) {
        await sn.prepare(ctx, k, '');
        await onMount(k, (dir) => writeFileSync(join(dir, 'f'), k));
      }
      const seen: string[] = [];
      await sn.walk(ctx, (i) => void seen.push(i.name));
      expect(seen.sort()).toEqual([...keys].sort());
      await sn.commit(ctx, 'k'.repeat(4000) + 'c', 'k'.repeat(4096));
      expect((await sn.stat(ctx, 'k'.repeat(4000) + 'c')).kind).toBe('committed');
      await expectError(sn.stat(ctx, 'k'.repeat(4096)), GrpcCode.NOT_FOUND);
      for (const k of keys.filter((k) => k !== 'k'.repeat(4096))) await sn.remove(ctx, k);
      await sn.remove(ctx, 'k'.repeat(4000) + 'c');
    });

    it('updates labels: one key, all of them, deletes with empty values', async () => {
      await sn.prepare(ctx, 'l', '', { labels: { a: '1', b: '2' } });
      expect((await sn.stat(ctx, 'l')).labels).toEqual({ a: '1', b: '2' });
      const before = (await sn.stat(ctx, 'l')).updated;
      await new Promise((r) => setTimeout(r, 5));
      let info = await sn.update(ctx, { name: 'l', labels: { a: 'x', c: '3', z: 'ignored' } }, ['labels.a', 'labels.c', 'labels.b']);
      expect(info.labels).toEqual({ a: 'x', c: '3' });
      expect(info.updated.getTime()).toBeGreaterThan(before.getTime());
      info = await sn.update(ctx, { name: 'l', labels: { only: 'one' } });
      expect(info.labels).toEqual({ only: 'one' });
      info = await sn.update(ctx, { name: 'l', labels: { n: 'm' } }, ['labels']);
      expect((await sn.stat(ctx, 'l')).labels).toEqual({ n: 'm' });
    });

    it('walks in key order with filters on kind, name, parent and labels', async () => {
      await layer('c1', '', { f: '1' });
      await sn.prepare(ctx, 'b-active', 'c1', { labels: { role: 'work' } });
      await sn.view(ctx, 'a-view', 'c1');
      const walk = async (...filters: string[]) => {
        const out: Info[] = [];
        await sn.walk(ctx, (i) => void out.push(i), filters);
        return out.map((i) => i.name.replace(/^.*\/\d+\//, ''));
      };
      const all = await walk();
      expect(all).toEqual(all.slice().sort());
      expect(new Set(all)).toEqual(new Set(['a-view', 'b-active', 'c1']));
      expect(await walk('kind==committed')).toEqual(['c1']);
      expect(await walk('kind==view', 'kind==active')).toHaveLength(2);
      expect(await walk('labels.role==work')).toEqual(['b-active']);
      expect(await walk('labels.role')).toEqual(['b-active']);
      expect(await walk('kind!=committed,labels.role')).toEqual(['b-active']);
      await expectError(walk('name=='), GrpcCode.INVALID_ARGUMENT);
    });

    it('measures usage: active upper dirs live, committed at commit, views as zero', async () => {
      await sn.prepare(ctx, 'u', '');
      const empty = await sn.usage(ctx, 'u');
      expect(empty.inodes).toBe(1);
      await onMount('u', (dir) => {
        writeFileSync(join(dir, 'big'), Buffer.alloc(100_000, 1));
        mkdirSync(join(dir, 'd'));
        writeFileSync(join(dir, 'd', 'small'), 'x');
      });
      const used = await sn.usage(ctx, 'u');
      expect(used.inodes).toBe(4);
      expect(used.size).toBeGreaterThanOrEqual(empty.size + 100_000);
      expect(used.size % 512).toBe(0);
      await sn.commit(ctx, 'uc', 'u');
      expect(await sn.usage(ctx, 'uc')).toEqual(used);
      await sn.view(ctx, 'uv', 'uc');
      expect(await sn.usage(ctx, 'uv')).toEqual({ size: 0, inodes: 0 });
    });

    it(`mounts a chain of ${depth} layers`, async () => {
      let parent = '';
      for (let i = 1; i <= depth; i++) {
        const name = `layer-${String(i).padStart(3, '0')}`;
        await layer(name, parent, { [`f${i}`]: String(i), top: String(i) });
        parent = name;
      }
      await sn.prepare(ctx, 'container', parent);
      await onMount('container', (dir) => {
        expect(readdirSync(dir)).toHaveLength(depth + 1);
        expect(readFileSync(join(dir, 'top'), 'utf8')).toBe(String(depth));
        expect(readFileSync(join(dir, 'f1'), 'utf8')).toBe('1');
        writeFileSync(join(dir, 'mine'), 'm');
      });
      await sn.view(ctx, 'deep-view', parent);
      await onMount('deep-view', (dir) => expect(readdirSync(dir)).toHaveLength(depth + 1));
    }, 120_000);

    withReopen(`keeps committed snapshots across a reopen${reopenNote}`, async () => {
      if (!fx.reopen) throw new Error('the fixture has no reopen(): give it one, or run the suite with { reopen: false }');
      await layer('keep', '', { k: 'v' });
      await sn.prepare(ctx, 'child', 'keep');
      sn = await fx.reopen();
      expect((await sn.stat(ctx, 'keep')).kind).toBe('committed');
      expect((await sn.stat(ctx, 'child')).parent).toBe('keep');
      await sn.view(ctx, 'kv', 'keep');
      await onMount('kv', (dir) => expect(readFileSync(join(dir, 'k'), 'utf8')).toBe('v'));
    });
  });
}
