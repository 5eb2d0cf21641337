/**
 * Manual benchmark (not a test): applyLayer vs GNU `tar -xzf` on two generated ~200 MiB gzip
 * layers, one of many small files and one of a few big files.
 *   node -r esbuild-register packages/diff/scripts/bench-apply.ts [workdir] [extract-dir]
 * The layers are generated once in workdir; extract-dir (default workdir) may be a tmpfs, to
 * take the disk's file-creation latency out of the comparison.
 */
import { execFileSync } from 'node:child_process';
import { randomFillSync } from 'node:crypto';
import * as fs from 'node:fs';
import { join } from 'node:path';
// The compiled package (run `npx tsc -b packages/diff` first), not the esbuild-transpiled sources.
import { applyLayer } from '../dist/apply';

const work = process.argv[2] ?? '/tmp/berth-diff-bench';
const extractDir = process.argv[3] ?? work;
const MiB = 1 << 20;

function generate(name: string, files: number, size: number): string {
  const layer = join(work, `${name}.tar.gz`);
  if (fs.existsSync(layer)) return layer;
  const src = join(work, `${name}-src`);
  fs.rmSync(src, { recursive: true, force: true });
  const buf = Buffer.alloc(size);
  for (let i = 0; i < files; i++) {
    const d = join(src, `d${Math.floor(i / 500)}`, `e${Math.floor(i / 50) % 10}`);
    if (i % 50 === 0) fs.mkdirSync(d, { recursive: true });
    // Half random, half zeros: gzip gets about 2:1, like real binaries.
    randomFillSync(buf, 0, size >> 1);
    fs.writeFileSync(join(d, `f${i}`), buf);
  }
  execFileSync('tar', ['-C', src, '-czf', layer, '.']);
  fs.rmSync(src, { recursive: true, force: true });
  return layer;
}

function time<T>(fn: () => T): Promise<[number, Awaited<T>]> {
  const t = process.hrtime.bigint();
  return Promise.resolve(fn()).then((r) => [Number(process.hrtime.bigint() - t) / 1e9, r]);
}

async function main() {
  fs.mkdirSync(work, { recursive: true });
  const layers = [
    { name: 'small', path: generate('small', 100_000, 4096) }, // 100k files of 4 KiB
    { name: 'big', path: generate('big', 8, 50 * MiB) }, // 8 files of 50 MiB
  ];
  for (const l of layers) {
    const gz = fs.statSync(l.path).size;
    const results: Record<string, number[]> = { berth: [], tar: [] };
    for (let round = 0; round < 2; round++) {
      for (const who of ['tar', 'berth'] as const) {
        const root = join(extractDir, `root-${who}`);
        fs.rmSync(root, { recursive: true, force: true });
        fs.mkdirSync(root);
        execFileSync('sync');
        const [s] = await time(() => who === 'tar'
          ? execFileSync('tar', ['-xzpf', l.path, '-C', root])
          : applyLayer(root, fs.createReadStream(l.path, { highWaterMark: 1 * MiB })));
        results[who].push(s);
        fs.rmSync(root, { recursive: true, force: true });
      }
    }
    const best = (a: number[]) => Math.min(...a);
    console.log(`${l.name}: ${(gz / MiB).toFixed(0)} MiB gzip; berth ${best(results.berth).toFixed(2)} s, tar -xzpf ${best(results.tar).toFixed(2)} s, ratio ${(best(results.berth) / best(results.tar)).toFixed(2)}x`);
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
