import { createHash, randomBytes } from 'node:crypto';
import { GrpcCode, isNotFound, toGrpcStatus } from '@berth/errdefs';
import { TestRegistry, freePort, rejectionOf } from '@berth/testing';
import { ManifestMediaType } from './descriptor';
import { digestOf } from './digest';
import type { RegistryHost, RegistryHosts } from './hosts';
import { configureHosts } from './hosts-config';
import { RegistryAuthError, isRegistryAuthError } from './registry-auth-error';
import { RegistryClient, type RegistryClientOptions } from './registry-client';
import { staticHosts } from './static-hosts';
import { LoggingProxy, endpoint, makeImage, readStream, type TestImage } from './test-support';

/** Pushes layers and config, then the manifest (under the reference's tag). */
async function pushImage(client: RegistryClient, ref: string, image: TestImage): Promise<void> {
  for (const b of [...image.layers, image.config]) await client.push(ref, b.desc, b.bytes);
  await client.push(ref, image.manifest.desc, image.manifest.bytes);
}

/** Resolves the reference and fetches every blob back, checking the bytes. */
async function pullAndCheck(client: RegistryClient, ref: string, image: TestImage): Promise<void> {
  const { descriptor } = await client.resolve(ref);
  expect(descriptor).toEqual(image.manifest.desc);
  for (const b of [image.manifest, image.config, ...image.layers]) {
    expect((await readStream(await client.fetch(ref, b.desc))).equals(b.bytes)).toBe(true);
  }
}

const hostsOf = (...list: RegistryHost[]): RegistryHosts => async () => list;

