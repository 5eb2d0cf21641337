import type { BerthClient } from '@berth/client';
import type { Command } from 'commander';

/** berthd's socket unless BERTH_ADDRESS, CONTAINERD_ADDRESS or `--address` says otherwise. */
export const DEFAULT_ADDRESS = '/run/berth/berthd.sock';

/** The options every command takes (`berth --address A --namespace N <command>`). */
export interface GlobalOptions {
  address: string;
  namespace: string;
  /** Milliseconds to wait for the daemon's socket. */
  connectTimeout: number;
}

/** Reads the global options, from the flags first, then the environment, then the defaults. */
export function globalOptions(cmd: Command, env: NodeJS.ProcessEnv = process.env): GlobalOptions {
  const o = cmd.optsWithGlobals<{ address?: string; namespace?: string; connectTimeout?: string }>();
  const address = (o.address ?? env.BERTH_ADDRESS ?? env.CONTAINERD_ADDRESS ?? DEFAULT_ADDRESS).replace(/^unix:\/\//, '');
  const namespace = o.namespace ?? env.CONTAINERD_NAMESPACE ?? 'default';
  const connectTimeout = o.connectTimeout !== undefined ? Number(o.connectTimeout) * 1000 : 10_000;
  return { address, namespace, connectTimeout };
}

/**
 * Connects with the global options, runs `fn` and closes the connection whatever happens.
 * `@berth/client` is required here, not at the top: `berth --help` and `berth completion` never
 * load the gRPC stack.
 */
export async function withClient<T>(cmd: Command, fn: (client: BerthClient, globals: GlobalOptions) => Promise<T>): Promise<T> {
  const globals = globalOptions(cmd);
  const { connect } = require('@berth/client') as typeof import('@berth/client');
  const client = await connect({ address: globals.address, namespace: globals.namespace, timeout: globals.connectTimeout });
  try {
    return await fn(client, globals);
  } finally {
    client.close();
  }
}
