import { type Context, context, namespaceRequired, withNamespace } from '@berth/context';

/**
 * Builds the context a program passes first to every Berth store call: the namespace to act in,
 * the lease that new objects join, and a signal that cancels the call. Returns the namespaces a
 * store would see for it and for a copy in another namespace, and what it answers without one.
 */
export function namespacesSeen(signal: AbortSignal): string[] {
  const ctx: Context = context({ namespace: 'builds', lease: 'pull-1', signal });
  const seen = [namespaceRequired(ctx), namespaceRequired(withNamespace(ctx, 'default'))];
  try {
    namespaceRequired(context());
  } catch (err) {
    seen.push((err as Error).message);
  }
  return seen;
}
