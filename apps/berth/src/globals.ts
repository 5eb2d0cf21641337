import { nonNegative } from './errors';

/** berthd's socket unless BERTH_ADDRESS, CONTAINERD_ADDRESS or `--address` says otherwise. */
export const DEFAULT_ADDRESS = '/run/berth/berthd.sock';

/** The options every command takes (`berth --address A --namespace N <command>`). */
export interface GlobalOptions {
  address: string;
  namespace: string;
  /** Milliseconds to wait for the daemon's socket. */
  connectTimeout: number;
}

/** The global flags as given on the command line (`--connect-timeout` in seconds). */
export interface GlobalFlags {
  address?: string;
  namespace?: string;
  connectTimeout?: string;
}

/**
 * Fills in the global options the flags leave out, from the environment and the defaults; a
 * connect timeout that is not a number of seconds is a CliError.
 */
export function resolveGlobals(o: GlobalFlags, env: NodeJS.ProcessEnv = process.env): GlobalOptions {
  const address = (o.address ?? env.BERTH_ADDRESS ?? env.CONTAINERD_ADDRESS ?? DEFAULT_ADDRESS).replace(/^unix:\/\//, '');
  const namespace = o.namespace ?? env.CONTAINERD_NAMESPACE ?? 'default';
  const connectTimeout = o.connectTimeout !== undefined ? nonNegative('--connect-timeout', o.connectTimeout) * 1000 : 10_000;
  return { address, namespace, connectTimeout };
}
