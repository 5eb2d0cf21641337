import { join } from 'node:path';
import { type BuiltImage, buildImage, busyboxSpec, dir, file, writeOciArchive } from '@berth/fixtures';
import { TestDaemon, tempDir } from '@berth/testing';

/*
 * Imports racing the garbage collector, through the stock ctr against a real berthd. Each import
 * runs under leases that end while other imports and collections run, and relies on content and
 * snapshots it finds already present: those must join its lease, or a collection removes them
 * between "already exists" and their use (`ctr: content digest sha256:...: not found`).
 *
 * BERTH_IMPORT_LOOP_ROUNDS and BERTH_IMPORT_STRESS_SECONDS make the runs longer (defaults 2
 * rounds, 30 s).
 */

const ROUNDS = Number(process.env.BERTH_IMPORT_LOOP_ROUNDS ?? 2);
const STRESS_MS = Number(process.env.BERTH_IMPORT_STRESS_SECONDS ?? 30) * 1000;
const CLIENTS = 4;
const NS = 'race';

/** containerd's defaults: a collection after any deletion when none is pending. */
const DEFAULT_GC = '';
/** A collection after every single deletion, with the largest pause budget containerd allows. */
const EAGER_GC = '[plugins."io.containerd.gc.v1.scheduler"]\npause_threshold = 0.5\ndeletion_threshold = 1\nschedule_delay = "0s"\n';
/** A collection after every write of any kind: collections land anywhere inside an import. */
const CONSTANT_GC = '[plugins."io.containerd.gc.v1.scheduler"]\npause_threshold = 0.5\ndeletion_threshold = 1\nmutation_threshold = 1\nschedule_delay = "0s"\n';

interface Archive {
  path: string;
  tags: string[];
}

/** One row of `ctr images check`: the image's content status and whether it is unpacked. */
interface CheckRow {
  ref: string;
  status: string;
  present: number;
  total: number;
  unpacked: string;
}

function parseCheck(out: string): CheckRow[] {
  const rows: CheckRow[] = [];
  for (const line of out.split('\n').slice(1)) {
    const m = /^(\S+)\s+\S+\s+sha256:[0-9a-f]{64}\s+(\w+) \((\d+)\/(\d+)\)\s.*\s(true|false)\s*$/.exec(line);
    if (m) rows.push({ ref: m[1], status: m[2], present: Number(m[3]), total: Number(m[4]), unpacked: m[5] });
    else if (line.trim()) rows.push({ ref: line, status: 'unparsed', present: 0, total: 0, unpacked: '' });
  }
  return rows;
}

/** Images that share layers: busybox; busybox + one layer; busybox + that layer + another. */
async function overlappingImages(): Promise<BuiltImage[]> {
  const base = busyboxSpec().layers;
  const extra1 = { entries: [dir('opt'), file('opt/one', 'layer one\n')] };
  const extra2 = { entries: [dir('opt'), file('opt/two', 'layer two\n')], compression: 'none' as const };
  return Promise.all([
    buildImage({ name: 'example.com/race:a', layers: base }),
    buildImage({ name: 'example.com/race:b', layers: [...base, extra1] }),
    buildImage({ name: 'example.com/race:c', layers: [...base, extra1, extra2] }),
  ]);
}

