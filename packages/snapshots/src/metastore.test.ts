import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MetaStore } from './metastore';

const record = (id: number) => ({ id, key: `k${id}`, kind: 'active' as const, parent: '', parentIds: [], labels: {}, created: 0, updated: 0, size: 0, inodes: 0 });

describe('MetaStore', () => {
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'berth-metastore-'))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('shows a commit at once, makes it durable at the next durable(), and keeps it across a reopen', async () => {
    const store = MetaStore.open(join(dir, 'metadata.db'));
    store.transaction((w) => w.put(record(w.allocateId())));
    expect(store.get('k1')?.id).toBe(1);
    await store.durable();
    await store.close();
    const again = MetaStore.open(join(dir, 'metadata.db'));
    try {
      expect(again.get('k1')?.id).toBe(1);
    } finally {
      await again.close();
    }
  });

  it('keeps commits nobody synced when the process is killed (SIGKILL)', () => {
    const script = `
      const { MetaStore } = require(${JSON.stringify(join(__dirname, '..', 'dist', 'metastore.js'))});
      const store = MetaStore.open(process.argv[1]);
      for (let i = 1; i <= 200; i++) store.transaction((w) => w.put({ id: w.allocateId(), key: 'k' + i, kind: 'active', parent: '', parentIds: [], labels: {}, created: 0, updated: 0, size: 0, inodes: 0 }));
      process.kill(process.pid, 'SIGKILL');
    `;
    const res = spawnSync(process.execPath, ['-e', script, join(dir, 'killed.db')], { encoding: 'utf8' });
    expect({ signal: res.signal, stderr: res.stderr }).toEqual({ signal: 'SIGKILL', stderr: '' });
    const store = MetaStore.open(join(dir, 'killed.db'));
    try {
      expect([...store.records()]).toHaveLength(200);
    } finally {
      void store.close();
    }
  });

  // A sync per commit on the event loop stalled berthd 10 to 100 ms under load.
  const strace = spawnSync('strace', ['-V']).status === 0;
  (strace ? it : it.skip)('syncs on a worker thread, never on the committing one (strace)', () => {
    const script = `
      const { MetaStore } = require(${JSON.stringify(join(__dirname, '..', 'dist', 'metastore.js'))});
      const store = MetaStore.open(process.argv[1]);
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 100);
      process.stdout.write('begin\\\\n');
      for (let i = 1; i <= 50; i++) store.transaction((w) => w.put({ id: w.allocateId(), key: 'k' + i, kind: 'active', parent: '', parentIds: [], labels: {}, created: 0, updated: 0, size: 0, inodes: 0 }));
      process.stdout.write('end\\\\n');
      store.durable().then(() => store.close());
    `;
    const log = join(dir, 'strace.log');
    const res = spawnSync('strace', ['-f', '-qq', '-e', 'trace=fdatasync,fsync,msync,write', '-o', log, process.execPath, '-e', script, join(dir, 'traced.db')], { encoding: 'utf8' });
    expect(res.status).toBe(0);
    const lines = readFileSync(log, 'utf8').split('\n');
    const begin = lines.findIndex((l) => l.includes('begin\\\\n'));
    const end = lines.findIndex((l) => l.includes('end\\\\n'));
    const main = Number(lines[begin].split(/\s+/)[0]);
    const syncs = (from: number, to: number) => lines.slice(from, to).filter((l) => /\b(fdatasync|fsync|msync)\(/.test(l));
    expect(syncs(begin, end).filter((l) => Number(l.split(/\s+/)[0]) === main)).toEqual([]);
    expect(syncs(end, lines.length).some((l) => Number(l.split(/\s+/)[0]) !== main)).toBe(true);
  });
});
