import { createHash, randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import type { BenchDaemon } from './daemons';
import type { Workload } from './workloads';

/** An OCI archive of one image with `n` small random layers (nothing unpacks them). */
function archive(name: string, n: number): Buffer {
  const dir = mkdtempSync(join(tmpdir(), 'berth-bench-oci-'));
  try {
    mkdirSync(join(dir, 'blobs', 'sha256'), { recursive: true });
    const put = (b: Buffer) => {
      const digest = `sha256:${createHash('sha256').update(b).digest('hex')}`;
      writeFileSync(join(dir, 'blobs', 'sha256', digest.slice(7)), b);
      return { digest, size: b.length };
    };
    const layers = Array.from({ length: n }, () => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar', ...put(randomBytes(16 * 1024)) }));
    const config = { mediaType: 'application/vnd.oci.image.config.v1+json', ...put(Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: layers.map((l) => l.digest) } }))) };
    const manifest = put(Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config, layers })));
    writeFileSync(join(dir, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', ...manifest, annotations: { 'io.containerd.image.name': name } }] }));
    writeFileSync(join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
    return execFileSync('tar', ['-C', dir, '-cf', '-', 'oci-layout', 'index.json', 'blobs'], { maxBuffer: 1 << 30 });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function ctrOk(d: BenchDaemon, args: string[], input?: Buffer): Promise<void> {
  const res = await d.ctr(args, { input });
  if (res.code !== 0) throw new Error(`${d.kind}: ctr ${args.join(' ')} failed: ${res.stderr}`);
}

const LAYERS = 20;
const REPEAT = 5;

export const GC_WORKLOADS: Record<string, Workload> = {
  'gc-rm-sync': {
    name: `ctr images rm --sync of a ${LAYERS}-layer image`,
    unit: 'ms/op',
    lowerIsBetter: true,
    run: async (d) => {
      const times: number[] = [];
      for (let i = 0; i < REPEAT; i++) {
        const name = `bench.example/gc/img:${i}`;
        await ctrOk(d, ['images', 'import', '--no-unpack', '-'], archive(name, LAYERS));
        const listed = (await d.ctr(['content', 'ls', '-q'])).stdout.split('\n').filter(Boolean).length;
        if (listed < LAYERS + 2) throw new Error(`${d.kind}: ${listed} blobs after import`);
        const t0 = performance.now();
        await ctrOk(d, ['images', 'rm', '--sync', name]);
        times.push(performance.now() - t0);
        const left = (await d.ctr(['content', 'ls', '-q'])).stdout.split('\n').filter(Boolean).length;
        if (left !== 0) throw new Error(`${d.kind}: ${left} blobs left after images rm --sync`);
      }
      times.sort((a, b) => a - b);
      return { [`ctr images rm --sync (${LAYERS} layers, blobs only)`]: times[Math.floor(times.length / 2)] };
    },
  },
};
