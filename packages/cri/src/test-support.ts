/*
 * Test support for the crictl tests (not part of the package's build): a loopback registry with
 * busybox-based images, the hosts.toml that mirrors docker.io to it, and the CRI config that
 * points a daemon (berthd or containerd 1.6) at temp directories only.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type BuiltImage, buildImage, busyboxSpec, dir as dirEntry, file as fileEntry } from '@berth/fixtures';
import { RegistryClient, staticHosts } from '@berth/remotes';
import { CRITEST_PATH, TestRegistry, tempDir } from '@berth/testing';

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

/** Debian's catatonit: `-P` is its pause mode (tools/setup.sh installs it). */
export const CATATONIT_PATH = '/usr/bin/catatonit';

/**
 * The pause image of the tests: Debian's static catatonit alone, run as `catatonit -P` (an init
 * that reaps zombies and waits for a signal, as registry.k8s.io/pause does).
 */
export function pauseImage(): Promise<BuiltImage> {
  if (!existsSync(CATATONIT_PATH)) throw new Error(`${CATATONIT_PATH} is missing: apt-get install catatonit`);
  return buildImage({
    name: 'registry.k8s.io/pause:3.6',
    layers: [{ entries: [fileEntry('catatonit', readFileSync(CATATONIT_PATH), 0o755), dirEntry('dev'), dirEntry('etc'), dirEntry('proc'), dirEntry('sys')] }],
    runConfig: { Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'], Entrypoint: ['/catatonit', '-P'], WorkingDir: '/' },
  });
}

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

/** One critest spec's outcome. */
export interface SpecResult {
  name: string;
  outcome: 'passed' | 'failed' | 'skipped';
}

/** Runs critest with a junit report and returns each spec's outcome. */
export async function critest(socket: string, dir: string, args: string[]): Promise<{ specs: SpecResult[]; output: string }> {
  const report = join(dir, `junit-${Date.now()}.xml`);
  const config = join(dir, 'crictl.yaml');
  writeFileSync(config, '');
  const endpoint = `unix://${socket}`;
  let output = '';
  await new Promise<void>((resolve, reject) => {
    const child = spawn(CRITEST_PATH!, ['--config', config, '--runtime-endpoint', endpoint, '--image-endpoint', endpoint, '--ginkgo.no-color', `--ginkgo.junit-report=${report}`, ...args], {
      env: { PATH: process.env.PATH, HOME: process.env.HOME },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout.on('data', (b: Buffer) => (output += b.toString()));
    child.stderr.on('data', (b: Buffer) => (output += b.toString()));
    child.once('error', reject);
    child.once('close', () => resolve());
  });
  const xml = readFileSync(report, 'utf8');
  const specs: SpecResult[] = [];
  for (const m of xml.matchAll(/<testcase name="([^"]*)"[^>]*?(\/>|>([\s\S]*?)<\/testcase>)/g)) {
    const name = m[1].replace(/&#39;/g, "'").replace(/&quot;/g, '"').replace(/&amp;/g, '&');
    if (!name.startsWith('[It]')) continue;
    const body = m[3] ?? '';
    specs.push({ name, outcome: /<failure|<error/.test(body) ? 'failed' : /<skipped/.test(body) ? 'skipped' : 'passed' });
  }
  return { specs, output };
}

