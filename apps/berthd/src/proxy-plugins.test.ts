import { ChildProcess, spawn } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { FileLabelStore, LocalContentStore } from '@berth/content';
import { serveContentStore } from '@berth/content/plugins';
import { BUSYBOX_IMAGE, buildBusyboxImage } from '@berth/fixtures';
import type { UnixServer } from '@berth/grpc';
import { unmountAll } from '@berth/mount';
import { CtrResult, ReferenceContainerd, TestDaemon, cleanupShims, removeNamespaceLeftovers, tempDir } from '@berth/testing';

/**
 * The namespace of this file's containers. On cgroup v1 a container's cgroup sits under
 * /<namespace>/, which every test daemon's `default` namespace would share with this one's: a
 * runc configuring that shared parent meanwhile can make this container's devices.allow fail.
 */
const NAMESPACE = `proxy-${process.pid}`;

const SNAPSHOTTER_BIN = resolve(__dirname, '../../../packages/snapshots/bin/berth-snapshotter');

/** A berth-snapshotter process (overlayfs) on its own root and socket. */
class SnapshotterProcess {
  private logs = '';
  private constructor(
    readonly root: string,
    readonly address: string,
    private readonly child: ChildProcess,
  ) {}

  static async start(dir: string): Promise<SnapshotterProcess> {
    const root = join(dir, 'root');
    const address = join(dir, 'snapshotter.sock');
    const child = spawn(process.execPath, [SNAPSHOTTER_BIN, '--root', root, '--address', address, '--log-level', 'debug'], { stdio: ['ignore', 'pipe', 'pipe'] });
    const p = new SnapshotterProcess(root, address, child);
    child.stdout!.on('data', (b: Buffer) => (p.logs += b.toString()));
    child.stderr!.on('data', (b: Buffer) => (p.logs += b.toString()));
    const deadline = Date.now() + 10_000;
    while (!p.logs.includes('msg="serving..."')) {
      if (child.exitCode !== null) throw new Error(`berth-snapshotter exited:\n${p.logs}`);
      if (Date.now() > deadline) {
        child.kill('SIGKILL');
        throw new Error(`berth-snapshotter did not start:\n${p.logs}`);
      }
      await new Promise((r) => setTimeout(r, 10));
    }
    return p;
  }

  /** Numbered snapshot directories in its root. */
  snapshotDirs(): string[] {
    const dir = join(this.root, 'snapshots');
    return existsSync(dir) ? readdirSync(dir).filter((e) => /^\d+$/.test(e)) : [];
  }

  async stop(): Promise<number | null> {
    if (this.child.exitCode !== null) return this.child.exitCode;
    const exited = new Promise<number | null>((r) => this.child.once('exit', (code) => r(code)));
    this.child.kill('SIGTERM');
    return exited;
  }
}

const row = (out: string, type: string, id: string) =>
  out
    .split('\n')
    .find((l) => l.split(/\s+/)[0] === type && l.split(/\s+/)[1] === id)
    ?.replace(/\s+/g, ' ')
    .trim();

/**
 * containerd's `[proxy_plugins]`, both ways, with real daemons: containerd 1.6 runs a container
 * on an image unpacked through a Berth snapshotter served by `berth-snapshotter`, and berthd
 * does the same through its own proxy plugin to another `berth-snapshotter`.
 */
