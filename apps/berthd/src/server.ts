import { chmodSync, chownSync, existsSync, mkdirSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { dirname } from 'node:path';
import { performance } from 'node:perf_hooks';
import * as grpc from '@grpc/grpc-js';
import { FailedPreconditionError } from '@berth/errdefs';
import { GRPC_PLUGIN_TYPE, GrpcServicePlugin, withReplyBarrier } from '@berth/grpc';
import { METADATA_PLUGIN_TYPE, type MetadataDb } from '@berth/metadata';
import type { Logger } from '@berth/log';
import type { GrpcServerMetrics, MetricsServer } from '@berth/metrics';
import { Registration, loadPluginModules } from '@berth/plugin';
import { LoadedPlugins, loadPlugins } from '@berth/plugin/loader';
import { TtrpcServer, TtrpcServicePlugin } from '@berth/ttrpc';
import { builtinPlugins } from './builtins';
import { DaemonConfig } from './config';
import type { DebugServer } from './debug-server';
import { proxyPlugins } from './proxy-plugins';
import { RootLock } from './root-lock';
import { shareWithPluginModules } from './shared-modules';
import { BERTH_VERSION, CONTAINERD_API_VERSION } from './version';

export interface DaemonOptions {
  config: DaemonConfig;
  logger: Logger;
  /** The plugin list; the built-in plugins by default. */
  registrations?: readonly Registration[];
}

/** Reports whether something accepts connections on a unix socket path. */
function socketAnswers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(path);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/** Reports whether something serves `path`; removes it if it is a stale socket. */
async function claimSocket(path: string): Promise<void> {
  if (!existsSync(path)) return;
  if (await socketAnswers(path)) throw new FailedPreconditionError(`address ${path} is already served by another daemon`);
  rmSync(path, { force: true });
}

/** The daemon's HTTP endpoints besides the gRPC API, when configured. */
interface Endpoints {
  metrics?: MetricsServer;
  debug?: DebugServer;
}

/**
 * A gRPC plugin whose calls do not finish on their own (event subscriptions): told to end them
 * once the server stops accepting calls, so they do not hold up the shutdown grace period.
 */
interface Drainable {
  drain?(): void;
}

/**
 * A running berthd: its plugins, its gRPC server on a unix socket and, as containerd, a ttrpc
 * server on `<address>.ttrpc` for the services plugins offer over ttrpc (events Forward, which
 * shims use). The daemon owns both listeners; plugins only hand over services.
 */
export class Daemon {
  private stopping?: Promise<void>;

  private constructor(
    readonly config: DaemonConfig,
    private readonly logger: Logger,
    private readonly lock: RootLock,
    readonly plugins: LoadedPlugins,
    private readonly server: grpc.Server,
    private readonly ttrpc: TtrpcServer,
    private readonly endpoints: Endpoints,
  ) {}

  get address(): string {
    return this.config.grpc.address;
  }

  /** Starts a daemon: takes the root, loads the plugin graph, serves the gRPC API. */
  static async start(options: DaemonOptions): Promise<Daemon> {
    const t0 = performance.now();
    const { config, logger } = options;
    logger.info('starting berthd', { version: BERTH_VERSION, containerd_api: CONTAINERD_API_VERSION, root: config.root, state: config.state });
    mkdirSync(config.root, { recursive: true, mode: 0o711 });
    mkdirSync(config.state, { recursive: true, mode: 0o711 });
    const lock = await RootLock.acquire(config.root);
    let plugins: LoadedPlugins | undefined;
    let ttrpc: TtrpcServer | undefined;
    const endpoints: Endpoints = {};
    try {
      const base = [...(options.registrations ?? builtinPlugins), ...proxyPlugins(config.proxy_plugins, logger)];
      let modules: Registration[] = [];
      if (config.plugin_modules.length > 0) {
        shareWithPluginModules();
        modules = await loadPluginModules(config.plugin_modules, { baseDir: process.cwd(), existing: base, logger });
      }
      plugins = await loadPlugins([...base, ...modules], {
        root: config.root,
        state: config.state,
        address: config.grpc.address,
        sections: config.plugins,
        disabled: config.disabled_plugins,
        required: config.required_plugins,
        logger,
      });
      // Calls are counted only when something reads the counts (metrics or the debug endpoint).
      const counted = config.metrics.address !== '' || config.debug.address !== '';
      // The metrics and debug modules (prom-client, node:http, node:inspector) load only then.
      const metrics = counted ? (require('@berth/metrics') as typeof import('@berth/metrics')) : undefined;
      const grpcMetrics = metrics ? new metrics.GrpcServerMetrics({ histogram: config.metrics.grpc_histogram }) : undefined;
      const server = new grpc.Server({
        'grpc.max_receive_message_length': config.grpc.max_recv_message_size,
        'grpc.max_send_message_length': config.grpc.max_send_message_size,
        interceptors: grpcMetrics ? [grpcMetrics.interceptor] : [],
        // channelz (grpc-js's call and socket tracking for the channelz service, which berthd does
        // not serve, as containerd does not) costs every call; Prometheus metrics count calls.
        'grpc.enable_channelz': 0,
      });
      widenFlowControl(server, logger);
      // A reply acknowledges writes only once they are on disk: the metadata database groups its syncs.
      const db = [...plugins.ofType<MetadataDb>(METADATA_PLUGIN_TYPE).values()][0];
      // Nothing unsynced (every read, most of the time): the reply goes without waiting.
      const barrier = () => (db && db.unsynced > 0 ? db.durable() : undefined);
      for (const [id, instance] of plugins.ofType<GrpcServicePlugin>(GRPC_PLUGIN_TYPE)) {
        for (const svc of instance.services) {
          const held = withReplyBarrier(svc, barrier, logger);
          server.addService(held.definition, held.implementation);
          grpcMetrics?.addService(svc.definition);
        }
        logger.debug('registered gRPC service', { id });
      }
      ttrpc = new TtrpcServer({ logger });
      for (const [id, instance] of plugins.ofType<Partial<TtrpcServicePlugin>>(GRPC_PLUGIN_TYPE)) {
        for (const svc of instance.ttrpcServices ?? []) ttrpc.register(svc);
        if (instance.ttrpcServices?.length) logger.debug('registered ttrpc service', { id });
      }
      if (metrics && grpcMetrics && config.metrics.address !== '') {
        const { buildRegistry } = require('./metrics') as typeof import('./metrics');
        const { registry, dispose } = buildRegistry(plugins, grpcMetrics);
        endpoints.metrics = await metrics.MetricsServer.listen(config.metrics.address, registry, logger, dispose);
      }
      if (grpcMetrics && config.debug.address !== '') {
        await claimSocket(config.debug.address);
        const { DebugServer } = require('./debug-server') as typeof import('./debug-server');
        endpoints.debug = await DebugServer.listen({ ...config.debug, logger, inFlight: () => grpcMetrics.inFlight() });
      }
      await Daemon.listen(server, ttrpc, config, logger);
      logger.info(`berthd successfully booted in ${((performance.now() - t0) / 1000).toFixed(3)}s`);
      return new Daemon(config, logger, lock, plugins, server, ttrpc, endpoints);
    } catch (err) {
      await endpoints.metrics?.close();
      await endpoints.debug?.close();
      await ttrpc?.close(0);
      await plugins?.close();
      lock.release();
      throw err;
    }
  }

  private static async listen(server: grpc.Server, ttrpc: TtrpcServer, config: DaemonConfig, logger: Logger): Promise<void> {
    const address = config.grpc.address;
    const ttrpcAddress = `${address}.ttrpc`;
    const dir = dirname(address);
    mkdirSync(dir, { recursive: true, mode: 0o711 });
    chmodSync(dir, 0o711);
    await claimSocket(address);
    await claimSocket(ttrpcAddress);
    const secure = (path: string) => {
      chmodSync(path, 0o660);
      if (config.grpc.uid !== 0 || config.grpc.gid !== 0) chownSync(path, config.grpc.uid, config.grpc.gid);
    };
    await ttrpc.listen(ttrpcAddress);
    secure(ttrpcAddress);
    try {
      await new Promise<void>((resolve, reject) =>
        server.bindAsync(`unix:${address}`, grpc.ServerCredentials.createInsecure(), (err) => (err ? reject(err) : resolve())),
      );
    } catch (err) {
      rmSync(ttrpcAddress, { force: true });
      throw err;
    }
    secure(address);
    widenConnectionWindows(server, logger);
    logger.info('serving...', { address: ttrpcAddress });
    logger.info('serving...', { address });
  }

  /**
   * Stops serving: refuses new calls, lets in-flight calls finish (up to `graceMs`, then cancels
   * them), closes plugins in reverse order, removes the socket and frees the root.
   */
  stop(graceMs = 10_000): Promise<void> {
    this.stopping ??= (async () => {
      this.logger.info('stopping berthd');
      const grpcDone = new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          this.logger.warn('in-flight calls did not finish in time; cancelling them', { ms: graceMs });
          this.server.forceShutdown();
          resolve();
        }, graceMs);
        this.server.tryShutdown(() => {
          clearTimeout(timer);
          resolve();
        });
      });
      const ttrpcDone = this.ttrpc.close(graceMs);
      // No new call can start now: end the calls that would otherwise last until their client leaves.
      for (const instance of this.plugins.ofType<Drainable>(GRPC_PLUGIN_TYPE).values()) instance.drain?.();
      await Promise.all([grpcDone, ttrpcDone]);
      await this.endpoints.metrics?.close();
      await this.endpoints.debug?.close();
      await this.plugins.close();
      rmSync(this.config.grpc.address, { force: true });
      rmSync(`${this.config.grpc.address}.ttrpc`, { force: true });
      this.lock.release();
      this.logger.info('berthd stopped');
    })();
    return this.stopping;
  }
}

