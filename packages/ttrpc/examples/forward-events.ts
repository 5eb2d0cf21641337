import { join } from 'node:path';
import { Empty, ttrpcEvents } from '@berth/api';
import { TtrpcClient, TtrpcServer, createTtrpcClient, createTtrpcService } from '@berth/ttrpc';

/**
 * Serves ttrpc's Events service (what a shim calls to hand its task events to the daemon) on a
 * unix socket in `dir`, and forwards envelopes to it through a client, as a shim would: several
 * calls multiplexed on one connection, the namespace in the ttrpc metadata. Returns what the
 * server received.
 */
export async function forwardEvents(dir: string, topics: readonly string[]): Promise<string[]> {
  const received: string[] = [];
  const server = new TtrpcServer();
  server.register(
    createTtrpcService(ttrpcEvents.EventsService, {
      forward: async (req, ctx) => {
        received.push(`${ctx.namespace} ${req.envelope?.namespace} ${req.envelope?.topic}`);
        return Empty.fromPartial({});
      },
    }),
  );
  const path = join(dir, 'events.sock');
  await server.listen(path);
  const connection = await TtrpcClient.connect(path);
  try {
    const events = createTtrpcClient(ttrpcEvents.EventsService, connection, { namespace: 'default' });
    await Promise.all(topics.map((topic) => events.forward({ envelope: { timestamp: new Date(), namespace: 'default', topic } })));
    return received.sort();
  } finally {
    connection.close();
    await server.close();
  }
}