describe('proxy plugins: a Berth snapshotter over the Snapshots API', () => {
  const work = tempDir('berth-proxy-');
  let forContainerd: SnapshotterProcess;
  let forBerthd: SnapshotterProcess;
  let containerd: ReferenceContainerd;
  let berthd: TestDaemon;
  let tar: string;

  beforeAll(async () => {
    [forContainerd, forBerthd, tar] = await Promise.all([
      SnapshotterProcess.start(join(work.path, 'sn-containerd')),
      SnapshotterProcess.start(join(work.path, 'sn-berthd')),
      buildBusyboxImage(work.path),
    ]);
    [containerd, berthd] = await Promise.all([
      ReferenceContainerd.start({ config: `[proxy_plugins]\n  [proxy_plugins.berth]\n    type = "snapshot"\n    address = ${JSON.stringify(forContainerd.address)}\n` }),
      TestDaemon.start({ logLevel: 'info', config: `[proxy_plugins]\n  [proxy_plugins.berth]\n    type = "snapshot"\n    address = ${JSON.stringify(forBerthd.address)}\n` }),
    ]);
  }, 120_000);

  afterAll(async () => {
    const leaked = await Promise.all([containerd && cleanupShims(containerd.address, containerd.dir), berthd && cleanupShims(berthd.address, berthd.dir)]);
    await Promise.all([containerd?.cleanup(), berthd?.cleanup()]);
    const codes = await Promise.all([forContainerd?.stop(), forBerthd?.stop()]);
    await unmountAll(work.path, { lazyFallback: true });
    work.remove();
    removeNamespaceLeftovers(NAMESPACE);
    expect(leaked.filter((n) => n !== 0)).toEqual([]);
    expect(codes.filter((c) => c !== 0)).toEqual([]);
  });

  const ok = async (d: { ctr(args: readonly string[], o?: { timeoutMs?: number; namespace?: string }): Promise<CtrResult> }, args: string[]) => {
    const res = await d.ctr(args, { timeoutMs: 60_000, namespace: NAMESPACE });
    expect({ args, code: res.code, stderr: res.stderr }).toEqual({ args, code: 0, stderr: '' });
    return res.stdout;
  };

  it('lists the proxy snapshotter in ctr plugins ls as containerd does', async () => {
    const theirs = row(await ok(containerd, ['plugins', 'ls']), 'io.containerd.snapshotter.v1', 'berth');
    const ours = row(await ok(berthd, ['plugins', 'ls']), 'io.containerd.snapshotter.v1', 'berth');
    expect(theirs).toBe('io.containerd.snapshotter.v1 berth - ok');
    expect(ours).toBe(theirs);
    const detailed = await ok(berthd, ['plugins', 'ls', '--detailed', 'id==berth']);
    const reference = await ok(containerd, ['plugins', 'ls', '--detailed', 'id==berth']);
    expect(detailed).toMatch(new RegExp(`address\\s+${forBerthd.address}`));
    expect(detailed.replace(forBerthd.address, 'SOCK')).toBe(reference.replace(forContainerd.address, 'SOCK'));
  });

  it.each([
    ['containerd 1.6', () => containerd, () => forContainerd, 'c'],
    ['berthd', () => berthd, () => forBerthd, 'b'],
  ] as const)('%s imports and runs busybox through the proxied Berth snapshotter', async (_name, daemon, sn, tag) => {
    const d = daemon();
    await ok(d, ['images', 'import', '--snapshotter', 'berth', tar]);
    expect(sn().snapshotDirs().length).toBe(1);
    const out = await ok(d, ['run', '--rm', '--snapshotter', 'berth', BUSYBOX_IMAGE, `proxy-${tag}-${process.pid}`, 'echo', 'hello from berth']);
    expect(out).toBe('hello from berth\n');
    const snaps = await ok(d, ['snapshots', '--snapshotter', 'berth', 'ls']);
    expect(snaps.trim().split('\n')).toHaveLength(2); // header + the image's layer
    await ok(d, ['images', 'rm', '--sync', BUSYBOX_IMAGE]);
  });

  it('returns the server error with its code through berthd', async () => {
    const res = await berthd.ctr(['snapshots', '--snapshotter', 'berth', 'info', 'nope'], { namespace: NAMESPACE });
    expect(res.code).not.toBe(0);
    expect(res.stderr).toMatch(/not found/);
  });
});

/**
 * `[proxy_plugins] type = "content"`, both ways: containerd 1.6 and berthd, each with its own
 * content plugin disabled, keep every blob in a Berth local store served over the Content API
 * (serveContentStore, on its own socket), and import and run busybox from it.
 */