describe('RegistryClient against docker-registry (plain HTTP, no auth)', () => {
  let registry: TestRegistry;
  const clients: RegistryClient[] = [];
  const proxies: LoggingProxy[] = [];
  const newClient = (options: Partial<RegistryClientOptions> = {}) => {
    const c = new RegistryClient({ hosts: staticHosts({ scheme: 'http' }), retryDelayMs: 10, ...options });
    clients.push(c);
    return c;
  };
  const proxy = async () => {
    const p = await LoggingProxy.start(registry.host);
    proxies.push(p);
    return p;
  };

  beforeAll(async () => {
    registry = await TestRegistry.start();
  });
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.close()));
    await Promise.all(proxies.splice(0).map((p) => p.stop()));
  });
  afterAll(async () => {
    await registry?.stop();
  });

  it('pushes an image, resolves its tag and digest, and fetches every blob back verified', async () => {
    const client = newClient();
    const image = makeImage();
    const ref = `${registry.host}/test/app:v1`;
    await pushImage(client, ref, image);
    await pullAndCheck(client, ref, image);

    const byDigest = await client.resolve(`${registry.host}/test/app@${image.manifest.desc.digest}`);
    expect(byDigest.descriptor).toEqual(image.manifest.desc);
    expect(byDigest.ref.toString()).toBe(`${registry.host}/test/app@${image.manifest.desc.digest}`);
  });

  it('pushes an index: children by digest (skipped when present), only the root under the tag', async () => {
    const image = makeImage([10]);
    const indexBytes = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: ManifestMediaType.ociIndex, manifests: [image.manifest.desc] }));
    const index = { mediaType: ManifestMediaType.ociIndex, digest: digestOf(indexBytes), size: indexBytes.length };
    const p = await proxy();
    const client = newClient({ hosts: hostsOf(endpoint(registry.host, p.host)) });
    // As containerd's push names it: <name>:<tag>@<root digest>.
    const ref = `${registry.host}/test/index:v1@${index.digest}`;
    for (const b of [...image.layers, image.config]) await client.push(ref, b.desc, b.bytes);
    expect(await client.push(ref, image.manifest.desc, image.manifest.bytes)).toBe('uploaded');
    expect(await client.push(ref, image.manifest.desc, image.manifest.bytes)).toBe('exists');
    expect(await client.push(ref, index, indexBytes)).toBe('uploaded');
    const puts = p.lines.filter((l) => l.startsWith('PUT /v2/test/index/manifests/')).map((l) => l.split('?')[0]);
    expect(puts).toEqual([`PUT /v2/test/index/manifests/${image.manifest.desc.digest}`, 'PUT /v2/test/index/manifests/v1']);

    const { descriptor } = await client.resolve(`${registry.host}/test/index:v1`);
    expect(descriptor).toEqual(index);
    const child = await readStream(await client.fetch(`${registry.host}/test/index:v1`, image.manifest.desc));
    expect(child.equals(image.manifest.bytes)).toBe(true);
  });

  it('refuses to push a manifest whose bytes do not match the descriptor', async () => {
    const image = makeImage([10]);
    const err = await rejectionOf(newClient().push(`${registry.host}/test/bad:v1`, image.manifest.desc, Buffer.from('{}')));
    expect(toGrpcStatus(err).code).toBe(GrpcCode.INVALID_ARGUMENT);
  });

  it('answers NotFound "<ref>: not found" for a missing tag', async () => {
    const client = newClient();
    const ref = `${registry.host}/test/app:missing`;
    const err = await rejectionOf(client.resolve(ref));
    expect(toGrpcStatus(err)).toEqual({ code: GrpcCode.NOT_FOUND, details: `${ref}: not found` });
  });

  it('skips blobs the registry already has (HEAD only, no upload)', async () => {
    const image = makeImage();
    const ref = `${registry.host}/test/skip:v1`;
    await pushImage(newClient(), ref, image);

    const p = await proxy();
    const client = newClient({ hosts: hostsOf(endpoint(registry.host, p.host)) });
    for (const b of [...image.layers, image.config]) expect(await client.push(ref, b.desc, b.bytes)).toBe('exists');
    expect(p.lines.filter((l) => !l.startsWith('HEAD '))).toEqual([]);
    expect(p.lines).toHaveLength(4);
  });

  it('mounts a blob from another repository instead of uploading it', async () => {
    const image = makeImage([4096]);
    const layer = image.layers[0];
    await newClient().push(`${registry.host}/test/source:v1`, layer.desc, layer.bytes);

    const p = await proxy();
    const client = newClient({ hosts: hostsOf(endpoint(registry.host, p.host)) });
    const outcome = await client.push(`${registry.host}/test/target:v1`, layer.desc, layer.bytes, { mountFrom: 'test/source' });
    expect(outcome).toBe('mounted');
    const ns = `ns=${encodeURIComponent(registry.host)}`;
    expect(p.lines).toEqual([
      `HEAD /v2/test/target/blobs/${layer.desc.digest}?${ns}`,
      `POST /v2/test/target/blobs/uploads/?mount=${encodeURIComponent(layer.desc.digest)}&from=test%2Fsource&${ns}`,
    ]);
    const back = await readStream(await client.fetch(`${registry.host}/test/target:v1`, layer.desc));
    expect(back.equals(layer.bytes)).toBe(true);
  });

  it('falls back to an upload when the mount source does not have the blob', async () => {
    const layer = makeImage([100]).layers[0];
    const client = newClient();
    const outcome = await client.push(`${registry.host}/test/target2:v1`, layer.desc, layer.bytes, { mountFrom: 'test/nowhere' });
    expect(outcome).toBe('uploaded');
    expect((await readStream(await client.fetch(`${registry.host}/test/target2:v1`, layer.desc))).equals(layer.bytes)).toBe(true);
  });

  it('uploads a 5 MiB blob in chunks (PATCH with Content-Range, then PUT) from a stream source', async () => {
    const bytes = randomBytes(5 * 1024 * 1024 + 123);
    const desc = { mediaType: 'application/octet-stream', digest: `sha256:${createHash('sha256').update(bytes).digest('hex')}`, size: bytes.length };
    const p = await proxy();
    const client = newClient({ hosts: hostsOf(endpoint(registry.host, p.host)), uploadChunkSize: 1 << 20 });
    const ref = `${registry.host}/test/chunked:v1`;
    const { Readable } = await import('node:stream');
    const outcome = await client.push(ref, desc, (offset) => Readable.from([bytes.subarray(offset)]), { chunked: true });
    expect(outcome).toBe('uploaded');
    const patches = p.seen.filter((r) => r.method === 'PATCH');
    expect(patches.map((r) => r.headers['content-range'])).toEqual(
      [0, 1, 2, 3, 4, 5].map((i) => `${i << 20}-${Math.min((i + 1) << 20, bytes.length) - 1}`),
    );
    // Each PATCH goes to the Location the previous answer gave.
    expect(new Set(patches.map((r) => r.url)).size).toBe(6);
    expect(p.lines.filter((l) => l.startsWith('PUT '))).toHaveLength(1);
    expect((await readStream(await client.fetch(ref, desc))).equals(bytes)).toBe(true);
  });

  it('fetches from an offset with Range and verifies the whole digest given the prefix hash', async () => {
    const image = makeImage([50_000]);
    const layer = image.layers[0];
    const ref = `${registry.host}/test/range:v1`;
    const client = newClient();
    await client.push(ref, layer.desc, layer.bytes);
    const offset = 12_345;
    const hash = createHash('sha256').update(layer.bytes.subarray(0, offset));
    const rest = await readStream(await client.fetch(ref, layer.desc, { offset, hash }));
    expect(rest.equals(layer.bytes.subarray(offset))).toBe(true);

    // A wrong prefix hash shows up as a digest mismatch naming the blob.
    const wrong = createHash('sha256').update(Buffer.alloc(offset));
    const err = await rejectionOf(readStream(await client.fetch(ref, layer.desc, { offset, hash: wrong })));
    expect(toGrpcStatus(err).code).toBe(GrpcCode.FAILED_PRECONDITION);
    expect(err.message).toContain(`digest mismatch`);
    expect(err.message).toContain(layer.desc.digest);
  });

  it('tries the next host when the first refuses connections', async () => {
    const image = makeImage([10]);
    const ref = `${registry.host}/test/fallback:v1`;
    await pushImage(newClient(), ref, image);
    const dead = `127.0.0.1:${await freePort()}`;
    const client = newClient({ hosts: hostsOf(endpoint(registry.host, dead), endpoint(registry.host, registry.host)) });
    await pullAndCheck(client, ref, image);
  });

  it('skips hosts without pull for fetching, and pushes only to the first push-capable host', async () => {
    const image = makeImage([10]);
    const ref = `${registry.host}/test/caps:v1`;
    await pushImage(newClient(), ref, image);
    const [resolveOnly, pullHost, pushHost, laterPush] = [await proxy(), await proxy(), await proxy(), await proxy()];
    const client = newClient({
      hosts: hostsOf(
        endpoint(registry.host, resolveOnly.host, { capabilities: ['resolve'] }),
        endpoint(registry.host, pullHost.host, { capabilities: ['pull', 'resolve'] }),
        endpoint(registry.host, pushHost.host, { capabilities: ['push'] }),
        endpoint(registry.host, laterPush.host, { capabilities: ['pull', 'resolve', 'push'] }),
      ),
    });
    await pullAndCheck(client, ref, image);
    expect(resolveOnly.seen).toEqual([]);
    expect(pushHost.seen).toEqual([]);
    expect(pullHost.seen.length).toBeGreaterThan(0);

    const extra = makeImage([20]).layers[0];
    expect(await client.push(ref, extra.desc, extra.bytes)).toBe('uploaded');
    expect(pushHost.lines[0]).toBe(`HEAD /v2/test/caps/blobs/${extra.desc.digest}?ns=${encodeURIComponent(registry.host)}`);
    expect(laterPush.seen).toEqual([]);
  });

  it('adds ?ns=<registry> on a mirror and not on the registry itself (docker.io counts as registry-1.docker.io)', async () => {
    const image = makeImage([10]);
    await pushImage(newClient(), `${registry.host}/library/mirrored:v1`, image);
    const mirror = await proxy();
    const client = newClient({ hosts: hostsOf(endpoint('docker.io', mirror.host)) });
    await pullAndCheck(client, 'mirrored:v1', image);
    expect(mirror.lines[0]).toBe('HEAD /v2/library/mirrored/manifests/v1?ns=docker.io');
    expect(mirror.lines.every((l) => l.endsWith('?ns=docker.io'))).toBe(true);

    // The registry's own endpoint: no ns.
    const direct = await proxy();
    const client2 = newClient({ hosts: hostsOf(endpoint(direct.host, direct.host)) });
    await client2.resolve(`${direct.host}/library/mirrored:v1`);
    expect(direct.lines).toEqual(['HEAD /v2/library/mirrored/manifests/v1']);
  });

  it("sends a host's configured headers on every request to it", async () => {
    const image = makeImage([10]);
    const ref = `${registry.host}/test/headers:v1`;
    await pushImage(newClient(), ref, image);
    const p = await proxy();
    const client = newClient({ hosts: hostsOf(endpoint(registry.host, p.host, { headers: { 'x-berth-test': ['a', 'b'], 'x-other': ['c'] } })) });
    await pullAndCheck(client, ref, image);
    expect(p.seen.length).toBeGreaterThan(2);
    for (const r of p.seen) expect([r.headers['x-berth-test'], r.headers['x-other']]).toEqual(['a, b', 'c']);
  });

  it('falls back from https to http for a host that allows it', async () => {
    const image = makeImage([10]);
    const ref = `${registry.host}/test/plain:v1`;
    await pushImage(newClient(), ref, image);
    const client = newClient({ hosts: hostsOf(endpoint(registry.host, registry.host, { scheme: 'https', fallbackToHttp: true })) });
    await pullAndCheck(client, ref, image);
  });

  it("works with configureHosts()' default for a loopback registry (https first, then plain http)", async () => {
    const image = makeImage([10]);
    const ref = `${registry.host}/test/default-hosts:v1`;
    const client = newClient({ hosts: configureHosts() });
    await pushImage(client, ref, image);
    await pullAndCheck(client, ref, image);
  });

  it('limits concurrent downloads, releasing a slot when a stream closes', async () => {
    const image = makeImage([10, 20]);
    const ref = `${registry.host}/test/slots:v1`;
    await pushImage(newClient(), ref, image);
    const client = newClient({ maxConcurrentDownloads: 1 });
    const first = await client.fetch(ref, image.layers[0].desc);
    let second: unknown;
    const pending = client.fetch(ref, image.layers[1].desc).then((s) => (second = s));
    await new Promise((r) => setTimeout(r, 50));
    expect(second).toBeUndefined();
    await readStream(first);
    expect((await readStream(await pending)).equals(image.layers[1].bytes)).toBe(true);
  });
});

