import { ImageCreate, ImageDelete, unpackAnyAs } from '@berth/api/events';
import { context } from '@berth/context';
import { Exchange } from '@berth/events';

/**
 * Publishes image events in two namespaces through an in-process exchange (what berthd's services
 * publish to) and returns what a subscriber with containerd's event filters hears: the creations
 * in namespace `builds`, in order.
 */
export async function createdInBuilds(names: readonly string[]): Promise<string[]> {
  const exchange = new Exchange();
  const subscription = exchange.subscribe(context(), ['topic=="/images/create",namespace==builds']);
  for (const name of names) {
    await exchange.publish(context({ namespace: 'default' }), '/images/create', ImageCreate, { name });
    await exchange.publish(context({ namespace: 'builds' }), '/images/create', ImageCreate, { name });
    await exchange.publish(context({ namespace: 'builds' }), '/images/delete', ImageDelete, { name });
  }
  const heard: string[] = [];
  for await (const envelope of subscription) {
    heard.push(`${envelope.namespace} ${envelope.topic} ${unpackAnyAs(envelope.event!, ImageCreate).name}`);
    if (heard.length === names.length) break; // leaving the loop ends the subscription
  }
  exchange.close();
  return heard;
}