describe('imports racing garbage collection (stock ctr, real berthd)', () => {
  const tmp = tempDir('berth-import-race-');
  let archives: Archive[];
  beforeAll(async () => {
    const [a, b, c] = await overlappingImages();
    const write = async (name: string, images: BuiltImage[]) => {
      const path = join(tmp.path, name);
      await writeOciArchive(path, images, { tagsOnly: true });
      return { path, tags: images.map((i) => i.name.split(':').pop()!) };
    };
    archives = [await write('a.tar', [a]), await write('b.tar', [b]), await write('bc.tar', [b, c])];
  });
  afterAll(() => tmp.remove());

  const expectComplete = (rows: CheckRow[], names: string[]) => {
    expect(rows.map((r) => r.ref).sort()).toEqual([...names].sort());
    for (const r of rows) expect({ ref: r.ref, status: r.status, missing: r.total - r.present, unpacked: r.unpacked }).toEqual({ ref: r.ref, status: 'complete', missing: 0, unpacked: 'true' });
  };

  it.each([
    ['the default schedule', DEFAULT_GC],
    ['a collection after every lease deletion', EAGER_GC],
    ['a collection after every write', CONSTANT_GC],
  ])('one archive imported 20 times under new names gives 20 complete images, with %s', async (_what, gcConfig) => {
    for (let round = 0; round < ROUNDS; round++) {
      const d = await TestDaemon.start({ config: gcConfig, logLevel: 'info' });
      try {
        const errors: string[] = [];
        for (let i = 0; i < 20; i++) {
          const r = await d.ctr(['images', 'import', '--base-name', `img${i}`, archives[0].path], { namespace: 'b', timeoutMs: 120_000 });
          if (r.code !== 0) errors.push(r.stderr.trim());
        }
        expect(errors).toEqual([]);
        const names = Array.from({ length: 20 }, (_, i) => `img${i}:a`);
        expect((await d.ctr(['images', 'ls', '-q'], { namespace: 'b' })).stdout.split('\n').filter(Boolean).sort()).toEqual(names.sort());
        expectComplete(parseCheck((await d.ctr(['images', 'check'], { namespace: 'b' })).stdout), names);
      } finally {
        await d.cleanup();
      }
    }
    // 40 imports through ctr and two daemon starts: about 10 s on a quiet machine, and five
    // times that when the machine is busy, which jest's default 60 s did not always cover.
  }, 240_000);

  it(`${CLIENTS} clients importing overlapping images, removing them and collecting: every import completes`, async () => {
    const d = await TestDaemon.start({ config: CONSTANT_GC, logLevel: 'info' });
    try {
      const ctr = (args: string[]) => d.ctr(args, { namespace: NS, timeoutMs: 120_000 });
      const deadline = Date.now() + STRESS_MS;
      const failures: string[] = [];
      const kept = new Set<string>();
      const counts = { imports: 0, removals: 0, syncCollections: 0 };

      const client = async (k: number) => {
        const mine: string[][] = [];
        for (let i = 0; Date.now() < deadline && failures.length === 0; i++) {
          const archive = archives[(k + i) % archives.length];
          const base = `race/c${k}-${i}`;
          const names = archive.tags.map((t) => `${base}:${t}`);
          const r = await ctr(['images', 'import', '--base-name', base, archive.path]);
          counts.imports++;
          if (r.code !== 0) {
            failures.push(`client ${k}, import ${i} of ${archive.path}: ${r.stderr.trim()}`);
            break;
          }
          // Nobody else touches this client's images: each must be complete and unpacked now.
          const rows = parseCheck((await ctr(['images', 'check', ...names.map((n) => `name==${n}`)])).stdout);
          const bad = rows.filter((row) => row.status !== 'complete' || row.present !== row.total || row.unpacked !== 'true');
          if (rows.length !== names.length || bad.length > 0) {
            failures.push(`client ${k}, import ${i}: ctr images check gave ${JSON.stringify(rows)}`);
            break;
          }
          mine.push(names);
          names.forEach((n) => kept.add(n));
          if (i % 3 === 2) {
            const old = mine.shift()!;
            const rm = await ctr(['images', 'rm', ...(i % 2 === 0 ? ['--sync'] : []), ...old]);
            if (rm.code !== 0) failures.push(`client ${k}: ctr images rm ${old.join(' ')}: ${rm.stderr.trim()}`);
            old.forEach((n) => kept.delete(n));
            counts.removals += old.length;
          }
          if (i % 4 === 3) {
            const id = `sync-${k}-${i}`;
            const created = await ctr(['leases', 'create', '--id', id]);
            const removed = await ctr(['leases', 'rm', '--sync', id]);
            if (created.code !== 0 || removed.code !== 0) failures.push(`client ${k}: lease ${id}: ${created.stderr}${removed.stderr}`);
            counts.syncCollections++;
          }
        }
      };
      await Promise.all(Array.from({ length: CLIENTS }, (_, k) => client(k)));
      console.log(`${STRESS_MS / 1000} s, ${CLIENTS} clients: ${counts.imports} imports, ${counts.removals} images removed, ${counts.syncCollections} synchronous collections`);

      expect(failures).toEqual([]);
      expect(counts.imports).toBeGreaterThanOrEqual(CLIENTS * 3);
      // One last collection, then every image left is whole.
      await ctr(['leases', 'create', '--id', 'last']);
      await ctr(['leases', 'rm', '--sync', 'last']);
      expect((await ctr(['images', 'ls', '-q'])).stdout.split('\n').filter(Boolean).sort()).toEqual([...kept].sort());
      expectComplete(parseCheck((await ctr(['images', 'check'])).stdout), [...kept]);
    } finally {
      await d.cleanup();
    }
  }, STRESS_MS + 180_000);
});
