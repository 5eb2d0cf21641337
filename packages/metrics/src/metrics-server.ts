import { Server, createServer } from 'node:http';
import { InvalidArgumentError } from '@berth/errdefs';
import type { Logger } from '@berth/log';
import type { Registry } from 'prom-client';

/** The path containerd serves its metrics at. */
export const METRICS_PATH = '/v1/metrics';

/** Splits a TCP address as Go's net.Listen takes it: `host:port`, `[v6]:port` or `:port`. */
export function parseTcpAddress(address: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(address);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) throw new InvalidArgumentError(`metrics address ${JSON.stringify(address)} must be host:port`);
  return { host: m[1] ?? m[2] ?? '', port };
}

/**
 * Serves a registry in Prometheus' text format at `/v1/metrics` on a TCP address (containerd's
 * `[metrics] address`). Other paths answer 404.
 */
export class MetricsServer {
  private constructor(
    private readonly server: Server,
    readonly address: string,
    private readonly onClose?: () => void,
  ) {}

  /** Serves `registry`; `onClose` runs when the server closes (to stop the registry's samplers). */
  static async listen(address: string, registry: Registry, logger: Logger, onClose?: () => void): Promise<MetricsServer> {
    const { host, port } = parseTcpAddress(address);
    const server = createServer((req, res) => {
      const path = (req.url ?? '').split('?')[0];
      if (path !== METRICS_PATH || (req.method !== 'GET' && req.method !== 'HEAD')) {
        res.writeHead(404, { 'content-type': 'text/plain' }).end('404 page not found\n');
        return;
      }
      registry.metrics().then(
        (text) => res.writeHead(200, { 'content-type': registry.contentType }).end(req.method === 'HEAD' ? undefined : text),
        (err) => {
          logger.error('collecting metrics', { error: (err as Error).message });
          res.writeHead(500, { 'content-type': 'text/plain' }).end(`${(err as Error).message}\n`);
        },
      );
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err) => {
        onClose?.();
        reject(new InvalidArgumentError(`metrics address ${address}: ${err.message}`, { cause: err }));
      });
      server.listen({ host: host === '' ? undefined : host, port }, () => resolve());
    });
    const bound = server.address();
    const actual = bound && typeof bound === 'object' ? `${bound.family === 'IPv6' ? `[${bound.address}]` : bound.address}:${bound.port}` : address;
    logger.info('serving metrics', { address: actual, path: METRICS_PATH });
    return new MetricsServer(server, actual, onClose);
  }

  /** Stops listening and closes open connections. */
  close(): Promise<void> {
    this.onClose?.();
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }
}
