import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer as createNetServer, type Server as NetServer, type Socket } from 'node:net';
import { GrpcCode, kindOf, toGrpcStatus } from '@berth/errdefs';
import { freePort, rejectionOf } from '@berth/testing';
import { ManifestMediaType } from './descriptor';
import { digestOf } from './digest';
import type { RegistryHost, RegistryHosts } from './hosts';
import { RegistryClient, type RegistryClientOptions } from './registry-client';
import { RegistryHttp } from './registry-http';
import { ScriptedServer, endpoint, readStream } from './test-support';

const hostsOf = (...list: RegistryHost[]): RegistryHosts => async () => list;

const blob = randomBytes(64 * 1024);
const desc = { mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: digestOf(blob), size: blob.length };
const blobPath = `/v2/test/app/blobs/${desc.digest}`;

/** Answers a GET for `bytes` honouring `Range: bytes=<n>-` with 206. */
function serveRange(bytes: Buffer, req: IncomingMessage, res: ServerResponse): void {
  const m = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
  if (!m) {
    res.writeHead(200, { 'Content-Length': bytes.length });
    res.end(bytes);
    return;
  }
  const start = Number(m[1]);
  res.writeHead(206, { 'Content-Length': bytes.length - start, 'Content-Range': `bytes ${start}-${bytes.length - 1}/${bytes.length}` });
  res.end(bytes.subarray(start));
}

/** Sends the headers for the whole blob and its first `n` bytes, then drops the connection. */
function dropAfter(n: number, res: ServerResponse): void {
  res.writeHead(200, { 'Content-Length': blob.length });
  res.write(blob.subarray(0, n), () => res.socket?.destroy());
}

