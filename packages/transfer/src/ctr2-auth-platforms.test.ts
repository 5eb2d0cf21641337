import { type BuiltImage, type Descriptor, MT, buildImage, dir, file, sha256 } from '@berth/fixtures';
import { CtrResult, ReferenceContainerd2, TestDaemon, TestRegistry, type TestRegistryAuth, runCtr2 } from '@berth/testing';
import { NO_GC, contentRows, imageRows, ok, registryClient, seed } from './test-support';

/*
 * ctr 2.4.2 pulls and pushes through the Transfer API: the daemon talks to the registry and asks
 * ctr for credentials over the auth stream. These run against berthd and containerd 2.4.2 side
 * by side: `--user` against a registry with basic auth and one with bearer tokens (right and
 * wrong passwords), and `--platform` / `--all-platforms` against a two-platform OCI index.
 */

const USER = 'berth';
const PASSWORD = 'hunter2-correct';

/** A small single-layer image for one architecture: /etc/arch names it. */
function archImage(name: string, architecture: string): Promise<BuiltImage> {
  return buildImage({
    name,
    architecture,
    layers: [{ entries: [dir('etc'), file('etc/arch', `${architecture}\n`), file(`${architecture}.bin`, Buffer.alloc(4096, architecture.length))] }],
  });
}