/**
 * HTTP/2 flow-control windows for the gRPC listener. Node's defaults (64 KiB per stream and per
 * connection) let a client have only 64 KiB in flight, so an upload (Content.Write: pulls,
 * imports, ctr content ingest) waits a round trip per 64 KiB; grpc-go's server grows its
 * windows instead. grpc-js has no server option for them, so they are set on its internals:
 * the per-stream window in the settings it creates its HTTP/2 server with, and the connection
 * window on each session. If grpc-js changes those internals, berthd logs it and keeps Node's
 * defaults (a test checks the windows berthd advertises).
 */
export const STREAM_WINDOW = 4 << 20;
export const CONNECTION_WINDOW = 16 << 20;

interface GrpcServerInternals {
  commonServerOptions?: { settings?: Record<string, unknown> };
  http2Servers?: Map<{ on(event: 'session', fn: (s: { setLocalWindowSize(n: number): void }) => void): void }, unknown>;
}

function widenFlowControl(server: grpc.Server, logger: Logger): void {
  const internals = server as unknown as GrpcServerInternals;
  if (!internals.commonServerOptions) {
    logger.warn('cannot set HTTP/2 stream windows: grpc-js internals changed; uploads will be slower');
    return;
  }
  internals.commonServerOptions.settings = { ...internals.commonServerOptions.settings, initialWindowSize: STREAM_WINDOW };
}

function widenConnectionWindows(server: grpc.Server, logger: Logger): void {
  const servers = (server as unknown as GrpcServerInternals).http2Servers;
  if (!(servers instanceof Map) || servers.size === 0) {
    logger.warn('cannot set HTTP/2 connection windows: grpc-js internals changed; uploads will be slower');
    return;
  }
  for (const h2 of servers.keys()) {
    h2.on('session', (session) => {
      try {
        session.setLocalWindowSize(CONNECTION_WINDOW);
      } catch {
        // The session closed before the window could be set: nothing to widen.
      }
    });
  }
}
