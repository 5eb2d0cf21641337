import { randomBytes } from 'node:crypto';
import { createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Readable } from 'node:stream';
import { ManifestMediaType, type Descriptor } from './descriptor';
import { digestOf } from './digest';
import type { HostCapability, RegistryHost } from './hosts';

/** Test content: an OCI image with its config and layers, as bytes and descriptors. */
export interface TestImage {
  manifest: { desc: Descriptor; bytes: Buffer };
  config: { desc: Descriptor; bytes: Buffer };
  layers: Array<{ desc: Descriptor; bytes: Buffer }>;
}

/** Builds an OCI image whose layers are random bytes of the given sizes. */
export function makeImage(layerSizes: number[] = [1024, 2048, 3000]): TestImage {
  const blob = (mediaType: string, bytes: Buffer) => ({ desc: { mediaType, digest: digestOf(bytes), size: bytes.length }, bytes });
  const layers = layerSizes.map((n) => blob('application/vnd.oci.image.layer.v1.tar+gzip', randomBytes(n)));
  const config = blob(
    'application/vnd.oci.image.config.v1+json',
    Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: layers.map((l) => l.desc.digest) }, nonce: randomBytes(8).toString('hex') })),
  );
  const manifest = blob(
    ManifestMediaType.ociManifest,
    Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: ManifestMediaType.ociManifest, config: config.desc, layers: layers.map((l) => l.desc) })),
  );
  return { manifest, config, layers };
}

/** Reads a stream to the end. */
export async function readStream(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/** Builds one endpoint by hand, as hosts.toml would produce it. */
export function endpoint(
  registry: string,
  host: string,
  overrides: Partial<Omit<RegistryHost, 'capabilities'>> & { capabilities?: HostCapability[] } = {},
): RegistryHost {
  const { capabilities, ...rest } = overrides;
  return {
    registry,
    scheme: 'http',
    host,
    path: '/v2',
    capabilities: new Set(capabilities ?? ['pull', 'resolve', 'push']),
    headers: {},
    ...rest,
  };
}

/** A request a {@link ScriptedServer} or {@link LoggingProxy} saw. */
export interface SeenRequest {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
}

/**
 * A node:http server on 127.0.0.1 that answers with a handler the test sets, logging every
 * request: the misbehaving registry of the transport tests.
 */
export class ScriptedServer {
  readonly seen: SeenRequest[] = [];
  handler: (req: IncomingMessage, res: ServerResponse) => void = (_req, res) => {
    res.statusCode = 404;
    res.end();
  };

  private constructor(private readonly server: Server) {}

  static async start(): Promise<ScriptedServer> {
    let self!: ScriptedServer;
    const server = createServer((req, res) => {
      self.seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers });
      self.handler(req, res);
    });
    self = new ScriptedServer(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return self;
  }

  get host(): string {
    return `127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/** A node:http reverse proxy on 127.0.0.1 in front of a registry, logging every request. */
export class LoggingProxy {
  readonly seen: SeenRequest[] = [];

  private constructor(private readonly server: Server) {}

  static async start(target: string): Promise<LoggingProxy> {
    let self!: LoggingProxy;
    const server = createServer((req, res) => {
      self.seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers });
      const [hostname, port] = target.split(':');
      const upstream = httpRequest({ hostname, port: Number(port), method: req.method, path: req.url, headers: req.headers }, (up) => {
        res.writeHead(up.statusCode ?? 502, up.headers);
        up.pipe(res);
      });
      upstream.on('error', () => res.destroy());
      req.pipe(upstream);
    });
    self = new LoggingProxy(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return self;
  }

  get host(): string {
    return `127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  /** `METHOD path` of every request, query included. */
  get lines(): string[] {
    return this.seen.map((r) => `${r.method} ${r.url}`);
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