describe('fetching from a misbehaving registry', () => {
  let server: ScriptedServer;
  const clients: RegistryClient[] = [];
  const servers: Array<{ stop(): Promise<void> }> = [];
  const client = (options: Partial<RegistryClientOptions> = {}) => {
    const c = new RegistryClient({ hosts: hostsOf(endpoint(server.host, server.host)), retryDelayMs: 5, idleTimeoutMs: 5_000, ...options });
    clients.push(c);
    return c;
  };
  const ref = () => `${server.host}/test/app:v1`;

  beforeEach(async () => {
    server = await ScriptedServer.start();
  });
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.close()));
    await Promise.all([server, ...servers.splice(0)].map((s) => s.stop()));
  });

  it('resumes with Range after the connection drops mid-blob', async () => {
    server.handler = (req, res) => (req.headers.range ? serveRange(blob, req, res) : dropAfter(20_000, res));
    const back = await readStream(await client().fetch(ref(), desc));
    expect(back.equals(blob)).toBe(true);
    expect(server.seen.map((r) => [r.method, r.url, r.headers.range])).toEqual([
      ['GET', blobPath, undefined],
      ['GET', blobPath, 'bytes=20000-'],
    ]);
  });

  it('fetchTo: resumes into the sink after a drop, pauses the connection while the sink is busy, ends with its failure', async () => {
    server.handler = (req, res) => (req.headers.range ? serveRange(blob, req, res) : dropAfter(20_000, res));
    const chunks: Buffer[] = [];
    let busy = false;
    await client().fetchTo(ref(), desc, async (chunk) => {
      // No chunk arrives while the previous one is still being taken.
      expect(busy).toBe(false);
      busy = true;
      chunks.push(Buffer.from(chunk));
      await new Promise((r) => setTimeout(r, 1));
      busy = false;
    });
    expect(Buffer.concat(chunks).equals(blob)).toBe(true);
    expect(server.seen.map((r) => r.headers.range)).toEqual([undefined, 'bytes=20000-']);

    // A sink that fails ends the fetch with its own error, not a retry.
    server.handler = (req, res) => serveRange(blob, req, res);
    const before = server.seen.length;
    const err = await rejectionOf(
      client().fetchTo(ref(), desc, () => Promise.reject(new Error('disk full'))),
    );
    expect(err.message).toBe('disk full');
    expect(server.seen.length - before).toBe(1);
  });

  it('restarts from byte 0 when the registry answers a Range request with 200, keeping the stream continuous', async () => {
    let calls = 0;
    server.handler = (_req, res) => (calls++ === 0 ? dropAfter(20_000, res) : serveRange(blob, { headers: {} } as IncomingMessage, res));
    const restarts: unknown[] = [];
    const back = await readStream(await client().fetch(ref(), desc, { onRestart: (e) => restarts.push(e) }));
    expect(back.equals(blob)).toBe(true);
    expect(restarts).toEqual([{ position: 20_000, host: server.host }]);
    expect(server.seen[1].headers.range).toBe('bytes=20000-');
  });

  it('starts a fetch at an offset, and verifies the whole digest when the registry ignores Range', async () => {
    server.handler = (req, res) => serveRange(blob, req, res);
    const tail = await readStream(await client().fetch(ref(), desc, { offset: 1000 }));
    expect(tail.equals(blob.subarray(1000))).toBe(true);
    expect(server.seen[0].headers.range).toBe('bytes=1000-');

    // Range ignored, and the bytes before the offset are wrong: caught although never streamed.
    const corrupt = Buffer.from(blob);
    corrupt[0] ^= 0xff;
    server.handler = (_req, res) => {
      res.writeHead(200, { 'Content-Length': corrupt.length });
      res.end(corrupt);
    };
    const restarts: unknown[] = [];
    const stream = await client().fetch(ref(), desc, { offset: 1000, onRestart: (e) => restarts.push(e) });
    const err = await rejectionOf(readStream(stream));
    expect(restarts).toEqual([{ position: 1000, host: server.host }]);
    expect(toGrpcStatus(err).code).toBe(GrpcCode.FAILED_PRECONDITION);
    expect(err.message).toContain(`fetch ${desc.digest}: digest mismatch`);
  });

  it('fails the stream, naming the digest, when the bytes are wrong', async () => {
    const wrong = randomBytes(blob.length);
    server.handler = (_req, res) => {
      res.writeHead(200, { 'Content-Length': wrong.length });
      res.end(wrong);
    };
    const err = await rejectionOf(readStream(await client().fetch(ref(), desc)));
    expect(toGrpcStatus(err)).toEqual({
      code: GrpcCode.FAILED_PRECONDITION,
      details: `fetch ${desc.digest}: digest mismatch: got ${digestOf(wrong)}, expected ${desc.digest}: failed precondition`,
    });
  });

  it('fails on a size mismatch: announced, or found while streaming', async () => {
    server.handler = (_req, res) => {
      res.writeHead(200, { 'Content-Length': blob.length + 1 });
      res.end(Buffer.concat([blob, Buffer.from('x')]));
    };
    const announced = await rejectionOf(client().fetch(ref(), desc));
    expect(announced.message).toContain(`fetch ${desc.digest}: size mismatch`);

    server.handler = (_req, res) => {
      res.writeHead(200); // chunked: no length announced
      res.end(Buffer.concat([blob, Buffer.from('extra')]));
    };
    const streamed = await rejectionOf(readStream(await client().fetch(ref(), desc)));
    expect(streamed.message).toContain(`sent more than ${blob.length} bytes`);
    expect(kindOf(streamed)).toBe('failed-precondition');
  });

  it('stops a redirect loop with an error naming the URL', async () => {
    server.handler = (req, res) => {
      res.writeHead(302, { Location: req.url === blobPath ? '/elsewhere' : blobPath });
      res.end();
    };
    const err = await rejectionOf(client().fetch(ref(), desc));
    expect(err.message).toContain(`GET http://${server.host}${blobPath}: redirect loop at http://${server.host}${blobPath}`);
    // Not retried: a loop is configuration, not a passing failure.
    expect(server.seen).toHaveLength(2);
  });

  it('follows a redirect to another origin without sending the registry credentials there', async () => {
    const storage = await ScriptedServer.start();
    servers.push(storage);
    storage.handler = (req, res) => serveRange(blob, req, res);
    server.handler = (req, res) => {
      if (!req.headers.authorization) {
        res.writeHead(401, { 'WWW-Authenticate': 'Basic realm="test"' });
        res.end();
        return;
      }
      res.writeHead(307, { Location: `http://${storage.host}/bucket/blob?sig=1` });
      res.end();
    };
    const c = client({ credentials: async () => ({ username: 'u', secret: 'p' }) });
    expect((await readStream(await c.fetch(ref(), desc))).equals(blob)).toBe(true);
    expect(server.seen[1].headers.authorization).toBe(`Basic ${Buffer.from('u:p').toString('base64')}`);
    expect(storage.seen.map((r) => [r.url, r.headers.authorization])).toEqual([['/bucket/blob?sig=1', undefined]]);
  });

  it('gives up on a registry that never answers after the idle timeout, with one retry', async () => {
    server.handler = () => undefined;
    const started = Date.now();
    const err = await rejectionOf(client({ idleTimeoutMs: 200, retries: 1 }).fetch(ref(), desc));
    expect(Date.now() - started).toBeLessThan(3_000);
    expect(toGrpcStatus(err).code).toBe(GrpcCode.UNAVAILABLE);
    expect(err.message).toContain('no data from the registry for 200 ms');
    expect(server.seen).toHaveLength(2);
  });

  it('resumes after a body that stalls past the idle timeout', async () => {
    server.handler = (req, res) => {
      if (req.headers.range) return serveRange(blob, req, res);
      res.writeHead(200, { 'Content-Length': blob.length });
      res.write(blob.subarray(0, 10_000)); // then nothing
    };
    const back = await readStream(await client({ idleTimeoutMs: 200 }).fetch(ref(), desc));
    expect(back.equals(blob)).toBe(true);
    expect(server.seen[1].headers.range).toBe('bytes=10000-');
  });

  it('cancels a waiting request and a running stream when the signal fires', async () => {
    server.handler = () => undefined;
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 50);
    const err = await rejectionOf(client().fetch(ref(), desc, { signal: ac.signal }));
    expect(toGrpcStatus(err).code).toBe(GrpcCode.CANCELLED);

    server.handler = (_req, res) => {
      res.writeHead(200, { 'Content-Length': blob.length });
      res.write(blob.subarray(0, 1000));
    };
    const ac2 = new AbortController();
    const stream = await client().fetch(ref(), desc, { signal: ac2.signal });
    const first = await new Promise<Buffer>((resolve) => stream.once('data', resolve));
    expect(first.length).toBeGreaterThan(0);
    const ended = rejectionOf(readStream(stream));
    ac2.abort();
    expect(kindOf(await ended)).toBe('canceled');
  });

  it('times out a TLS handshake that never completes (connect timeout)', async () => {
    const sockets = new Set<Socket>();
    const silent: NetServer = createNetServer((s) => sockets.add(s));
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    servers.push({
      stop: async () => {
        for (const s of sockets) s.destroy();
        await new Promise<void>((r) => silent.close(() => r()));
      },
    });
    const host = `127.0.0.1:${(silent.address() as { port: number }).port}`;
    const c = client({ hosts: hostsOf(endpoint(host, host, { scheme: 'https' })), connectTimeoutMs: 200, retries: 0 });
    const err = await rejectionOf(c.fetch(`${host}/test/app:v1`, desc));
    expect(toGrpcStatus(err).code).toBe(GrpcCode.UNAVAILABLE);
    expect(err.message).toContain('connect timeout after 200 ms');
  });
});

