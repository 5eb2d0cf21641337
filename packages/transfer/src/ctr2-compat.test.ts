import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type BuiltImage, buildImage, busyboxSpec, multiLayerSpec, writeOciArchive } from '@berth/fixtures';
import { RegistryClient, staticHosts } from '@berth/remotes';
import { transfer } from '@berth/api/transfer';
import { GrpcCode, toGrpcStatus } from '@berth/errdefs';
import { CtrResult, ReferenceContainerd2, TestDaemon, TestRegistry, runCtr2, tempDir } from '@berth/testing';
import { NO_GC, imageRows, ok, seed } from './test-support';

/*
 * ctr 2.4.2's image commands go through the Transfer and Streaming APIs. Each runs against berthd
 * and against containerd 2.4.2, side by side, with Debian's docker-registry on loopback.
 */

/**
 * The last frame ctr 2.x drew of a pull's progress, one entry per line without the tree
 * drawing, bars, sizes and times, sorted (blobs of one level may finish in any order).
 */
function finalFrame(out: string): string[] {
  const frames = out.split(/\n(?=\S+\s+saved\s*\n)/);
  return frames[frames.length - 1]
    .split('\n')
    .map((l) => l.replace(/\x1b\[[0-9;]*m/g, '').replace(/[│├└─]/g, '').replace(/\|[+-]*\|.*$/, '').replace(/\telapsed:.*$/, '').trim().replace(/\s+/g, ' '))
    .filter((l) => l !== '' && !l.startsWith('application/'))
    .sort();
}

describe('ctr 2.4.2 image commands on berthd and on containerd 2.4.2', () => {
  let registry: TestRegistry;
  let berthd: TestDaemon;
  let containerd: ReferenceContainerd2;
  const tmp = tempDir('berth-ctr2-');
  let busybox: BuiltImage;
  let multi: BuiltImage;

  beforeAll(async () => {
    [busybox, multi] = await Promise.all([buildImage(busyboxSpec()), buildImage(multiLayerSpec())]);
    registry = await TestRegistry.start();
    await seed(registry, 'berth/busybox', '1', busybox);
    await seed(registry, 'berth/multi', '1', multi);
    berthd = await TestDaemon.start({ config: NO_GC });
    containerd = await ReferenceContainerd2.start();
  }, 120_000);

  afterAll(async () => {
    await berthd?.cleanup();
    await containerd?.cleanup();
    await registry?.stop();
    tmp.remove();
  });

  /** Runs ctr 2.x against both daemons in the same namespace; returns [berthd, containerd]. */
  const both = async (args: string[], namespace = 'ctr2'): Promise<[CtrResult, CtrResult]> => {
    const run = (address: string) => runCtr2(address, args, { namespace, timeoutMs: 120_000 });
    return [await run(berthd.address), await run(containerd.address)];
  };
  it('pull --plain-http: the same image records, unpacked, with per-layer progress', async () => {
    const ref = `${registry.host}/berth/multi:1`;
    const [b, c] = await both(['images', 'pull', '--plain-http', ref]);
    ok(b, 'berthd pull');
    ok(c, 'containerd pull');
    // ctr prints one progress line per blob it saw; both daemons name them the same way.
    // ctr's last frame: the image saved, every blob complete or extracted, the closing status.
    expect(finalFrame(b.stdout)).toEqual(finalFrame(c.stdout));
    expect(finalFrame(b.stdout)).toEqual(
      expect.arrayContaining([
        `${ref} saved`,
        `manifest (${multi.manifest.digest.slice(7, 19)}) complete`,
        `config (${multi.config.digest.slice(7, 19)}) complete`,
        ...multi.layers.map((l) => `layer (${l.digest.slice(7, 19)}) extracted`),
        `Completed pull from OCI Registry (${ref})`,
      ]),
    );
    const [lb, lc] = await both(['images', 'ls']);
    expect(imageRows(ok(lb, 'ls'))).toEqual(imageRows(ok(lc, 'ls')));
    const [kb, kc] = await both(['images', 'check']);
    expect(ok(kb, 'check')).toEqual(ok(kc, 'check'));
    expect(kb.stdout).toMatch(/complete \((\d+)\/\1\).*true/);
  });

  it('pull of a missing tag fails as containerd does', async () => {
    const ref = `${registry.host}/berth/multi:missing`;
    const [b, c] = await both(['images', 'pull', '--plain-http', ref]);
    expect([b.code, c.code]).toEqual([1, 1]);
    expect(b.stderr).toContain(`failed to resolve image: ${ref}: not found`);
    expect(c.stderr).toContain(`failed to resolve image: ${ref}: not found`);
  });

  it('tag: the new name points at the same target', async () => {
    const src = `${registry.host}/berth/multi:1`;
    const [b, c] = await both(['images', 'tag', src, 'example.com/tagged:1']);
    expect(ok(b, 'tag').trim()).toBe('example.com/tagged:1');
    expect(ok(c, 'tag').trim()).toBe('example.com/tagged:1');
    const [lb, lc] = await both(['images', 'ls', '-q']);
    expect(ok(lb, 'ls')).toEqual(ok(lc, 'ls'));
    const [mb, mc] = await both(['images', 'tag', 'example.com/missing:1', 'example.com/x:1']);
    expect([mb.code, mc.code]).toEqual([1, 1]);
    expect(mb.stderr).toContain('image "example.com/missing:1": not found');
  });

  it('import and export: the same records, and export writes a tar that imports again', async () => {
    const tar = join(tmp.path, 'busybox.tar');
    await writeOciArchive(tar, [busybox]);
    const [b, c] = await both(['images', 'import', tar], 'ie');
    ok(b, 'berthd import');
    ok(c, 'containerd import');
    const [lb, lc] = await both(['images', 'ls'], 'ie');
    expect(imageRows(ok(lb, 'ls'))).toEqual(imageRows(ok(lc, 'ls')));
    const outB = join(tmp.path, 'out-berthd.tar');
    const outC = join(tmp.path, 'out-containerd.tar');
    ok(await runCtr2(berthd.address, ['images', 'export', outB, busybox.name], { namespace: 'ie' }), 'berthd export');
    ok(await runCtr2(containerd.address, ['images', 'export', outC, busybox.name], { namespace: 'ie' }), 'containerd export');
    expect(readFileSync(outB).length).toBeGreaterThan(1_000_000);
    const again = await runCtr2(berthd.address, ['images', 'import', outB], { namespace: 'ie-again' });
    ok(again, 'import of the export');
    expect(ok(await runCtr2(berthd.address, ['images', 'ls', '-q'], { namespace: 'ie-again' }), 'ls').trim()).toBe(busybox.name);
  });

  it('push --plain-http: the registry then serves the image under the new name', async () => {
    const src = `${registry.host}/berth/busybox:1`;
    ok(await runCtr2(berthd.address, ['images', 'pull', '--plain-http', src], { namespace: 'push' }), 'pull');
    const dst = `${registry.host}/berth/pushed:1`;
    const r = await runCtr2(berthd.address, ['images', 'push', '--plain-http', dst, src], { namespace: 'push', timeoutMs: 120_000 });
    ok(r, 'push');
    const client = new RegistryClient({ hosts: staticHosts({ scheme: 'http' }) });
    try {
      const { descriptor } = await client.resolve(dst);
      expect(descriptor.digest).toBe(busybox.manifest.digest);
    } finally {
      await client.close();
    }
  });

  it.each([
    ['bytes that are not the named message', 'containerd.types.transfer.OCIRegistry', GrpcCode.INVALID_ARGUMENT, 'decode Any of type "containerd.types.transfer.OCIRegistry"'],
    ['an unknown type', 'containerd.types.transfer.Nope', GrpcCode.UNKNOWN, 'type with url containerd.types.transfer.Nope: not found'],
    ['a known type under a prefixed URL', 'type.googleapis.com/containerd.types.transfer.ImageStore', GrpcCode.UNIMPLEMENTED, 'method Transfer not implemented for type.googleapis.com/containerd.types.transfer.ImageStore to containerd.types.transfer.ImageStore'],
  ])('a Transfer request whose source is %s gets a clear error', async (_what, typeUrl, code, message) => {
    const client = berthd.client(transfer.TransferService, 'bad');
    const value = typeUrl.endsWith('OCIRegistry') ? Buffer.from([0x0a, 0xff, 0xff]) : Buffer.alloc(0);
    const destination = { typeUrl: 'containerd.types.transfer.ImageStore', value: Buffer.from([0x0a, 0x01, 0x78]) };
    const err = await client.transfer({ source: { typeUrl, value }, destination, options: { progressStream: '' } }).catch((e) => e);
    expect({ code: toGrpcStatus(err).code, message: err.message }).toEqual({ code, message: expect.stringContaining(message) });
  });

  it('a Transfer request naming a stream nobody opened is NotFound', async () => {
    const client = berthd.client(transfer.TransferService, 'bad');
    const store = { typeUrl: 'containerd.types.transfer.ImageStore', value: Buffer.from([0x0a, 0x01, 0x78]) };
    const err = await client.transfer({ source: store, destination: store, options: { progressStream: 'progress-1' } }).catch((e) => e);
    expect(toGrpcStatus(err).code).toBe(GrpcCode.NOT_FOUND);
  });

  it('pull --hosts-dir: a dead mirror first, then the registry', async () => {
    const hostsDir = join(tmp.path, 'certs.d');
    mkdirSync(join(hostsDir, registry.host.replace(':', '_') + '_'), { recursive: true });
    writeFileSync(
      join(hostsDir, registry.host.replace(':', '_') + '_', 'hosts.toml'),
      `server = "http://${registry.host}"\n\n[host."http://127.0.0.1:1"]\n  capabilities = ["pull", "resolve"]\n`,
    );
    const ref = `${registry.host}/berth/busybox:1`;
    const r = await runCtr2(berthd.address, ['images', 'pull', '--hosts-dir', hostsDir, ref], { namespace: 'mirror', timeoutMs: 120_000 });
    ok(r, 'pull through hosts-dir');
    expect(ok(await runCtr2(berthd.address, ['images', 'ls', '-q'], { namespace: 'mirror' }), 'ls').trim()).toBe(ref);
  });
});
