/*
 * Test support for the side-by-side tests with ctr and a registry (not part of the package's
 * build): seeding the registry, and reading ctr's listings in a comparable form.
 */
import type { BuiltImage } from '@berth/fixtures';
import { RegistryClient, staticHosts } from '@berth/remotes';
import type { CtrResult, TestRegistry } from '@berth/testing';

/** Collections only when a test asks (a sync delete): nothing moves under a comparison. */
export const NO_GC = '[plugins."io.containerd.gc.v1.scheduler"]\n  schedule_delay = "1h"\n  startup_delay = "1h"\n  mutation_threshold = 1000000\n';

export interface Credentials {
  username: string;
  secret: string;
}

/** A client of the test registry (plain HTTP on loopback), with credentials when given. */
export function registryClient(auth?: Credentials): RegistryClient {
  return new RegistryClient({ hosts: staticHosts({ scheme: 'http' }), credentials: auth && (async () => auth) });
}

/** Pushes an image's blobs and manifest into `repo` (the manifest under `tag`, or by digest without one). */
export async function seed(registry: TestRegistry, repo: string, tag: string | undefined, img: BuiltImage, auth?: Credentials): Promise<void> {
  const client = registryClient(auth);
  try {
    const ref = `${registry.host}/${repo}`;
    for (const d of [...img.layers, img.config]) await client.push(ref, d, img.blobs.get(d.digest)!);
    await client.push(tag ? `${ref}:${tag}` : ref, img.manifest, img.blobs.get(img.manifest.digest)!);
  } finally {
    await client.close();
  }
}

/** `ctr images ls` rows, columns joined: name, type, digest, size, platforms, labels. */
export function imageRows(out: string): string[] {
  return out.trim().split('\n').slice(1).map((l) => l.trim().split(/\s{2,}|\t+/).join(' | ')).sort();
}

/** `ctr content ls` rows without the AGE column, labels sorted (ctr prints a Go map, in random order). */
export function contentRows(out: string): string[] {
  return out
    .trim()
    .split('\n')
    .slice(1)
    .map((l) => l.trim().split(/\s{2,}|\t+/))
    .map(([digest, size, , labels = '']) => [digest, size, labels.split(',').sort().join(',')].join(' | '))
    .sort();
}

/** ctr's output when it exited 0; throws with its stderr otherwise. */
export function ok(r: CtrResult, what: string): string {
  if (r.code !== 0) throw new Error(`${what}: exit ${r.code}: ${r.stderr}`);
  return r.stdout;
}
