import { lstatSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FifoPool } from './fifo-pool';

const isFifo = (p: string) => lstatSync(p).isFIFO() && (lstatSync(p).mode & 0o777) === 0o700;

describe('FifoPool', () => {
  let dir: string;
  let pool: FifoPool | undefined;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'berth-fifo-pool-'));
  });
  afterEach(() => {
    pool?.close();
    pool = undefined;
    rmSync(dir, { recursive: true, force: true });
  });

  it('makes FIFOs of mode 0700 at the paths asked, from FIFOs made ahead, and refills', async () => {
    pool = new FifoPool(join(dir, 'pool'), 4);
    const out = join(dir, 'out');
    mkdirSync(out);
    const paths = Array.from({ length: 10 }, (_v, i) => join(out, `f${i}`));
    await pool.make(paths.slice(0, 3));
    await pool.make(paths.slice(3));
    expect(paths.every(isFifo)).toBe(true);
    expect(readdirSync(out).sort()).toEqual(paths.map((p) => p.slice(out.length + 1)).sort());
    // Nothing used is left in the pool's directory; what is there waits to be used.
    await new Promise((r) => setTimeout(r, 200));
    expect(readdirSync(join(dir, 'pool')).length).toBe(pool.size);
    expect(pool.size).toBeGreaterThan(0);
  });

  it('gives distinct FIFOs to many callers at once', async () => {
    pool = new FifoPool(join(dir, 'pool'), 4);
    const paths = Array.from({ length: 40 }, (_v, i) => join(dir, `c${i}`));
    await Promise.all(paths.map((p) => pool!.make([p])));
    expect(paths.every(isFifo)).toBe(true);
    expect(new Set(paths.map((p) => lstatSync(p).ino)).size).toBe(40);
  });

  it('refuses an existing path (EEXIST) and a missing directory (ENOENT), as mkfifo does, keeping its FIFO', async () => {
    pool = new FifoPool(join(dir, 'pool'), 4);
    writeFileSync(join(dir, 'taken'), 'x');
    await expect(pool.make([join(dir, 'taken')])).rejects.toMatchObject({ code: 'EEXIST' });
    await expect(pool.make([join(dir, 'nowhere', 'f')])).rejects.toMatchObject({ code: 'ENOENT' });
    expect(lstatSync(join(dir, 'taken')).isFile()).toBe(true);
    await pool.make([join(dir, 'then')]);
    expect(isFifo(join(dir, 'then'))).toBe(true);
  });

  it('makes a FIFO on another filesystem with mkfifo(1) (link gives EXDEV)', async () => {
    pool = new FifoPool(join(dir, 'pool'), 4);
    const other = mkdtempSync('/dev/shm/berth-fifo-pool-');
    try {
      await pool.make([join(other, 'x')]);
      expect(isFifo(join(other, 'x'))).toBe(true);
      await expect(pool.make([join(other, 'x')])).rejects.toMatchObject({ code: 'EEXIST' });
    } finally {
      rmSync(other, { recursive: true, force: true });
    }
  });

  it('empties a directory an earlier pool left', async () => {
    const left = join(dir, 'pool');
    mkdirSync(left);
    writeFileSync(join(left, 'stale'), '');
    pool = new FifoPool(left, 2);
    expect(readdirSync(left)).not.toContain('stale');
  });
});
