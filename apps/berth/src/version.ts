import { printJson } from './json';

/** The berth CLI's own version (its package's). */
export const CLI_VERSION: string = (require('../package.json') as { version: string }).version;

/** What `berth version` needs: the socket, how long to wait for it, and the output form. */
export interface VersionCommand {
  address: string;
  connectTimeout: number;
  json: boolean;
}

/**
 * `berth version`: the client's version, then the daemon's, asked with `@berth/client/version`
 * (one call over its own small HTTP/2 client on node:net: no grpc-js, no node:http2), so the
 * command takes little more than Node's own start. Resolves
 * to the exit code: 1 when the daemon did not answer.
 */
export async function runVersion(c: VersionCommand): Promise<number> {
  const { daemonVersion } = require('@berth/client/version') as typeof import('@berth/client/version');
  let server: { version: string; revision: string } | { error: string };
  try {
    server = await daemonVersion(c.address, { connectTimeout: c.connectTimeout });
  } catch (err) {
    server = { error: (err as Error).message };
  }
  if (c.json) printJson(process.stdout, { client: { version: CLI_VERSION, node: process.version }, server: { address: c.address, ...server } });
  else {
    process.stdout.write(`Client:\n  Version:  ${CLI_VERSION}\n  Node:     ${process.version}\n\nServer:\n  Address:  ${c.address}\n`);
    if ('error' in server) process.stdout.write(`  Error:    ${server.error}\n`);
    else process.stdout.write(`  Version:  ${server.version}\n  Revision: ${server.revision}\n`);
  }
  return 'error' in server ? 1 : 0;
}