describe('ctr 2.4.2 --user, --platform and --all-platforms on berthd and on containerd 2.4.2', () => {
  let berthd: TestDaemon;
  let containerd: ReferenceContainerd2;

  beforeAll(async () => {
    [berthd, containerd] = await Promise.all([TestDaemon.start({ config: NO_GC }), ReferenceContainerd2.start()]);
  }, 60_000);

  afterAll(async () => {
    await Promise.all([berthd?.cleanup(), containerd?.cleanup()]);
  });

  /** Runs ctr 2.x against berthd, then containerd, in one namespace; returns [berthd, containerd]. */
  const both = async (args: string[], namespace: string): Promise<[CtrResult, CtrResult]> => {
    const run = (address: string) => runCtr2(address, args, { namespace, timeoutMs: 60_000 });
    return [await run(berthd.address), await run(containerd.address)];
  };

  describe.each<TestRegistryAuth['kind']>(['basic', 'token'])('a registry with %s auth', (kind) => {
    let registry: TestRegistry;
    let img: BuiltImage;
    const auth = { username: USER, secret: PASSWORD };

    beforeAll(async () => {
      // containerd sends username and password as an OAuth2 password grant (POST), whose answer
      // carries `access_token`; berthd takes either field.
      registry = await TestRegistry.start({ auth: { kind, username: USER, password: PASSWORD, tokenField: 'access_token' } });
      img = await archImage(`${registry.host}/private/app:1`, 'amd64');
      await seed(registry, 'private/app', '1', img, auth);
    }, 60_000);

    afterAll(async () => {
      await registry?.stop();
    });

    it('pull --user u:p stores the image on both; push --user u:p lands in the registry', async () => {
      const ns = `user-${kind}`;
      const user = `${USER}:${PASSWORD}`;
      const targets = { berthd: `${registry.host}/private/from-berthd:1`, containerd: `${registry.host}/private/from-containerd:1` };
      /** Pulls, then pushes under a new name, through one daemon; returns how often each asked the token server. */
      const pullAndPush = async (who: 'berthd' | 'containerd', address: string) => {
        const t0 = registry.tokenRequests.length;
        ok(await runCtr2(address, ['images', 'pull', '--plain-http', '--user', user, img.name], { namespace: ns, timeoutMs: 60_000 }), `${who} pull`);
        const t1 = registry.tokenRequests.length;
        ok(await runCtr2(address, ['images', 'push', '--plain-http', '--user', user, targets[who], img.name], { namespace: ns, timeoutMs: 60_000 }), `${who} push`);
        return { pull: t1 - t0, push: registry.tokenRequests.length - t1 };
      };
      const tb = await pullAndPush('berthd', berthd.address);
      const tc = await pullAndPush('containerd', containerd.address);

      const [lb, lc] = await both(['images', 'ls'], ns);
      expect(imageRows(ok(lb, 'berthd ls'))).toEqual(imageRows(ok(lc, 'containerd ls')));
      expect(lb.stdout).toContain(img.manifest.digest);
      const client = registryClient(auth);
      try {
        const [rb, rc] = await Promise.all([client.resolve(targets.berthd), client.resolve(targets.containerd)]);
        expect(rb.descriptor.digest).toBe(img.manifest.digest);
        expect(rc.descriptor.digest).toBe(img.manifest.digest);
      } finally {
        await client.close();
      }
      // Tokens: one per pull and two per push on containerd 2.4.2 (its scopes grow as it goes);
      // berthd asks no more often. Basic auth needs no token server.
      expect(tc).toEqual(kind === 'token' ? { pull: 1, push: 2 } : { pull: 0, push: 0 });
      expect(tb.pull).toBeLessThanOrEqual(tc.pull);
      expect(tb.push).toBeLessThanOrEqual(tc.push);
    });

    it.each(['pull', 'push'])('%s with a wrong password fails naming the registry host, without a retry storm', async (op) => {
      const ns = `wrong-${op}-${kind}`;
      const wrong = `${USER}:wrong`;
      if (op === 'push') {
        const [pb, pc] = await both(['images', 'pull', '--plain-http', '--user', `${USER}:${PASSWORD}`, img.name], ns);
        ok(pb, 'berthd pull');
        ok(pc, 'containerd pull');
      }
      const argsFor = (who: string) =>
        op === 'pull'
          ? ['images', 'pull', '--plain-http', '--user', wrong, img.name]
          : ['images', 'push', '--plain-http', '--user', wrong, `${registry.host}/private/denied-${who}:1`, img.name];
      const runCounted = async (address: string, who: string) => {
        const before = registry.tokenRequests.length;
        const r = await runCtr2(address, argsFor(who), { namespace: ns, timeoutMs: 60_000 });
        return { r, tokenRequests: registry.tokenRequests.slice(before) };
      };
      const c = await runCounted(containerd.address, 'containerd');
      const b = await runCounted(berthd.address, 'berthd');
      expect(c.r.code).toBe(1);
      expect(b.r.code).toBe(1);
      // berthd names the registry host first, then the request (or the token server) that was
      // refused. containerd names the registry's URL for basic auth, but only the token server's
      // for bearer tokens.
      const prefix = op === 'pull' ? 'ctr: failed to resolve image: ' : 'ctr: ';
      expect(b.r.stderr).toContain(`${prefix}${registry.host}: `);
      if (kind === 'basic') {
        expect(b.r.stderr).toMatch(new RegExp(`HEAD http://${registry.host}/v2/private/[a-z-]+/(manifests|blobs)/\\S+: 401 Unauthorized`));
        expect(c.r.stderr).toMatch(new RegExp(`unexpected status from HEAD request to http://${registry.host}/v2/private/[a-z-]+/(manifests|blobs)/\\S+: 401 Unauthorized`));
      } else {
        expect(b.r.stderr).toMatch(/fetching a token from http:\/\/127\.0\.0\.1:\d+\/token failed \(the credentials given were refused\): 401 Unauthorized/);
        expect(c.r.stderr).toMatch(/failed to fetch oauth token: unexpected status from GET request to http:\/\/127\.0\.0\.1:\d+\/token\?scope=.*: 401 Unauthorized/);
        // containerd 2.4.2 asks twice: the OAuth2 password grant (POST), then a GET with basic
        // auth when that is refused, and does not retry after that. berthd must not ask more often.
        expect(c.tokenRequests.map((t) => [t.method, t.account, t.granted])).toEqual([
          ['POST', USER, false],
          ['GET', USER, false],
        ]);
        expect(b.tokenRequests.length).toBeGreaterThan(0);
        expect(b.tokenRequests.length).toBeLessThanOrEqual(c.tokenRequests.length);
        expect(b.tokenRequests.every((t) => t.account === USER && !t.granted)).toBe(true);
      }
      if (op === 'pull') {
        // Nothing was stored.
        const [lb, lc] = await both(['images', 'ls', '-q'], ns);
        expect([ok(lb, 'berthd ls').trim(), ok(lc, 'containerd ls').trim()]).toEqual(['', '']);
      } else {
        // Nothing reached the registry under the new names.
        const client = registryClient(auth);
        try {
          for (const who of ['berthd', 'containerd']) {
            await expect(client.resolve(`${registry.host}/private/denied-${who}:1`)).rejects.toThrow(/not found/);
          }
        } finally {
          await client.close();
        }
      }
    });
  });

  describe('a two-platform OCI index', () => {
    let registry: TestRegistry;
    let amd64: BuiltImage;
    let arm64: BuiltImage;
    let index: Descriptor;
    let ref: string;

    beforeAll(async () => {
      registry = await TestRegistry.start();
      ref = `${registry.host}/multi/app:1`;
      [amd64, arm64] = await Promise.all([archImage(ref, 'amd64'), archImage(ref, 'arm64')]);
      await seed(registry, 'multi/app', undefined, amd64);
      await seed(registry, 'multi/app', undefined, arm64);
      const body = Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: MT.ociIndex,
          manifests: [
            { ...amd64.manifest, platform: { architecture: 'amd64', os: 'linux' } },
            { ...arm64.manifest, platform: { architecture: 'arm64', os: 'linux' } },
          ],
        }),
      );
      index = { mediaType: MT.ociIndex, digest: sha256(body), size: body.length };
      const client = registryClient();
      try {
        await client.push(ref, index, body);
        expect((await client.resolve(ref)).descriptor).toMatchObject({ digest: index.digest, mediaType: MT.ociIndex });
      } finally {
        await client.close();
      }
    }, 60_000);

    afterAll(async () => {
      await registry?.stop();
    });

    it.each([
      ['--platform linux/arm64', ['--platform', 'linux/arm64'], 'arm64'],
      ['--all-platforms', ['--all-platforms'], 'all'],
      ['the default platform', [], 'default'],
    ])('pull %s: the same image record and the same content on both', async (_, flags, ns) => {
      const [pb, pc] = await both(['images', 'pull', '--plain-http', ...flags, ref], ns);
      ok(pb, 'berthd pull');
      ok(pc, 'containerd pull');
      const [lb, lc] = await both(['images', 'ls'], ns);
      expect(imageRows(ok(lb, 'berthd ls'))).toEqual(imageRows(ok(lc, 'containerd ls')));
      expect(lb.stdout).toContain(index.digest);
      const [cb, cc] = await both(['content', 'ls'], ns);
      const blobs = contentRows(ok(cb, 'berthd content ls'));
      expect(blobs).toEqual(contentRows(ok(cc, 'containerd content ls')));
      const has = (d: Descriptor) => blobs.some((r) => r.startsWith(d.digest));
      // The index, both manifests and both configs always (all metadata); layers only of the platforms pulled.
      expect([index, amd64.manifest, arm64.manifest, amd64.config, arm64.config].every(has)).toBe(true);
      expect([has(amd64.layers[0]), has(arm64.layers[0])]).toEqual(
        ns === 'arm64' ? [false, true] : ns === 'all' ? [true, true] : [true, false],
      );
      const [kb, kc] = await both(['images', 'check'], ns);
      expect(ok(kb, 'berthd check')).toEqual(ok(kc, 'containerd check'));
    });

    // containerd 2.4.2 (and ctr 1.6, which labels client side) write the registry's host name
    // without the port; push looks the label up under the same key to find a mount source.
    it('labels the distribution source with the registry host name without its port, as containerd does', async () => {
      const ns = 'source-label';
      const [pb, pc] = await both(['images', 'pull', '--plain-http', '--platform', 'linux/amd64', ref], ns);
      ok(pb, 'berthd pull');
      ok(pc, 'containerd pull');
      const [cb, cc] = await both(['content', 'ls'], ns);
      const keys = (out: string) => [...new Set(out.match(/containerd\.io\/distribution\.source\.[^=]+/g))];
      expect(keys(ok(cc, 'containerd content ls'))).toEqual(['containerd.io/distribution.source.127.0.0.1']);
      expect(keys(ok(cb, 'berthd content ls'))).toEqual(['containerd.io/distribution.source.127.0.0.1']);
    });
  });
});
