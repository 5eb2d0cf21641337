/*
 * The daemons the client's tests run against, as one table: berthd (a TestDaemon), Debian's
 * containerd 1.6, and containerd 2.4.2 (for the Transfer API). Not part of the package's build.
 */
import type { BuiltImage } from '@berth/fixtures';
import { RegistryClient, staticHosts } from '@berth/remotes';
import { type CtrResult, ReferenceContainerd, ReferenceContainerd2, TestDaemon, type TestRegistry, cleanupShims } from '@berth/testing';

/** Collections only when a test asks (a sync delete): nothing moves under a comparison. */
const NO_GC = '[plugins."io.containerd.gc.v1.scheduler"]\n  schedule_delay = "1h"\n  startup_delay = "1h"\n  mutation_threshold = 1000000\n';

/** A daemon under test: its socket, its ctr, and its cleanup (shims and mounts included). */
export interface Target {
  name: string;
  address: string;
  dir: string;
  ctr(args: readonly string[], options?: { namespace?: string }): Promise<CtrResult>;
  cleanup(): Promise<void>;
}

type Started = { address: string; dir: string; ctr: Target['ctr']; stop(): Promise<unknown>; cleanup(): Promise<void> };

const target = (name: string, d: Started): Target => ({
  name,
  address: d.address,
  dir: d.dir,
  ctr: (args, options) => d.ctr(args, options),
  // Stop the daemon, then kill what its shims left (and unmount), then remove its directory.
  cleanup: async () => {
    await d.stop().catch(() => undefined);
    await cleanupShims(d.address, d.dir);
    await d.cleanup();
  },
});

/** The daemons that run tasks: berthd and containerd 1.6. */
export const RUNTIME_DAEMONS: Array<[string, () => Promise<Target>]> = [
  ['berthd', async () => target('berthd', await TestDaemon.start({ config: NO_GC }))],
  ['containerd 1.6', async () => target('containerd 1.6', await ReferenceContainerd.start())],
];

/** The daemons that serve the Transfer API: berthd and containerd 2.4.2. */
export const TRANSFER_DAEMONS: Array<[string, () => Promise<Target>]> = [
  ['berthd', async () => target('berthd', await TestDaemon.start({ config: NO_GC }))],
  ['containerd 2.4.2', async () => target('containerd 2.4.2', await ReferenceContainerd2.start())],
];

/** Pushes an image's blobs and manifest into `repo:tag` of a plain-HTTP loopback registry. */
export async function seed(registry: TestRegistry, repo: string, tag: string, img: BuiltImage, auth?: { username: string; secret: string }): Promise<void> {
  const client = new RegistryClient({ hosts: staticHosts({ scheme: 'http' }), credentials: auth && (async () => auth) });
  try {
    const ref = `${registry.host}/${repo}`;
    for (const d of [...img.layers, img.config]) await client.push(ref, d, img.blobs.get(d.digest)!);
    await client.push(`${ref}:${tag}`, img.manifest, img.blobs.get(img.manifest.digest)!);
  } finally {
    await client.close();
  }
}

/**
 * Pushes images into `repo` by digest and an OCI index of them under `tag`, each manifest with
 * its image's platform (from its config).
 */
export async function seedIndex(registry: TestRegistry, repo: string, tag: string, images: BuiltImage[]): Promise<Buffer> {
  const client = new RegistryClient({ hosts: staticHosts({ scheme: 'http' }) });
  try {
    const ref = `${registry.host}/${repo}`;
    const manifests = [];
    for (const img of images) {
      for (const d of [...img.layers, img.config]) await client.push(ref, d, img.blobs.get(d.digest)!);
      await client.push(ref, img.manifest, img.blobs.get(img.manifest.digest)!);
      const config = JSON.parse(img.blobs.get(img.config.digest)!.toString());
      manifests.push({ ...img.manifest, platform: { os: config.os, architecture: config.architecture, ...(config.variant ? { variant: config.variant } : {}) } });
    }
    const index = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests }));
    const digest = `sha256:${require('node:crypto').createHash('sha256').update(index).digest('hex')}`;
    await client.push(`${ref}:${tag}`, { mediaType: 'application/vnd.oci.image.index.v1+json', digest, size: index.length }, index);
    return index;
  } finally {
    await client.close();
  }
}

/** A writable that keeps what it is given, as text. */
export function collector(): { stream: import('node:stream').Writable; text(): string } {
  const { PassThrough } = require('node:stream') as typeof import('node:stream');
  const stream = new PassThrough();
  const chunks: Buffer[] = [];
  stream.on('data', (c: Buffer) => chunks.push(c));
  return { stream, text: () => Buffer.concat(chunks).toString('utf8') };
}
