import { FailedPreconditionError, wrap } from '@berth/errdefs';
import { validate } from '@berth/identifiers';

/** The gRPC metadata key that carries the namespace, as containerd's clients send it. */
export const NAMESPACE_HEADER = 'containerd-namespace';
/** The ttrpc metadata key for the namespace (shims). */
export const NAMESPACE_HEADER_TTRPC = 'containerd-namespace-ttrpc';
/** The gRPC metadata key that attaches a call to a lease. */
export const LEASE_HEADER = 'containerd-lease';
/** The namespace ctr uses when none is given. */
export const DEFAULT_NAMESPACE = 'default';

/**
 * What every store and service operation takes first: the caller's namespace (absent when the
 * caller sent none), the lease the operation's new resources belong to, and a cancellation signal.
 */
export interface Context {
  readonly namespace?: string;
  readonly lease?: string;
  readonly signal: AbortSignal;
}

const never = new AbortController().signal;

/** Creates a context, e.g. for a Node program using a store directly. */
export function context(init: { namespace?: string; lease?: string; signal?: AbortSignal } = {}): Context {
  return { namespace: init.namespace, lease: init.lease, signal: init.signal ?? never };
}

/**
 * Returns the context in another namespace, with the same lease and signal. The signal is read
 * through when asked for, not copied: a gRPC call's context makes its AbortController only on
 * first use, and a copy made with a spread would make one on every call (the CRI services move
 * every call into `k8s.io`; the controller and its cancel listener were a tenth of a
 * ListContainers' daemon CPU).
 */
export function withNamespace(ctx: Context, namespace: string): Context {
  return {
    namespace,
    lease: ctx.lease,
    get signal() {
      return ctx.signal;
    },
  };
}

/**
 * Returns the context's namespace, checked: FailedPrecondition when absent (as containerd's
 * "namespace is required"), InvalidArgument when it is not a valid identifier.
 */
export function namespaceRequired(ctx: Context): string {
  const ns = ctx.namespace;
  if (!ns) throw new FailedPreconditionError('namespace is required');
  try {
    validate(ns);
  } catch (err) {
    throw wrap(err, 'namespace validation');
  }
  return ns;
}
