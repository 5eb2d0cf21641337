import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isAlreadyExists, isFailedPrecondition, isInvalidArgument, isNotFound } from '@berth/errdefs';
import { MetadataDb, Mutation } from './db';
import { LmdbNamespaceStore } from './namespace-store';
import { SCHEMA_VERSION, namespaceKey, objectKey, schemaKey } from './schema';

describe('metadata database', () => {
  let dir: string;
  let db: MetadataDb;
  let store: LmdbNamespaceStore;

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'berth-meta-'));
    db = MetadataDb.open(dir);
    store = new LmdbNamespaceStore(db);
  });

  afterEach(async () => {
    await db.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const reopen = async () => {
    await db.close();
    db = MetadataDb.open(dir);
    store = new LmdbNamespaceStore(db);
  };

  describe('transactions', () => {
    it('roll back every write when the function throws', () => {
      expect(() =>
        db.update((tx) => {
          tx.put(['a'], 1);
          tx.put(['b'], 2);
          throw new Error('abort');
        }),
      ).toThrow('abort');
      expect(db.view((tx) => [tx.get(['a']), tx.get(['b'])])).toEqual([undefined, undefined]);
    });

    it('tell listeners after commit only, with whether something was deleted', () => {
      const seen: Mutation[] = [];
      db.onCommit((m) => seen.push(m));
      db.update((tx) => tx.put(['a'], 1));
      db.update((tx) => {
        tx.remove(['a']);
        tx.markDeletion();
      });
      db.update((tx) => {
        tx.put(['b'], 1);
        tx.remove(['b']); // removing a key alone is no deletion
      });
      expect(() => db.update(() => { throw new Error('no'); })).toThrow();
      expect(seen).toEqual([{ deletions: false }, { deletions: true }, { deletions: false }]);
    });

    it('range over a prefix only', () => {
      db.update((tx) => {
        for (const k of [['p', 'a'], ['p', 'b', 'c'], ['pz'], ['q', 'p']]) tx.put(k, k.join('/'));
      });
      expect(db.view((tx) => [...tx.range(['p'])].map((e) => e.value))).toEqual(['p/a', 'p/b/c']);
      expect(db.view((tx) => [tx.hasUnder(['p', 'b']), tx.hasUnder(['p', 'a']), tx.hasUnder(['x'])])).toEqual([true, false, false]);
    });
  });

  describe('group durability', () => {
    let group: MetadataDb;
    let gdir: string;
    beforeEach(() => {
      gdir = mkdtempSync(join(tmpdir(), 'berth-meta-group-'));
      group = MetadataDb.open(gdir, { durability: 'group' });
    });
    afterEach(async () => {
      await group.close();
      rmSync(gdir, { recursive: true, force: true });
    });

    it('makes an update visible at once and durable at the next durable(), one sync for every waiter', async () => {
      expect(group.durability).toBe('group');
      group.update((tx) => tx.put(['a'], 1));
      expect(group.view((tx) => tx.get(['a']))).toBe(1);
      const first = group.durable();
      group.update((tx) => tx.put(['b'], 2));
      const second = group.durable();
      await Promise.all([first, second, group.durable()]);
      // Nothing written since: resolves without a sync.
      let settled = false;
      void group.durable().then(() => (settled = true));
      await Promise.resolve();
      expect(settled).toBe(true);
    });

    it('syncs an update nobody awaits within a moment', async () => {
      group.update((tx) => tx.put(['quiet'], 1));
      expect(group.unsynced).toBeGreaterThan(0);
      for (let i = 0; i < 50 && group.unsynced > 0; i++) await new Promise((r) => setTimeout(r, 20));
      expect(group.unsynced).toBe(0);
    });

    it('rolls back as the commit mode does', () => {
      expect(() =>
        group.update((tx) => {
          tx.put(['x'], 1);
          throw new Error('abort');
        }),
      ).toThrow('abort');
      expect(group.view((tx) => tx.get(['x']))).toBeUndefined();
    });

    // strace shows which thread syncs: the committing thread must not (each sync there stalled
    // berthd's event loop for 10 to 100 ms under load); the grouped sync's worker thread does.
    const strace = spawnSync('strace', ['-V']).status === 0;
    (strace ? it : it.skip)('syncs group updates on a worker thread, never on the committing one (strace)', () => {
      const script = `
        const { MetadataDb } = require(${JSON.stringify(join(__dirname, '..', 'dist', 'index.js'))});
        const db = MetadataDb.open(process.argv[1], { durability: 'group' });
        const sleep = new Int32Array(new SharedArrayBuffer(4));
        // Past the open's own syncs, then a hundred updates with nothing awaiting them.
        Atomics.wait(sleep, 0, 0, 100);
        process.stdout.write('begin\\n');
        for (let i = 0; i < 100; i++) db.update((tx) => tx.put(['k', i], { i }));
        process.stdout.write('end\\n');
        db.durable().then(() => db.close());
      `;
      const log = join(gdir, 'strace.log');
      const res = spawnSync('strace', ['-f', '-qq', '-e', 'trace=fdatasync,fsync,msync,write', '-o', log, process.execPath, '-e', script, join(gdir, 'traced')], { encoding: 'utf8' });
      expect(res.status).toBe(0);
      const lines = readFileSync(log, 'utf8').split('\n');
      const main = Number(lines.find((l) => l.includes('begin\\n'))!.split(/\s+/)[0]);
      const begin = lines.findIndex((l) => l.includes('begin\\n'));
      const end = lines.findIndex((l) => l.includes('end\\n'));
      const syncs = (from: number, to: number) => lines.slice(from, to).filter((l) => /\b(fdatasync|fsync|msync)\(/.test(l));
      expect(syncs(begin, end).filter((l) => Number(l.split(/\s+/)[0]) === main)).toEqual([]);
      // The durable() at the end synced them, on another thread.
      expect(syncs(end, lines.length).some((l) => Number(l.split(/\s+/)[0]) !== main)).toBe(true);
    });

    it('keeps what a process committed, unsynced, when that process is killed (SIGKILL)', () => {
      // A child commits a thousand updates without awaiting durable() and kills itself.
      const script = `
        const { MetadataDb } = require(${JSON.stringify(join(__dirname, '..', 'dist', 'index.js'))});
        const db = MetadataDb.open(${JSON.stringify(join(gdir, 'child'))}, { durability: 'group' });
        for (let i = 0; i < 1000; i++) db.update((tx) => tx.put(['k', i], { i }));
        process.kill(process.pid, 'SIGKILL');
      `;
      const res = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8' });
      expect({ signal: res.signal, stderr: res.stderr }).toEqual({ signal: 'SIGKILL', stderr: '' });
      const reopened = MetadataDb.open(join(gdir, 'child'));
      try {
        expect(reopened.view((tx) => [...tx.range(['k'])].length)).toBe(1000);
      } finally {
        void reopened.close();
      }
    });
  });

  describe('schema', () => {
    it('stamps a new database with the current version', () => {
      expect(db.schemaVersion).toBe(SCHEMA_VERSION);
    });

    it('runs migrations from an older version', async () => {
      db.update((tx) => tx.put(schemaKey(), SCHEMA_VERSION - 1));
      await db.close();
      const ran: number[] = [];
      db = MetadataDb.open(dir, { migrations: [{ from: SCHEMA_VERSION - 1, migrate: (tx) => { ran.push(1); tx.put(['migrated'], true); } }] });
      expect(ran).toEqual([1]);
      expect(db.schemaVersion).toBe(SCHEMA_VERSION);
      expect(db.view((tx) => tx.get(['migrated']))).toBe(true);
    });

    it('refuses a database from a newer berthd', async () => {
      db.update((tx) => tx.put(schemaKey(), SCHEMA_VERSION + 1));
      await db.close();
      expect(() => (db = MetadataDb.open(dir))).toThrow(/newer than this berthd understands/);
      db = MetadataDb.open(join(dir, 'other'));
    });
  });

  describe('namespace store', () => {
    it('creates, labels and lists namespaces in name order', async () => {
      await store.create('foo', { a: 'b' });
      await store.create('bar');
      expect(await store.list()).toEqual(['bar', 'foo']);
      expect(await store.labels('foo')).toEqual({ a: 'b' });
      await store.setLabel('foo', 'a', 'c');
      await store.setLabel('foo', 'x', 'y');
      expect(await store.labels('foo')).toEqual({ a: 'c', x: 'y' });
      await store.setLabel('foo', 'a', '');
      expect(await store.labels('foo')).toEqual({ x: 'y' });
      await store.replaceLabels('foo', { n: '1' });
      expect(await store.labels('foo')).toEqual({ n: '1' });
    });

    it('answers an unknown namespace with empty labels', async () => {
      expect(await store.labels('nothing')).toEqual({});
    });

    it('refuses a duplicate with AlreadyExists', async () => {
      await store.create('default');
      const err = await store.create('default').catch((e) => e);
      expect(isAlreadyExists(err)).toBe(true);
      expect(err.message).toBe('namespace "default": already exists');
    });

    it.each(['a/b', 'Bad!', '', 'x'.repeat(77)])('refuses the name %p with InvalidArgument', async (name) => {
      const err = await store.create(name).catch((e) => e);
      expect(isInvalidArgument(err)).toBe(true);
      expect(await store.list()).toEqual([]);
    });

    it('refuses oversized labels', async () => {
      const err = await store.create('ns', { k: 'v'.repeat(4096) }).catch((e) => e);
      expect(isInvalidArgument(err)).toBe(true);
      expect(err.message).toBe('label key and value greater than maximum size (4096 bytes), key: k: invalid argument');
    });

    it('creates a namespace implicitly on its first label', async () => {
      await store.setLabel('implicit', 'k', 'v');
      expect(await store.list()).toEqual(['implicit']);
    });

    it('deletes an empty namespace and answers NotFound after', async () => {
      await store.create('gone');
      await store.delete('gone');
      expect(await store.list()).toEqual([]);
      const err = await store.delete('gone').catch((e) => e);
      expect(isNotFound(err)).toBe(true);
      expect(err.message).toBe('namespace "gone": not found');
    });

    it('refuses to delete a namespace that still holds objects, naming them', async () => {
      await store.create('busy');
      db.update((tx) => {
        tx.put(objectKey('busy', 'images', 'docker.io/library/busybox:latest'), {});
        tx.put(objectKey('busy', 'blobs', 'sha256:00'), {});
        tx.put(objectKey('busy', 'snapshots', 'overlayfs', 'k'), {});
      });
      const err = await store.delete('busy').catch((e) => e);
      expect(isFailedPrecondition(err)).toBe(true);
      expect(err.message).toBe(
        'namespace "busy" must be empty, but it still has images, blobs, snapshots on "overlayfs" snapshotter: failed precondition',
      );
      expect(db.view((tx) => tx.has(namespaceKey('busy')))).toBe(true);
    });

    it('keeps every namespace and label across a reopen', async () => {
      await store.create('a', { one: '1' });
      await store.setLabel('b', 'two', '2');
      await reopen();
      expect(await store.list()).toEqual(['a', 'b']);
      expect(await store.labels('a')).toEqual({ one: '1' });
      expect(await store.labels('b')).toEqual({ two: '2' });
    });
  });
});
