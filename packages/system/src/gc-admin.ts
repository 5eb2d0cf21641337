import { validateDigest } from '@berth/content';
import { type Context, namespaceRequired } from '@berth/context';
import { InvalidArgumentError, NotFoundError } from '@berth/errdefs';
import type { GcExplainer, GcExplanation } from '@berth/gc';
import type { CollectionStats, GarbageCollector } from '@berth/metadata';
import type { NamespacesService } from '@berth/namespaces';
import { token } from '@berth/plugin';
import type { SnapshotsService } from '@berth/snapshots';

/** Names the object to explain: a blob by digest, or a snapshot by snapshotter and key. */
export type ExplainTarget = { digest: string } | { snapshotter: string; key: string };

/** Berth's garbage collector operations (berth.services.gc.v1). */
export interface GcAdmin {
  /** Runs a collection and returns its statistics. */
  collect(ctx: Context): Promise<CollectionStats>;
  /** Explains why an object of the context's namespace is kept. */
  explain(ctx: Context, target: ExplainTarget): Promise<GcExplanation>;
}

/** The services a collection and an explanation go through. */
export interface GcAdminDeps {
  collector: GarbageCollector;
  explainer: GcExplainer;
  namespaces: NamespacesService;
  snapshots: SnapshotsService;
}

/**
 * Berth's garbage collector operations: a collection now, and why an object is kept. The
 * explanation is the collector's own marking (`MetadataCollector.explain` in @berth/gc), run
 * over the kinds' GcKind hooks exactly as a collection would run it, not a second set of rules.
 */
export class GcAdminService implements GcAdmin {
  constructor(private readonly deps: GcAdminDeps) {}

  /** Runs a collection now (not after the scheduler's schedule_delay) and returns its statistics. */
  collect(ctx: Context): Promise<CollectionStats> {
    return this.deps.collector.collectNow(ctx);
  }

  /**
   * Explains why an object of the context's namespace is kept. FailedPrecondition without a
   * namespace; NotFound for an unknown namespace or object; InvalidArgument for a malformed
   * digest, an unloaded snapshotter, or a target naming both a digest and a snapshot (or neither).
   */
  async explain(ctx: Context, target: ExplainTarget): Promise<GcExplanation> {
    const ns = namespaceRequired(ctx);
    let object: { kind: string; id: string[] };
    if ('digest' in target) {
      validateDigest(target.digest);
      object = { kind: 'blobs', id: [target.digest] };
    } else {
      // InvalidArgument `snapshotter not loaded: x`, as the Snapshots API answers.
      this.deps.snapshots.snapshotter(target.snapshotter);
      if (target.key === '') throw new InvalidArgumentError('snapshot key must not be empty');
      object = { kind: 'snapshots', id: [target.snapshotter, target.key] };
    }
    if (!(await this.deps.namespaces.list()).some((n) => n.name === ns)) throw new NotFoundError(`namespace "${ns}"`);
    return this.deps.explainer.explain(ns, object);
  }
}

/**
 * Turns the fields of an explain request into a target: a digest alone, or a snapshotter and
 * key alone; InvalidArgument otherwise.
 */
export function explainTarget(req: { digest: string; snapshotter: string; key: string }): ExplainTarget {
  const snapshot = req.snapshotter !== '' || req.key !== '';
  if (req.digest !== '' && snapshot) throw new InvalidArgumentError('name either a digest or a snapshotter and key, not both');
  if (req.digest !== '') return { digest: req.digest };
  if (!snapshot) throw new InvalidArgumentError('name a digest, or a snapshotter and key');
  if (req.snapshotter === '') throw new InvalidArgumentError('snapshotter argument missing');
  return { snapshotter: req.snapshotter, key: req.key };
}

/** The in-process service behind berth.services.gc.v1. */
export const GcAdminServiceToken = token<GcAdmin>('io.containerd.service.v1/berth-gc');