describe('proxy plugins: a Berth content store over the Content API', () => {
  const work = tempDir('berth-proxy-content-');
  const servers: Array<{ root: string; address: string; server: UnixServer }> = [];
  let containerd: ReferenceContainerd;
  let berthd: TestDaemon;
  let tar: string;

  const serve = async (name: string) => {
    const root = join(work.path, name);
    const address = join(work.path, `${name}.sock`);
    const server = await serveContentStore(await LocalContentStore.open(root, { labelStore: new FileLabelStore(join(root, 'labels')) }), address);
    servers.push({ root, address, server });
    return { root, address };
  };
  const blobs = (root: string) => (existsSync(join(root, 'blobs', 'sha256')) ? readdirSync(join(root, 'blobs', 'sha256')) : []);
  const table = (address: string) => `[proxy_plugins]\n  [proxy_plugins.berth]\n    type = "content"\n    address = ${JSON.stringify(address)}\n`;

  beforeAll(async () => {
    const [forContainerd, forBerthd] = [await serve('for-containerd'), await serve('for-berthd')];
    tar = await buildBusyboxImage(work.path);
    [containerd, berthd] = await Promise.all([
      ReferenceContainerd.start({ disabled: ['io.containerd.content.v1.content'], config: table(forContainerd.address) }),
      TestDaemon.start({ logLevel: 'info', config: `disabled_plugins = ["io.containerd.content.v1.content"]\n${table(forBerthd.address)}` }),
    ]);
  }, 120_000);

  afterAll(async () => {
    const leaked = await Promise.all([containerd && cleanupShims(containerd.address, containerd.dir), berthd && cleanupShims(berthd.address, berthd.dir)]);
    await Promise.all([containerd?.cleanup(), berthd?.cleanup()]);
    for (const s of servers) await s.server.close();
    await unmountAll(work.path, { lazyFallback: true });
    work.remove();
    removeNamespaceLeftovers(NAMESPACE);
    expect(leaked.filter((n) => n !== 0)).toEqual([]);
  });

  const ok = async (d: { ctr(args: readonly string[], o?: { timeoutMs?: number; namespace?: string }): Promise<CtrResult> }, args: string[]) => {
    const res = await d.ctr(args, { timeoutMs: 60_000, namespace: NAMESPACE });
    expect({ args, code: res.code, stderr: res.stderr }).toEqual({ args, code: 0, stderr: '' });
    return res.stdout;
  };

  it('lists the proxy content store in ctr plugins ls as containerd does', async () => {
    const theirs = row(await ok(containerd, ['plugins', 'ls']), 'io.containerd.content.v1', 'berth');
    const ours = row(await ok(berthd, ['plugins', 'ls']), 'io.containerd.content.v1', 'berth');
    expect(theirs).toBe('io.containerd.content.v1 berth - ok');
    expect(ours).toBe(theirs);
    expect(row(await ok(berthd, ['plugins', 'ls']), 'io.containerd.content.v1', 'content')).toMatch(/ skip$/);
  });

  it.each([
    ['containerd 1.6', () => containerd, 0, 'c'],
    ['berthd', () => berthd, 1, 'b'],
  ] as const)('%s imports into and runs busybox from the proxied Berth content store', async (_name, daemon, server, tag) => {
    const d = daemon();
    await ok(d, ['images', 'import', tar]);
    const listed = (await ok(d, ['content', 'ls', '-q'])).trim().split('\n').map((l) => l.replace('sha256:', ''));
    expect(listed.length).toBeGreaterThanOrEqual(3); // index or manifest, config, layer
    expect(blobs(servers[server].root).sort()).toEqual(expect.arrayContaining(listed.sort()));
    expect(await ok(d, ['run', '--rm', BUSYBOX_IMAGE, `proxy-content-${tag}-${process.pid}`, 'echo', 'hello'])).toBe('hello\n');
    await ok(d, ['images', 'rm', '--sync', BUSYBOX_IMAGE]);
    expect(await ok(d, ['content', 'ls', '-q'])).toBe('');
  });
});