describe('RegistryClient authentication', () => {
  const started: TestRegistry[] = [];
  const clients: RegistryClient[] = [];
  const start = async (...args: Parameters<typeof TestRegistry.start>) => {
    const r = await TestRegistry.start(...args);
    started.push(r);
    return r;
  };
  const newClient = (options: Partial<RegistryClientOptions> = {}) => {
    const c = new RegistryClient({ hosts: staticHosts({ scheme: 'http' }), retryDelayMs: 10, ...options });
    clients.push(c);
    return c;
  };
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.close()));
    await Promise.all(started.splice(0).map((r) => r.stop()));
  });

  it('uses basic credentials, and names the registry when they are wrong or missing', async () => {
    const registry = await start({ auth: { kind: 'basic', username: 'alice', password: 's3cret' } });
    const asked: string[] = [];
    const client = newClient({
      credentials: async (host) => {
        asked.push(host);
        return { username: 'alice', secret: 's3cret' };
      },
    });
    const image = makeImage([10]);
    const ref = `${registry.host}/test/basic:v1`;
    await pushImage(client, ref, image);
    await pullAndCheck(client, ref, image);
    expect(asked).toEqual([registry.host]);

    const wrong = await rejectionOf(newClient({ credentials: async () => ({ username: 'alice', secret: 'nope' }) }).resolve(ref));
    expect(wrong).toBeInstanceOf(RegistryAuthError);
    expect(wrong.message).toContain(registry.host);
    expect((wrong as RegistryAuthError).status).toBe(401);

    const none = await rejectionOf(newClient().resolve(ref));
    expect(isRegistryAuthError(none)).toBe(true);
    expect(none.message).toContain(`${registry.host}: authentication required and no credentials were given`);
  });

  it('gets bearer tokens with the repository scopes and reuses them until they expire', async () => {
    const registry = await start({ auth: { kind: 'token', username: 'bob', password: 'pw' } });
    const client = newClient({ credentials: async () => ({ username: 'bob', secret: 'pw' }) });
    const image = makeImage([10, 20]);
    const ref = `${registry.host}/test/token:v1`;
    await pushImage(client, ref, image);
    const afterPush = registry.tokenRequests.length;
    expect(registry.tokenRequests[0]).toMatchObject({ method: 'GET', account: 'bob', scopes: ['repository:test/token:pull,push'], granted: true });

    await pullAndCheck(client, ref, image);
    await pullAndCheck(client, ref, image);
    // One token for the pull scope, reused by every later request.
    expect(registry.tokenRequests.slice(afterPush).map((r) => r.scopes)).toEqual([['repository:test/token:pull']]);
    expect(registry.tokenRequests.every((r) => r.granted)).toBe(true);

    // A mount asks for pull on the source repository too.
    const layer = image.layers[0];
    expect(await client.push(`${registry.host}/test/token-copy:v1`, layer.desc, layer.bytes, { mountFrom: 'test/token' })).toBe('mounted');
    expect(registry.tokenRequests.at(-1)!.scopes).toEqual(['repository:test/token-copy:pull,push', 'repository:test/token:pull']);
  });

  it('fails wrong bearer credentials with one token request and a message naming the registry', async () => {
    const registry = await start({ auth: { kind: 'token', username: 'bob', password: 'pw' } });
    const client = newClient({ credentials: async () => ({ username: 'bob', secret: 'wrong' }) });
    const err = await rejectionOf(client.resolve(`${registry.host}/test/token:v1`));
    expect(isRegistryAuthError(err)).toBe(true);
    expect(err.message).toContain(registry.host);
    expect(err.message).toContain('credentials given were refused');
    expect(registry.tokenRequests).toEqual([expect.objectContaining({ account: 'bob', granted: false })]);
  });

  it('refuses after one retry when the registry keeps saying 401 to a fresh token (no retry storm)', async () => {
    // Anonymous callers get tokens without access: the registry answers 401 to them.
    const registry = await start({ auth: { kind: 'token', username: 'bob', password: 'pw' } });
    const client = newClient();
    const err = await rejectionOf(client.resolve(`${registry.host}/test/token:v1`));
    expect(isRegistryAuthError(err)).toBe(true);
    expect(err.message).toContain(`${registry.host}: authentication failed`);
    expect(registry.tokenRequests).toHaveLength(1);
  });

  it('accepts access_token, fetches a new token after expires_in, and uses refresh tokens (OAuth2 POST)', async () => {
    const registry = await start({
      auth: { kind: 'token', username: 'bob', password: 'pw', tokenField: 'access_token', tokenTtlSeconds: 2, refreshToken: 'rt-123' },
    });
    const image = makeImage([10]);
    const ref = `${registry.host}/test/oauth:v1`;
    const client = newClient({ credentials: async () => ({ refreshToken: 'rt-123' }) });
    await pushImage(client, ref, image);
    expect(registry.tokenRequests[0]).toMatchObject({ method: 'POST', account: 'refresh-token', granted: true });

    const before = registry.tokenRequests.length;
    await client.resolve(ref);
    await client.resolve(ref);
    expect(registry.tokenRequests.length).toBe(before + 1);
    // Renewed a tenth of the lifetime early: after 1.8 s.
    await new Promise((r) => setTimeout(r, 1_900));
    await client.resolve(ref);
    expect(registry.tokenRequests.length).toBe(before + 2);
  });
});

