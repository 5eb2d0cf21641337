import { NotFoundError } from '@berth/errdefs';
import { WriteTx } from './db';
import { LeaseRecord, LeaseResource, Key, objectKey, sequenceKey } from './schema';

/** Key of one leased resource. */
export const leasedKey = (ns: string, lease: string, r: LeaseResource): Key => objectKey(ns, 'leased', lease, r.type, r.id);

/**
 * Records that the lease `lease` (from the call's `containerd-lease` header) holds a resource,
 * inside the caller's write transaction. No lease: nothing to do. A lease that does not exist is
 * NotFound, as containerd answers, and rolls the whole transaction back.
 */
export function addLeaseResource(tx: WriteTx, ns: string, lease: string | undefined, resource: LeaseResource): void {
  if (!lease) return;
  if (!tx.has(objectKey(ns, 'leases', lease))) throw new NotFoundError('lease does not exist', { bare: false });
  tx.put(leasedKey(ns, lease, resource), true);
}

/** Removes a resource from every lease of the namespace that holds it (when the resource goes away). */
export function removeLeasedEverywhere(tx: WriteTx, ns: string, resource: LeaseResource): void {
  for (const { key } of [...tx.range<LeaseRecord>(objectKey(ns, 'leases'))]) {
    tx.remove(leasedKey(ns, String(key[4]), resource));
  }
}

/** Returns the next value of a named counter (1, 2, ...), inside a write transaction. */
export function nextSequence(tx: WriteTx, name: string): number {
  const next = (tx.get<number>(sequenceKey(name)) ?? 0) + 1;
  tx.put(sequenceKey(name), next);
  return next;
}
