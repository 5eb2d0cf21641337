import { parseArgs } from 'node:util';
import { Any, ttrpcEvents } from '@berth/api';
import { namespaceRequired } from '@berth/context';
import { InvalidArgumentError, wrap } from '@berth/errdefs';
import { TtrpcClient, createTtrpcClient } from '@berth/ttrpc';
import { loadConfig } from './config';

export const PUBLISH_USAGE = `Usage: berthd [--address SOCK] publish --topic TOPIC --namespace NS < event

Reads one event (a binary protobuf google.protobuf.Any) from stdin and forwards it to the daemon
at SOCK over ttrpc (SOCK.ttrpc), as containerd publish does for shims.

Flags:
  -a, --address SOCK   the daemon's gRPC socket (default: the configured address)
      --topic TOPIC    topic of the event
      --namespace NS   namespace to publish to
`;

async function readAll(stream: NodeJS.ReadableStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk));
  return Buffer.concat(chunks);
}

/**
 * `berthd publish`: the shim's fallback path for events, with containerd's flags and checks, in
 * its order: topic, payload, connection, namespace, then the daemon's own validation. `--address`
 * may come before `publish` (containerd's global flag) or after it.
 */
export async function publishCommand(globalArgs: string[], args: string[], stdin: NodeJS.ReadableStream = process.stdin): Promise<number> {
  const fail = (message: string, code = 1) => {
    process.stderr.write(`berthd: ${message}\n`);
    return code;
  };
  let globals, flags;
  try {
    globals = parseArgs({
      args: globalArgs,
      options: {
        address: { type: 'string', short: 'a' },
        config: { type: 'string', short: 'c' },
        root: { type: 'string' },
        state: { type: 'string' },
        'log-level': { type: 'string', short: 'l' },
      },
    }).values;
    flags = parseArgs({
      args,
      allowPositionals: true,
      options: {
        address: { type: 'string', short: 'a' },
        topic: { type: 'string' },
        namespace: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    }).values;
  } catch (err) {
    return fail(`${(err as Error).message}\n\n${PUBLISH_USAGE}`, 2);
  }
  if (flags.help) {
    process.stdout.write(PUBLISH_USAGE);
    return 0;
  }
  const address = flags.address ?? globals.address ?? loadConfig(globals.config).grpc.address;
  const topic = flags.topic ?? '';
  const namespace = flags.namespace ?? '';
  if (topic === '') return fail(new InvalidArgumentError('topic required to publish event').message);

  let event: Any;
  try {
    event = Any.decode(await readAll(stdin));
  } catch (err) {
    return fail(`failed to read the event from stdin: ${(err as Error).message}`);
  }

  let client: TtrpcClient;
  try {
    client = await TtrpcClient.connect(`${address}.ttrpc`);
  } catch (err) {
    return fail(`failed to dial ${JSON.stringify(address)}: ${(err as Error).message}`);
  }
  try {
    try {
      namespaceRequired({ namespace, signal: new AbortController().signal });
    } catch (err) {
      throw wrap(err, 'failed publishing event');
    }
    const events = createTtrpcClient(ttrpcEvents.EventsService, client, { namespace });
    await events.forward({ envelope: { timestamp: new Date(), namespace, topic, event } }, { timeoutMs: 10_000 });
    return 0;
  } catch (err) {
    return fail((err as Error).message);
  } finally {
    client.close();
  }
}
