import type { BerthClient } from '@berth/client';
import type { Command } from 'commander';
import { type GlobalFlags, type GlobalOptions, resolveGlobals } from './globals';

export { DEFAULT_ADDRESS, type GlobalFlags, type GlobalOptions, resolveGlobals } from './globals';

/** Reads the global options, from the flags first, then the environment, then the defaults. */
export function globalOptions(cmd: Command, env: NodeJS.ProcessEnv = process.env): GlobalOptions {
  return resolveGlobals(cmd.optsWithGlobals<GlobalFlags>(), env);
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
