import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { removeNetns } from '@berth/cni';
import { type BuiltImage, buildImage, busyboxSpec, pauseImage } from '@berth/fixtures';
import { RegistryClient, staticHosts } from '@berth/remotes';
import { CRITEST_IMAGE_LOOKALIKES, TestRegistry, tempDir } from '@berth/testing';
import { holdIpForward } from './ip-forward';
import { containerLookalikes } from './lookalikes';

/** Registries critest names; each gets a hosts.toml that mirrors it to the loopback registry. */
const MIRRORED = ['gcr.io', 'registry.k8s.io', 'k8s.gcr.io', 'docker.io'];

const sh = (file: string, args: string[], input?: string) => execFileSync(file, args, { encoding: 'utf8', input, stdio: ['pipe', 'pipe', 'pipe'] });

/** What both daemons share: the registry with the images, hosts.toml, a private CNI network. */
export interface World {
  dir: string;
  registry: TestRegistry;
  /** The CRI plugin's config section, the same for berthd and containerd 1.6. */
  criConfig: string;
  netnsRoot: string;
  /** Removes the network (namespaces, portmap rules, bridge), stops the registry, removes the dir. */
  cleanup(): Promise<void>;
}

async function push(registry: TestRegistry, repo: string, tag: string, image: BuiltImage): Promise<void> {
  const client = new RegistryClient({ hosts: staticHosts({ scheme: 'http' }) });
  try {
    const ref = `${registry.host}/${repo}`;
    for (const d of [...image.layers, image.config]) await client.push(ref, d, image.blobs.get(d.digest)!);
    await client.push(`${ref}:${tag}`, image.manifest, image.blobs.get(image.manifest.digest)!);
  } finally {
    await client.close();
  }
}

/**
 * The image specs' look-alikes: the busybox fixture with a run config (they are pulled and
 * inspected, at most run with `sh`; the containers' images are lookalikes.ts's).
 */
function busybox(runConfig: Record<string, unknown>): Promise<BuiltImage> {
  return buildImage({ ...busyboxSpec('x'), runConfig: { Cmd: ['sh'], ...runConfig } });
}

/** A 10.99.x.0/24 that no host route uses. */
function freeSubnet(): string {
  const routes = sh('ip', ['-4', 'route', 'show']);
  for (;;) {
    const x = 100 + (randomBytes(1)[0] % 150);
    if (!routes.includes(`10.99.${x}.`)) return `10.99.${x}`;
  }
}

/** portmap's nat rules for a network (their comment names it) and the chains they jump to, deleted. */
function removePortmapRules(networkName: string): void {
  const nat = sh('iptables-save', ['-t', 'nat']).split('\n').map((l) => l.replace(/ \[\d+:\d+\]$/, ''));
  const rules = nat.filter((l) => l.startsWith('-A ') && l.includes(`name: \\"${networkName}\\"`));
  const chains = [...new Set(rules.map((l) => / -j (CNI-DN-[0-9a-f]+)/.exec(l)?.[1]).filter((c): c is string => !!c))];
  if (rules.length === 0) return;
  const lines = ['*nat', ...rules.map((r) => r.replace(/^-A /, '-D ')), ...chains.flatMap((c) => [`-F ${c}`, `-X ${c}`]), 'COMMIT', ''];
  sh('iptables-restore', ['--noflush'], lines.join('\n'));
}

/**
 * Starts the loopback registry with critest's look-alike images (busybox based), writes
 * hosts.toml mirrors for the registries critest names, and a private CNI network: a
 * test-unique bridge (no masquerade, no default route) on a free 10.99.x.0/24 with host-local and
 * portmap. Everything lives in one temp dir.
 */
export async function startWorld(): Promise<World> {
  const { path: dir, remove } = tempDir('berth-cri-conformance-');
  const id = randomBytes(3).toString('hex');
  const name = `berth-critest-${id}`;
  const bridge = `bc${id}`;
  const netnsRoot = join(dir, 'netns');
  let registry: TestRegistry | undefined;
  // The bridge plugin (isGateway) turns on IP forwarding and never turns it off: it is put back
  // when the last run of the machine is over.
  const ipForward = holdIpForward();
  const cleanup = async () => {
    if (existsSync(netnsRoot)) for (const n of readdirSync(netnsRoot)) await removeNetns(join(netnsRoot, n)).catch(() => undefined);
    try {
      removePortmapRules(name);
    } catch {
      /* no iptables */
    }
    if (sh('ip', ['-o', 'link', 'show']).includes(`: ${bridge}:`)) sh('ip', ['link', 'delete', bridge]);
    // critest's pods (no cgroup parent) go under /k8s.io; rmdir takes only an empty one.
    for (const c of existsSync('/sys/fs/cgroup') ? readdirSync('/sys/fs/cgroup') : []) {
      try {
        rmdirSync(join('/sys/fs/cgroup', c, 'k8s.io'));
      } catch {
        /* missing or in use */
      }
    }
    await registry?.stop();
    remove();
    ipForward.release();
  };
  try {
    registry = await TestRegistry.start();
    for (const i of CRITEST_IMAGE_LOOKALIKES) {
      const image = await busybox(i.runConfig);
      for (const tag of i.tags) await push(registry, i.repo, tag, image);
    }
    await push(registry, 'pause', '3.6', await pauseImage());
    for (const l of await containerLookalikes()) await push(registry, l.repo, l.tag, l.image);
    const hostsDir = join(dir, 'certs.d');
    for (const host of MIRRORED) {
      mkdirSync(join(hostsDir, host), { recursive: true });
      // server is the registry too, so that nothing ever leaves the machine.
      writeFileSync(join(hostsDir, host, 'hosts.toml'), `server = "${registry.url}"\n\n[host."${registry.url}"]\n  capabilities = ["pull", "resolve"]\n`);
    }
    const confDir = join(dir, 'net.d');
    const cacheDir = join(dir, 'cni-cache');
    mkdirSync(confDir);
    const subnet = freeSubnet();
    writeFileSync(
      join(confDir, '10-critest.conflist'),
      JSON.stringify({
        cniVersion: '1.0.0',
        name,
        plugins: [
          { type: 'bridge', bridge, isGateway: true, ipMasq: false, ipam: { type: 'host-local', ranges: [[{ subnet: `${subnet}.0/24` }]], dataDir: join(dir, 'ipam') } },
          { type: 'portmap', capabilities: { portMappings: true } },
        ],
      }),
    );
    const section = 'plugins."io.containerd.grpc.v1.cri"';
    const criConfig =
      `[${section}]\n  sandbox_image = "registry.k8s.io/pause:3.6"\n  restrict_oom_score_adj = true\n  netns_mounts_under = ${JSON.stringify(netnsRoot)}\n` +
      `[${section}.cni]\n  bin_dir = "/usr/lib/cni"\n  conf_dir = ${JSON.stringify(confDir)}\n  cache_dir = ${JSON.stringify(cacheDir)}\n` +
      `[${section}.registry]\n  config_path = ${JSON.stringify(hostsDir)}\n`;
    return { dir, registry, criConfig, netnsRoot, cleanup };
  } catch (err) {
    await cleanup();
    throw err;
  }
}