describe('pushing to a misbehaving registry', () => {
  let server: ScriptedServer;
  let client: RegistryClient;
  beforeEach(async () => {
    server = await ScriptedServer.start();
    client = new RegistryClient({ hosts: hostsOf(endpoint(server.host, server.host)), retryDelayMs: 5 });
  });
  afterEach(async () => {
    await client.close();
    await server.stop();
  });

  it('starts a new upload session after the connection drops during the upload', async () => {
    let sessions = 0;
    let puts = 0;
    const received: Buffer[] = [];
    server.handler = (req, res) => {
      if (req.method === 'HEAD') {
        res.writeHead(404);
        res.end();
      } else if (req.method === 'POST') {
        res.writeHead(202, { Location: `/v2/test/app/blobs/uploads/session-${++sessions}?_state=x` });
        res.end();
      } else if (req.method === 'PUT' && puts++ === 0) {
        req.once('data', () => req.socket.destroy());
      } else {
        const chunks: Buffer[] = [];
        req.on('data', (c: Buffer) => chunks.push(c));
        req.on('end', () => {
          received.push(Buffer.concat(chunks));
          res.writeHead(201, { 'Docker-Content-Digest': desc.digest });
          res.end();
        });
      }
    };
    expect(await client.push(`${server.host}/test/app:v1`, desc, blob)).toBe('uploaded');
    expect(server.seen.map((r) => `${r.method} ${r.url}`)).toEqual([
      `HEAD ${blobPath}`,
      'POST /v2/test/app/blobs/uploads/',
      `PUT /v2/test/app/blobs/uploads/session-1?_state=x&digest=${encodeURIComponent(desc.digest)}`,
      'POST /v2/test/app/blobs/uploads/',
      `PUT /v2/test/app/blobs/uploads/session-2?_state=x&digest=${encodeURIComponent(desc.digest)}`,
    ]);
    expect(received).toEqual([blob]);
  });

  it('reports a registry that stored another digest', async () => {
    server.handler = (req, res) => {
      if (req.method === 'HEAD') res.writeHead(404);
      else if (req.method === 'POST') res.writeHead(202, { Location: '/up/1' });
      else res.writeHead(201, { 'Docker-Content-Digest': digestOf(Buffer.from('other')) });
      req.resume();
      res.end();
    };
    const err = await rejectionOf(client.push(`${server.host}/test/app:v1`, desc, blob));
    expect(err.message).toContain(`registry stored digest ${digestOf(Buffer.from('other'))}, expected ${desc.digest}`);
  });
});

