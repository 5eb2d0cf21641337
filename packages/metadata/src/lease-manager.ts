import { randomBytes } from 'node:crypto';
import { Context, namespaceRequired } from '@berth/context';
import { AlreadyExistsError, InvalidArgumentError, NotFoundError, NotImplementedError, UnknownError } from '@berth/errdefs';
import { labelsAdaptor, parseListFilters, checkFilterFields } from '@berth/filters';
import { token } from '@berth/plugin';
import { MetadataDb, ReadTx } from './db';
import { checkDigest } from './digest';
import { leasedKey } from './leases';
import { LeaseRecord, LeaseResource, objectKey, objectsPrefix } from './schema';

/** A lease as stores and services see it. */
export interface Lease {
  id: string;
  createdAt: Date;
  labels: Record<string, string>;
}

/**
 * Leases of a namespace and the resources they hold. A lease protects its resources from the
 * garbage collector until it is deleted or (label `containerd.io/gc.expire`) expires.
 */
export interface LeaseManager {
  /** Creates a lease; an empty id gets a generated one. AlreadyExists `lease "<id>"`. */
  create(ctx: Context, id: string, labels?: Record<string, string>): Promise<Lease>;
  /** Deletes a lease and its resource records (not the resources); NotFound `lease "<id>"`. */
  delete(ctx: Context, id: string): Promise<void>;
  /** Returns the leases matching any of the filters (fields `id`, `labels.<k>`), by id. */
  list(ctx: Context, filters?: readonly string[]): Promise<Lease[]>;
  /** Adds a resource (`content`, `ingests` or `snapshots/<snapshotter>`) to a lease. */
  addResource(ctx: Context, lease: string, resource: LeaseResource): Promise<void>;
  /** Removes a resource from a lease; absent resources are fine. */
  deleteResource(ctx: Context, lease: string, resource: LeaseResource): Promise<void>;
  /** Returns a lease's resources: content, then ingests, then snapshots by snapshotter. */
  listResources(ctx: Context, lease: string): Promise<LeaseResource[]>;
}

export const LeaseManagerToken = token<LeaseManager>('io.containerd.metadata.v1/leases');

/**
 * Generates a lease id as containerd does: the nanoseconds of the current second, `-`, and
 * three random bytes in unpadded base64url (four characters).
 */
export function generateLeaseId(): string {
  const nanos = (Date.now() % 1000) * 1_000_000 + Number(process.hrtime.bigint() % 1_000_000n);
  return `${nanos}-${randomBytes(3).toString('base64url')}`;
}

/**
 * Checks and normalises a resource as containerd does. Errors, in containerd's words: an
 * unknown type is NotImplemented, a content id must be a digest, a snapshot type must name its
 * snapshotter; empty names are what bolt refuses on a write ("bucket name required", "key
 * required") and ignores on a delete.
 */
export function parseLeaseResource(r: LeaseResource, options: { write: boolean } = { write: true }): LeaseResource {
  const parts = r.type.split('/');
  switch (parts[0]) {
    case 'content':
    case 'ingests':
      if (parts.length !== 1) throw new InvalidArgumentError(`invalid resource type ${r.type}`);
      if (parts[0] === 'content') {
        try {
          checkDigest(r.id);
        } catch (err) {
          throw new InvalidArgumentError(`invalid content resource id ${r.id}: ${(err as Error).message}`);
        }
      }
      break;
    case 'snapshots':
      if (parts.length !== 2) throw new InvalidArgumentError(`invalid snapshot resource type ${r.type}`);
      if (options.write && parts[1] === '') throw new UnknownError('bucket name required');
      break;
    default:
      throw new NotImplementedError(`resource type ${r.type} not supported yet`);
  }
  if (options.write && r.id === '') throw new UnknownError('key required');
  return { type: r.type, id: r.id };
}

const fromRecord = (id: string, rec: LeaseRecord): Lease => ({ id, createdAt: new Date(rec.createdAt), labels: { ...rec.labels } });

function requireLease(tx: ReadTx, ns: string, id: string): LeaseRecord {
  const rec = tx.get<LeaseRecord>(objectKey(ns, 'leases', id));
  if (!rec) throw new NotFoundError(`lease ${JSON.stringify(id)}`);
  return rec;
}

/**
 * The lease manager over the metadata database. Lease ids are not checked as identifiers and
 * labels are not size-checked: containerd 1.6 accepts both, and a client's lease must work here
 * as it does there.
 */
export class LmdbLeaseManager implements LeaseManager {
  constructor(private readonly db: MetadataDb) {}

  async create(ctx: Context, id: string, labels: Record<string, string> = {}): Promise<Lease> {
    const ns = namespaceRequired(ctx);
    const leaseId = id === '' ? generateLeaseId() : id;
    return this.db.update((tx) => {
      const key = objectKey(ns, 'leases', leaseId);
      if (tx.has(key)) throw new AlreadyExistsError(`lease ${JSON.stringify(leaseId)}`);
      tx.ensureNamespace(ns);
      const rec: LeaseRecord = { createdAt: Date.now(), labels: Object.fromEntries(Object.entries(labels).filter(([, v]) => v !== '')) };
      tx.put(key, rec);
      return fromRecord(leaseId, rec);
    });
  }

  async delete(ctx: Context, id: string): Promise<void> {
    const ns = namespaceRequired(ctx);
    this.db.update((tx) => {
      if (!tx.remove(objectKey(ns, 'leases', id))) throw new NotFoundError(`lease ${JSON.stringify(id)}`);
      tx.markDeletion();
      for (const { key } of [...tx.range(objectsPrefix(ns, 'leased', id))]) tx.remove(key);
    });
  }

  async list(ctx: Context, filters: readonly string[] = []): Promise<Lease[]> {
    const ns = namespaceRequired(ctx);
    const filter = checkFilterFields(parseListFilters(filters), ['id', 'labels.']);
    return this.db.view((tx) => {
      const out: Lease[] = [];
      for (const { key, value } of tx.range<LeaseRecord>(objectsPrefix(ns, 'leases'))) {
        if (key.length !== 5) continue;
        const lease = fromRecord(String(key[4]), value);
        if (filter.match(labelsAdaptor({ id: lease.id || undefined }, lease.labels))) out.push(lease);
      }
      return out;
    });
  }

  async addResource(ctx: Context, lease: string, resource: LeaseResource): Promise<void> {
    const ns = namespaceRequired(ctx);
    this.db.update((tx) => {
      requireLease(tx, ns, lease);
      tx.put(leasedKey(ns, lease, parseLeaseResource(resource)), true);
    });
  }

  async deleteResource(ctx: Context, lease: string, resource: LeaseResource): Promise<void> {
    const ns = namespaceRequired(ctx);
    this.db.update((tx) => {
      requireLease(tx, ns, lease);
      const r = parseLeaseResource(resource, { write: false });
      if (tx.remove(leasedKey(ns, lease, r))) tx.markDeletion();
    });
  }

  async listResources(ctx: Context, lease: string): Promise<LeaseResource[]> {
    const ns = namespaceRequired(ctx);
    return this.db.view((tx) => {
      requireLease(tx, ns, lease);
      const out: LeaseResource[] = [];
      for (const { key } of tx.range(objectsPrefix(ns, 'leased', lease))) {
        if (key.length === 7) out.push({ type: String(key[5]), id: String(key[6]) });
      }
      return out;
    });
  }
}
