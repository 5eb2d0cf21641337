/*
 * Test support for the crictl tests (not part of the package's build): a loopback registry with
 * busybox-based images, the hosts.toml that mirrors docker.io to it, and the CRI config that
 * points a daemon (berthd or containerd 1.6) at temp directories only.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type BuiltImage, buildImage, busyboxSpec, pauseImage } from '@berth/fixtures';
import { RegistryClient, staticHosts } from '@berth/remotes';
import { TestRegistry, tempDir } from '@berth/testing';

/** One image in the test registry. */
export interface SeededImage {
  /** Repository path in the registry (`library/busybox`). */
  repo: string;
  tag: string;
  image: BuiltImage;
}

/** A registry with images, and the directories a CRI config points at. */
export interface CriWorld {
  registry: TestRegistry;
  dir: string;
  /** `registry.config_path`: docker.io mirrored to the registry (and nowhere else). */
  hostsDir: string;
  /** `cni.conf_dir`, empty at first. */
  confDir: string;
  busybox: SeededImage;
  /** USER 1002 (uid 1002). */
  userUid: SeededImage;
  /** USER www-data:1004 (username www-data). */
  userName: SeededImage;
  /** The CRI plugin's config section for a daemon of this world. */
  criConfig: string;
  cleanup(): Promise<void>;
}

/** Pushes an image's blobs and manifest into the registry (with basic credentials when given). */
export async function push(registry: TestRegistry, s: SeededImage, auth?: { username: string; secret: string }): Promise<void> {
  const client = new RegistryClient({ hosts: staticHosts({ scheme: 'http' }), credentials: auth && (async () => auth) });
  try {
    const ref = `${registry.host}/${s.repo}`;
    for (const d of [...s.image.layers, s.image.config]) await client.push(ref, d, s.image.blobs.get(d.digest)!);
    await client.push(`${ref}:${s.tag}`, s.image.manifest, s.image.blobs.get(s.image.manifest.digest)!);
  } finally {
    await client.close();
  }
}

/** Starts the registry, pushes the images and writes the hosts.toml; `cleanup` undoes it all. */
export async function startCriWorld(): Promise<CriWorld> {
  const { path: dir, remove } = tempDir('berth-cri-');
  const registry = await TestRegistry.start();
  try {
    const base = busyboxSpec('docker.io/library/busybox:berth');
    const busybox = { repo: 'library/busybox', tag: 'berth', image: await buildImage(base) };
    const userUid = { repo: 'cri/user-uid', tag: '1', image: await buildImage({ ...base, name: 'x', runConfig: { User: '1002', Cmd: ['sh'] } }) };
    const userName = { repo: 'cri/user-name', tag: '1', image: await buildImage({ ...base, name: 'y', runConfig: { User: 'www-data:1004', Cmd: ['sh'] } }) };
    for (const s of [busybox, userUid, userName]) await push(registry, s);
    const hostsDir = join(dir, 'certs.d');
    mkdirSync(join(hostsDir, 'docker.io'), { recursive: true });
    // server is the registry too, so that nothing ever falls back to the real Docker Hub.
    writeFileSync(
      join(hostsDir, 'docker.io', 'hosts.toml'),
      `server = "${registry.url}"\n\n[host."${registry.url}"]\n  capabilities = ["pull", "resolve"]\n`,
    );
    const confDir = join(dir, 'net.d');
    mkdirSync(confDir);
    const section = 'plugins."io.containerd.grpc.v1.cri"';
    const criConfig =
      `[${section}]\n  sandbox_image = "registry.k8s.io/pause:3.6"\n` +
      `[${section}.cni]\n  bin_dir = "/usr/lib/cni"\n  conf_dir = ${JSON.stringify(confDir)}\n` +
      `[${section}.registry]\n  config_path = ${JSON.stringify(hostsDir)}\n`;
    return {
      registry,
      dir,
      hostsDir,
      confDir,
      busybox,
      userUid,
      userName,
      criConfig,
      cleanup: async () => {
        await registry.stop();
        remove();
      },
    };
  } catch (err) {
    await registry.stop();
    remove();
    throw err;
  }
}

/** crictl's stdout parsed as JSON (`-o json`, `inspecti`, `info`). */
export function json<T = Record<string, any>>(out: string): T {
  return JSON.parse(out) as T;
}

export { CATATONIT_PATH, pauseImage } from '@berth/fixtures';

/** Pushes the pause image as `pause:3.6` and mirrors registry.k8s.io to the world's registry. */
export async function addPauseImage(world: CriWorld): Promise<SeededImage> {
  const pause = { repo: 'pause', tag: '3.6', image: await pauseImage() };
  await push(world.registry, pause);
  mkdirSync(join(world.hostsDir, 'registry.k8s.io'), { recursive: true });
  writeFileSync(
    join(world.hostsDir, 'registry.k8s.io', 'hosts.toml'),
    `server = "${world.registry.url}"\n\n[host."${world.registry.url}"]\n  capabilities = ["pull", "resolve"]\n`,
  );
  return pause;
}

export { type SpecResult, critest } from '@berth/testing';
