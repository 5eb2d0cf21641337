import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { createLogger, parseLevel } from '@berth/log';
import { NativeSnapshotter } from './native';
import { OverlaySnapshotter, overlaySupported } from './overlay';
import { serveSnapshotter } from './serve';
import type { Snapshotter } from './types';

const USAGE = `berth-snapshotter: serve a Berth snapshotter over containerd's Snapshots API

Usage:
  berth-snapshotter --root DIR --address SOCK [--snapshotter overlayfs|native] [--log-level LEVEL]

For containerd (1.6 and later), in its config.toml:
  [proxy_plugins.berth]
    type = "snapshot"
    address = "SOCK"
then: ctr images pull --snapshotter berth ...; ctr run --snapshotter berth ...
`;

/** Runs the command line; resolves to the exit code once the server stops (SIGTERM, SIGINT). */
export async function main(argv: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        root: { type: 'string' },
        address: { type: 'string', short: 'a' },
        snapshotter: { type: 'string', default: 'overlayfs' },
        'log-level': { type: 'string', short: 'l', default: 'info' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (err) {
    process.stderr.write(`berth-snapshotter: ${(err as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  if (!values.root || !values.address) {
    process.stderr.write(`berth-snapshotter: --root and --address are required\n\n${USAGE}`);
    return 2;
  }
  const logger = createLogger({ level: parseLevel(values['log-level']!) });
  let sn: Snapshotter;
  if (values.snapshotter === 'overlayfs') {
    if (!overlaySupported()) {
      logger.error('overlayfs is not supported by this kernel');
      return 1;
    }
    sn = OverlaySnapshotter.open(resolve(values.root));
  } else if (values.snapshotter === 'native') {
    sn = NativeSnapshotter.open(resolve(values.root));
  } else {
    process.stderr.write(`berth-snapshotter: unknown snapshotter "${values.snapshotter}" (overlayfs or native)\n`);
    return 2;
  }
  const server = await serveSnapshotter(sn, resolve(values.address), logger);
  logger.info('serving...', { address: server.address, snapshotter: values.snapshotter });
  await new Promise<void>((done) => {
    const stop = () => done();
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
  });
  await server.close();
  await sn.close();
  logger.info('stopped');
  return 0;
}
