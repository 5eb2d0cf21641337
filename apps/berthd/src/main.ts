// First: the code cache must see every module that loads after it.
import { saveCompileCache } from './compile-cache';
import { activeCompileCache } from '@berth/compile-cache';
// The daemon runs the plugin loader (tsyringe); the polyfill goes before it.
import 'reflect-metadata';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { createLogger, parseLevel } from '@berth/log';
import { builtinPlugins } from './builtins';
import { loadConfig, renderDefaultConfig } from './config';
import { publishCommand } from './publish';
import { Daemon } from './server';
import { BERTH_VERSION, CONTAINERD_API_VERSION } from './version';

const USAGE = `berthd: a containerd-compatible container daemon

Usage:
  berthd [flags]                 run the daemon in the foreground
  berthd config default          print the default configuration
  berthd publish --topic T --namespace N   forward one event (a protobuf Any on stdin) to a daemon
  berthd --version               print the version

Flags:
  -c, --config FILE      config file (default /etc/berth/config.toml; built-in defaults if absent)
      --root DIR         persistent state directory (default /var/lib/berth)
      --state DIR        runtime state directory (default /run/berth)
  -a, --address SOCK     gRPC socket (default /run/berth/berthd.sock)
  -l, --log-level LEVEL  trace, debug, info, warn, error or fatal (default info)
`;

/** Runs the berthd command line; resolves to the exit code. */
export async function main(argv: string[]): Promise<number> {
  // containerd's shim fallback runs `<binary> --address A publish --topic T --namespace N`.
  const publishAt = argv.indexOf('publish');
  if (publishAt >= 0) return publishCommand(argv.slice(0, publishAt), argv.slice(publishAt + 1));
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        config: { type: 'string', short: 'c' },
        root: { type: 'string' },
        state: { type: 'string' },
        address: { type: 'string', short: 'a' },
        'log-level': { type: 'string', short: 'l' },
        help: { type: 'boolean', short: 'h' },
        version: { type: 'boolean', short: 'v' },
      },
    });
  } catch (err) {
    process.stderr.write(`berthd: ${(err as Error).message}\n\n${USAGE}`);
    return 2;
  }
  const { values, positionals } = parsed;
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  if (values.version) {
    process.stdout.write(`berthd ${BERTH_VERSION} (containerd API ${CONTAINERD_API_VERSION})\n`);
    return 0;
  }
  if (positionals.length > 0) {
    if (positionals[0] === 'config' && positionals[1] === 'default' && positionals.length === 2) {
      process.stdout.write(renderDefaultConfig(builtinPlugins));
      return 0;
    }
    process.stderr.write(`berthd: unknown command "${positionals.join(' ')}"\n\n${USAGE}`);
    return 2;
  }

  const config = loadConfig(values.config);
  let level;
  try {
    level = parseLevel(values['log-level'] ?? (config.debug.level || 'info'));
  } catch (err) {
    process.stderr.write(`berthd: ${(err as Error).message}\n`);
    return 2;
  }
  const format = config.debug.format === 'json' ? 'json' : 'text';
  // With the json format, every line written while a gRPC call is handled carries its method
  // and namespace. The async context that carries them (AsyncLocalStorage) costs on every promise
  // on Node 20: a 2 GiB ingest took about 1.5 times as long. So it is the json format's alone,
  // for the sessions that ask for it; the gRPC layer's own lines carry both in any format.
  const contextual = format === 'json';
  const logger = createLogger({ level, format, contextual });
  const cache = activeCompileCache();
  if (cache) logger.debug('code cache', { file: cache.file, ...cache.stats });
  if (values.root) config.root = resolve(values.root);
  if (values.state) config.state = resolve(values.state);
  if (values.address) config.grpc.address = resolve(values.address);

  // Signal handlers go in before startup, so a SIGTERM that arrives while plugins load still
  // shuts down cleanly (after startup finishes) instead of killing the process mid-way.
  let signalled: string | undefined;
  let onSignal: ((signal: string) => void) | undefined;
  const handle = (signal: string) => {
    signalled ??= signal;
    onSignal?.(signal);
  };
  process.once('SIGTERM', () => handle('SIGTERM'));
  process.once('SIGINT', () => handle('SIGINT'));

  let daemon: Daemon;
  try {
    daemon = await Daemon.start({ config, logger });
  } catch (err) {
    logger.error('berthd failed to start', { error: (err as Error).message });
    return 1;
  }

  // A daemon that runs for long writes its code cache once it has warmed up, not only at its end.
  const cacheTimer = setTimeout(() => saveCompileCache(), 60_000).unref();
  return await new Promise<number>((done) => {
    onSignal = (signal: string) => {
      logger.info(`received ${signal}, shutting down`);
      clearTimeout(cacheTimer);
      daemon.stop().then(
        () => {
          saveCompileCache();
          done(0);
        },
        (err) => {
          logger.error('shutdown failed', { error: (err as Error).message });
          done(1);
        },
      );
    };
    if (signalled) onSignal(signalled);
  });
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err) => {
      process.stderr.write(`berthd: ${(err as Error)?.message ?? String(err)}\n`);
      process.exit(1);
    },
  );
}
