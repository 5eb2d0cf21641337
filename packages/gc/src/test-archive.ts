import { createHash, randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/**
 * Builds an OCI image archive (for `ctr images import --no-unpack`) named `name`, with the given
 * layer payloads (any bytes: nothing unpacks them) and a config; returns the tar's bytes and the
 * digests of its blobs.
 */
export function ociArchive(name: string, layers: Buffer[]): { tar: Buffer; manifest: string; config: string; layers: string[] } {
  const dir = mkdtempSync(join(tmpdir(), 'berth-oci-'));
  try {
    mkdirSync(join(dir, 'blobs', 'sha256'), { recursive: true });
    const put = (b: Buffer) => {
      const d = sha(b);
      writeFileSync(join(dir, 'blobs', 'sha256', d.slice(7)), b);
      return { digest: d, size: b.length };
    };
    const layerDescs = layers.map((l) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar', ...put(l) }));
    const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: layerDescs.map((l) => l.digest) } }));
    const configDesc = { mediaType: 'application/vnd.oci.image.config.v1+json', ...put(config) };
    const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: configDesc, layers: layerDescs }));
    const manifestDesc = put(manifest);
    const index = {
      schemaVersion: 2,
      manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', ...manifestDesc, annotations: { 'io.containerd.image.name': name } }],
    };
    writeFileSync(join(dir, 'index.json'), JSON.stringify(index));
    writeFileSync(join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
    const tar = execFileSync('tar', ['-C', dir, '-cf', '-', 'oci-layout', 'index.json', 'blobs'], { maxBuffer: 1 << 30 });
    return { tar, manifest: manifestDesc.digest, config: configDesc.digest, layers: layerDescs.map((l) => l.digest) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Returns `n` distinct small layer payloads. */
export function smallLayers(n: number, size = 4096): Buffer[] {
  return Array.from({ length: n }, () => randomBytes(size));
}
