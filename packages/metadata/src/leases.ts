import { NotFoundError } from '@berth/errdefs';
import { ReadTx, WriteTx } from './db';
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
  if (!leaseExists(tx, ns, lease)) throw new NotFoundError('lease does not exist', { bare: false });
  tx.put(leasedKey(ns, lease, resource), true);
}

/**
 * Adds a resource the caller found already present (and goes on using) to its lease, inside
 * the write transaction that saw it present: from then on no collection can remove it while
 * the lease lives. The rule containerd applies when a write finds its content already there;
 * Berth applies it to every "already exists, carry on" answer. No lease: nothing to do.
 */
export function holdExisting(tx: WriteTx, ns: string, lease: string | undefined, resource: LeaseResource): void {
  if (!lease || tx.has(leasedKey(ns, lease, resource))) return;
  addLeaseResource(tx, ns, lease, resource);
}

/** Reports whether the namespace has the lease. */
export function leaseExists(tx: ReadTx, ns: string, lease: string): boolean {
  return tx.has(objectKey(ns, 'leases', lease));
}

/** Reports whether the lease already holds a resource (false without a lease). */
export function leaseHolds(tx: ReadTx, ns: string, lease: string | undefined, resource: LeaseResource): boolean {
  return !!lease && tx.has(leasedKey(ns, lease, resource));
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
