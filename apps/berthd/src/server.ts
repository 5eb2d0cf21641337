import { chmodSync, chownSync, existsSync, mkdirSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { dirname } from 'node:path';
import { performance } from 'node:perf_hooks';
import * as grpc from '@grpc/grpc-js';
import { FailedPreconditionError } from '@berth/errdefs';
import { GRPC_PLUGIN_TYPE, GrpcServicePlugin } from '@berth/grpc';
import type { Logger } from '@berth/log';
import { LoadedPlugins, Registration, loadPlugins } from '@berth/plugin';
import { builtinPlugins } from './builtins';
import { DaemonConfig } from './config';
import { RootLock } from './root-lock';

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

/** A running berthd: its plugins and its gRPC server on a unix socket. */
export class Daemon {
  private stopping?: Promise<void>;

  private constructor(
    readonly config: DaemonConfig,
    private readonly logger: Logger,
    private readonly lock: RootLock,
    readonly plugins: LoadedPlugins,
    private readonly server: grpc.Server,
  ) {}

  get address(): string {
    return this.config.grpc.address;
  }

  /** Starts a daemon: takes the root, loads the plugin graph, serves the gRPC API. */
  static async start(options: DaemonOptions): Promise<Daemon> {
    const t0 = performance.now();
    const { config, logger } = options;
    logger.info('starting berthd', { version: process.env.npm_package_version, root: config.root, state: config.state });
    mkdirSync(config.root, { recursive: true, mode: 0o711 });
    mkdirSync(config.state, { recursive: true, mode: 0o711 });
    const lock = await RootLock.acquire(config.root);
    let plugins: LoadedPlugins | undefined;
    try {
      plugins = await loadPlugins(options.registrations ?? builtinPlugins, {
        root: config.root,
        state: config.state,
        address: config.grpc.address,
        sections: config.plugins,
        disabled: config.disabled_plugins,
        required: config.required_plugins,
        logger,
      });
      const server = new grpc.Server({
        'grpc.max_receive_message_length': config.grpc.max_recv_message_size,
        'grpc.max_send_message_length': config.grpc.max_send_message_size,
      });
      for (const [id, instance] of plugins.ofType<GrpcServicePlugin>(GRPC_PLUGIN_TYPE)) {
        for (const svc of instance.services) server.addService(svc.definition, svc.implementation);
        logger.debug('registered gRPC service', { id });
      }
      await Daemon.listen(server, config, logger);
      logger.info(`berthd successfully booted in ${((performance.now() - t0) / 1000).toFixed(3)}s`);
      return new Daemon(config, logger, lock, plugins, server);
    } catch (err) {
      await plugins?.close();
      lock.release();
      throw err;
    }
  }

  private static async listen(server: grpc.Server, config: DaemonConfig, logger: Logger): Promise<void> {
    const address = config.grpc.address;
    const dir = dirname(address);
    mkdirSync(dir, { recursive: true, mode: 0o711 });
    chmodSync(dir, 0o711);
    if (existsSync(address)) {
      if (await socketAnswers(address)) {
        throw new FailedPreconditionError(`address ${address} is already served by another daemon`);
      }
      rmSync(address, { force: true });
    }
    await new Promise<void>((resolve, reject) =>
      server.bindAsync(`unix:${address}`, grpc.ServerCredentials.createInsecure(), (err) => (err ? reject(err) : resolve())),
    );
    chmodSync(address, 0o660);
    if (config.grpc.uid !== 0 || config.grpc.gid !== 0) chownSync(address, config.grpc.uid, config.grpc.gid);
    logger.info('serving...', { address });
  }

  /**
   * Stops serving: refuses new calls, lets in-flight calls finish (up to `graceMs`, then cancels
   * them), closes plugins in reverse order, removes the socket and frees the root.
   */
  stop(graceMs = 10_000): Promise<void> {
    this.stopping ??= (async () => {
      this.logger.info('stopping berthd');
      await new Promise<void>((resolve) => {
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
      await this.plugins.close();
      rmSync(this.config.grpc.address, { force: true });
      this.lock.release();
      this.logger.info('berthd stopped');
    })();
    return this.stopping;
  }
}