describe('RegistryClient over TLS', () => {
  let registry: TestRegistry;
  let mtls: TestRegistry;
  const clients: RegistryClient[] = [];
  const newClient = (options: RegistryClientOptions) => {
    const c = new RegistryClient({ retries: 0, ...options });
    clients.push(c);
    return c;
  };
  const image = makeImage([10]);

  beforeAll(async () => {
    [registry, mtls] = await Promise.all([TestRegistry.start({ tls: true }), TestRegistry.start({ tls: { requireClientCert: true } })]);
  });
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.close()));
  });
  afterAll(async () => {
    await Promise.all([registry?.stop(), mtls?.stop()]);
  });

  it('trusts the registry through a configured CA, and fails without it', async () => {
    const ref = `${registry.host}/test/tls:v1`;
    const client = newClient({ hosts: staticHosts({ tls: { ca: [registry.certs!.ca] } }) });
    await pushImage(client, ref, image);
    await pullAndCheck(client, ref, image);

    const err = await rejectionOf(newClient({ hosts: staticHosts() }).resolve(ref));
    expect(toGrpcStatus(err).code).toBe(GrpcCode.UNAVAILABLE);
    expect(err.message).toMatch(/certificate/i);
  });

  it('connects without verification when skip_verify is set', async () => {
    const ref = `${registry.host}/test/skip-verify:v1`;
    const client = newClient({ hosts: staticHosts({ tls: { skipVerify: true } }) });
    await pushImage(client, ref, image);
    await pullAndCheck(client, ref, image);
  });

  it('presents a client certificate to a registry that requires one', async () => {
    const ref = `${mtls.host}/test/mtls:v1`;
    const { ca, clientCert, clientKey } = mtls.certs!;
    const client = newClient({ hosts: staticHosts({ tls: { ca: [ca], clientCerts: [{ cert: clientCert, key: clientKey }] } }) });
    await pushImage(client, ref, image);
    await pullAndCheck(client, ref, image);

    const err = await rejectionOf(newClient({ hosts: staticHosts({ tls: { ca: [ca] } }) }).resolve(ref));
    expect(toGrpcStatus(err).code).toBe(GrpcCode.UNAVAILABLE);
    expect(isNotFound(err)).toBe(false);
  });
});
