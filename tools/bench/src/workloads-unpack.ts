import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { buildBusyboxImage, buildGeneratedImage, buildManyFilesImage } from '@berth/fixtures';
import type { BenchDaemon } from './daemons';
import type { Workload } from './workloads';

let fixtureDir: string | undefined;
const built = new Map<string, Promise<string>>();

/** Builds a fixture tar once per bench run (deterministic, so both daemons import the same bytes). */
type FixtureName = 'busybox' | 'generated' | 'many-files';

function fixture(name: FixtureName): Promise<string> {
  if (!fixtureDir) {
    const dir = mkdtempSync(join(tmpdir(), 'berth-bench-images-'));
    process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
    fixtureDir = dir;
  }
  let p = built.get(name);
  if (!p) {
    p = name === 'busybox' ? buildBusyboxImage(fixtureDir)
      : name === 'many-files' ? buildManyFilesImage(fixtureDir, 100_000)
        : buildGeneratedImage(fixtureDir, { layers: 5, totalMiB: 200 });
    built.set(name, p);
  }
  return p;
}

async function ctrOk(d: BenchDaemon, args: string[], namespace: string): Promise<void> {
  const res = await d.ctr(args, { namespace, timeoutMs: 300_000 });
  if (res.code !== 0) throw new Error(`${d.kind}: ctr ${args.join(' ')} failed: ${res.stderr}`);
}

/**
 * `ctr images import` (which unpacks into overlayfs through Diff.Apply) of a tar, timed as the
 * wall time of the ctr command, `n` times per fresh daemon (capped at 3): each repetition imports
 * into a new namespace, so nothing is shared with the previous one and every layer is unpacked.
 */
function importWorkload(image: FixtureName, label: string): Workload {
  return {
    name: `ctr images import ${label} (import + unpack)`,
    unit: 'ms',
    lowerIsBetter: true,
    run: async (d, n) => {
      const tar = await fixture(image);
      const reps = Math.max(1, Math.min(n, 3));
      const times: number[] = [];
      for (let i = 0; i < reps; i++) {
        const ns = `bench-import-${i}`;
        const t0 = performance.now();
        await ctrOk(d, ['images', 'import', tar], ns);
        times.push(performance.now() - t0);
      }
      times.sort((a, b) => a - b);
      return { [`ctr images import ${label}`]: times[Math.floor(times.length / 2)] };
    },
  };
}

/** Import + unpack of a generated 5-layer 200 MiB image, of a layer of 100,000 small files and of the busybox fixture. */
export const UNPACK_WORKLOADS: Record<string, Workload> = {
  'import-generated': importWorkload('generated', 'generated 5 layers 200 MiB'),
  'import-100k-files': importWorkload('many-files', 'one layer of 100,000 files'),
  'import-busybox': importWorkload('busybox', 'busybox'),
};