describe('resolving against misbehaving registries', () => {
  const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: ManifestMediaType.ociManifest, config: {}, layers: [] }));
  const manifestDigest = digestOf(manifest);
  const scripted: ScriptedServer[] = [];
  const clients: RegistryClient[] = [];
  const start = async () => {
    const s = await ScriptedServer.start();
    scripted.push(s);
    return s;
  };
  const client = (hosts: RegistryHost[], options: Partial<RegistryClientOptions> = {}) => {
    const c = new RegistryClient({ hosts: hostsOf(...hosts), retryDelayMs: 5, ...options });
    clients.push(c);
    return c;
  };
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.close()));
    await Promise.all(scripted.splice(0).map((s) => s.stop()));
  });

  /** Serves the manifest on GET; HEAD gets `head` (status and headers). */
  const manifestServer = (s: ScriptedServer, head: { status: number; headers?: Record<string, string> }, contentType: string = ManifestMediaType.ociManifest) => {
    s.handler = (req, res) => {
      if (req.method === 'HEAD') {
        res.writeHead(head.status, head.headers ?? {});
        res.end();
        return;
      }
      res.writeHead(200, { 'Content-Type': contentType, 'Content-Length': manifest.length });
      res.end(manifest);
    };
  };

  it('GETs the manifest when HEAD is refused (405), digesting the body', async () => {
    const s = await start();
    manifestServer(s, { status: 405 });
    const { descriptor } = await client([endpoint(s.host, s.host)]).resolve(`${s.host}/test/app:v1`);
    expect(descriptor).toEqual({ mediaType: ManifestMediaType.ociManifest, digest: manifestDigest, size: manifest.length });
    expect(s.seen.map((r) => `${r.method} ${r.url}`)).toEqual(['HEAD /v2/test/app/manifests/v1', 'GET /v2/test/app/manifests/v1']);
    expect(s.seen[0].headers.accept).toContain(ManifestMediaType.ociIndex);
  });

  it('GETs the manifest when HEAD has no Docker-Content-Digest, reading the media type from the body', async () => {
    const s = await start();
    manifestServer(s, { status: 200, headers: { 'Content-Type': 'application/json', 'Content-Length': String(manifest.length) } }, 'application/json');
    const { descriptor } = await client([endpoint(s.host, s.host)]).resolve(`${s.host}/test/app:v1`);
    expect(descriptor).toEqual({ mediaType: ManifestMediaType.ociManifest, digest: manifestDigest, size: manifest.length });
  });

  it('refuses schema 1 manifests with InvalidArgument', async () => {
    const s = await start();
    manifestServer(s, { status: 200, headers: { 'Content-Type': ManifestMediaType.dockerSchema1Signed, 'Docker-Content-Digest': manifestDigest, 'Content-Length': '10' } });
    const err = await rejectionOf(client([endpoint(s.host, s.host)]).resolve(`${s.host}/test/app:v1`));
    expect(toGrpcStatus(err).code).toBe(GrpcCode.INVALID_ARGUMENT);
    expect(err.message).toContain('schema 1');
  });

  it('fails at once on a 3xx that is not a redirect, without trying the next host', async () => {
    const [a, b] = [await start(), await start()];
    a.handler = (_req, res) => {
      res.writeHead(300);
      res.end();
    };
    manifestServer(b, { status: 405 });
    const err = await rejectionOf(client([endpoint('reg.test', a.host), endpoint('reg.test', b.host)]).resolve('reg.test/test/app:v1'));
    expect(err.message).toContain('300');
    expect(b.seen).toEqual([]);
  });

  it('returns the most advanced error when every host fails: other status > 404 > transport', async () => {
    const [a, b] = [await start(), await start()];
    const dead = `127.0.0.1:${await freePort()}`;
    a.handler = (_req, res) => {
      res.writeHead(500, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify({ errors: [{ code: 'UNKNOWN', message: 'disk on fire' }] }));
    };
    b.handler = (_req, res) => {
      res.writeHead(404);
      res.end();
    };
    const hosts = (...h: string[]) => h.map((x) => endpoint('reg.test', x));

    const e500 = await rejectionOf(client(hosts(dead, b.host, a.host), { retries: 0 }).resolve('reg.test/test/app:v1'));
    expect(toGrpcStatus(e500).code).toBe(GrpcCode.UNAVAILABLE);
    expect(e500.message).toContain('500 Internal Server Error: UNKNOWN: disk on fire');

    const e404 = await rejectionOf(client(hosts(dead, b.host)).resolve('reg.test/test/app:v1'));
    expect(toGrpcStatus(e404)).toEqual({ code: GrpcCode.NOT_FOUND, details: 'reg.test/test/app:v1: not found' });

    const eDead = await rejectionOf(client(hosts(dead)).resolve('reg.test/test/app:v1'));
    expect(toGrpcStatus(eDead).code).toBe(GrpcCode.UNAVAILABLE);
    expect(eDead.message).toContain('ECONNREFUSED');
  });

  it('resolves a digest as a blob when every host answers 404 for the manifest', async () => {
    const [a, b] = [await start(), await start()];
    a.handler = (_req, res) => {
      res.writeHead(404);
      res.end();
    };
    b.handler = (req, res) => {
      if (req.url?.includes('/blobs/')) {
        res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': blob.length, 'Docker-Content-Digest': desc.digest });
      } else {
        res.writeHead(404);
      }
      res.end();
    };
    const { descriptor } = await client([endpoint('reg.test', a.host), endpoint('reg.test', b.host)]).resolve(`reg.test/test/app@${desc.digest}`);
    expect(descriptor).toEqual({ mediaType: 'application/octet-stream', digest: desc.digest, size: blob.length });
    expect(a.seen.map((r) => r.url.split('?')[0])).toEqual([`/v2/test/app/manifests/${desc.digest}`, `/v2/test/app/blobs/${desc.digest}`]);
  });

  it('authenticates with a bearer token from the challenge realm and caches it', async () => {
    const s = await start();
    let tokens = 0;
    s.handler = (req, res) => {
      if (req.url?.startsWith('/token')) {
        tokens++;
        res.writeHead(200, { 'Content-Type': 'application/json' });
        res.end(JSON.stringify({ access_token: 'tok-1', expires_in: 300 }));
        return;
      }
      if (req.headers.authorization !== 'Bearer tok-1') {
        res.writeHead(401, { 'WWW-Authenticate': `Bearer realm="http://${s.host}/token",service="svc",scope="repository:test/app:pull"` });
        res.end();
        return;
      }
      manifestServer(s, { status: 200, headers: { 'Content-Type': ManifestMediaType.ociManifest, 'Docker-Content-Digest': manifestDigest, 'Content-Length': String(manifest.length) } });
      s.handler(req, res);
    };
    const c = client([endpoint(s.host, s.host)]);
    await c.resolve(`${s.host}/test/app:v1`);
    await c.resolve(`${s.host}/test/app:v1`);
    expect(tokens).toBe(1);
    const tokenRequest = s.seen.find((r) => r.url.startsWith('/token'))!;
    expect(tokenRequest.url).toBe('/token?service=svc&scope=repository%3Atest%2Fapp%3Apull');
  });

  it('leaves ?ns= off for docker.io served by registry-1.docker.io', () => {
    const http = new RegistryHttp({ userAgent: 't', connectTimeoutMs: 1, idleTimeoutMs: 1 });
    const hub = { ...endpoint('docker.io', 'registry-1.docker.io'), scheme: 'https' as const };
    expect(http.urlFor(hub, '/library/alpine/manifests/3.20').href).toBe('https://registry-1.docker.io/v2/library/alpine/manifests/3.20');
    const mirror = endpoint('docker.io', 'mirror.test:5000');
    expect(http.urlFor(mirror, '/library/alpine/manifests/3.20').href).toBe('http://mirror.test:5000/v2/library/alpine/manifests/3.20?ns=docker.io');
  });
});
