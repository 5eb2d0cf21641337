/**
 * Error kinds, after containerd's errdefs. Every error a Berth package raises on purpose is one of
 * these classes; everything else is "unknown". The kind, not the class name, is what predicates
 * and the gRPC mapping look at, so an error keeps its meaning when it is wrapped.
 */
export type ErrorKind =
  | 'unknown'
  | 'invalid-argument'
  | 'not-found'
  | 'already-exists'
  | 'failed-precondition'
  | 'unavailable'
  | 'not-implemented'
  | 'canceled'
  | 'deadline-exceeded'
  | 'out-of-range'
  | 'data-loss'
  | 'resource-exhausted';

/** Message suffix containerd appends for each kind ("...: not found"). */
export const KIND_SUFFIX: Readonly<Record<ErrorKind, string>> = {
  unknown: 'unknown',
  'invalid-argument': 'invalid argument',
  'not-found': 'not found',
  'already-exists': 'already exists',
  'failed-precondition': 'failed precondition',
  unavailable: 'unavailable',
  'not-implemented': 'not implemented',
  canceled: 'context canceled',
  'deadline-exceeded': 'context deadline exceeded',
  'out-of-range': 'out of range',
  'data-loss': 'data loss',
  'resource-exhausted': 'resource exhausted',
};

export interface BerthErrorOptions {
  /** The error this one explains or wraps. */
  cause?: unknown;
  /**
   * Use the message exactly as given, without containerd's ": <kind>" suffix. For the few
   * messages containerd itself sends bare (`task x not found`, `read past object length 27 bytes`).
   */
  bare?: boolean;
}

/** Base of every deliberate Berth error; `kind` decides its gRPC code. */
export abstract class BerthError extends Error {
  abstract readonly kind: ErrorKind;

  constructor(context: string, kind: ErrorKind, options: BerthErrorOptions = {}) {
    super(formatMessage(context, kind, options.bare), options.cause === undefined ? undefined : { cause: options.cause });
    Object.defineProperty(this, 'name', { value: new.target.name, enumerable: false, configurable: true });
  }
}

function formatMessage(context: string, kind: ErrorKind, bare?: boolean): string {
  if (bare) return context;
  const suffix = KIND_SUFFIX[kind];
  if (context === '') return suffix;
  if (context.endsWith(`: ${suffix}`) || context === suffix) return context;
  return `${context}: ${suffix}`;
}

/** Returned when a request is malformed: bad identifiers, digests, filters, field masks. */
export class InvalidArgumentError extends BerthError {
  readonly kind = 'invalid-argument' as const;
  constructor(context: string, options?: BerthErrorOptions) {
    super(context, 'invalid-argument', options);
  }
}

/** Returned when the named object does not exist (in the caller's namespace). */
export class NotFoundError extends BerthError {
  readonly kind = 'not-found' as const;
  constructor(context: string, options?: BerthErrorOptions) {
    super(context, 'not-found', options);
  }
}

/** Returned when creating an object whose key is taken. */
export class AlreadyExistsError extends BerthError {
  readonly kind = 'already-exists' as const;
  constructor(context: string, options?: BerthErrorOptions) {
    super(context, 'already-exists', options);
  }
}

/** Returned when the system is not in the state the operation needs (non-empty namespace, wrong kind). */
export class FailedPreconditionError extends BerthError {
  readonly kind = 'failed-precondition' as const;
  constructor(context: string, options?: BerthErrorOptions) {
    super(context, 'failed-precondition', options);
  }
}

/** Returned when a resource is busy (a locked ingest) and a retry may succeed. */
export class UnavailableError extends BerthError {
  readonly kind = 'unavailable' as const;
  constructor(context: string, options?: BerthErrorOptions) {
    super(context, 'unavailable', options);
  }
}

/** Returned by operations Berth does not implement, so clients get UNIMPLEMENTED honestly. */
export class NotImplementedError extends BerthError {
  readonly kind = 'not-implemented' as const;
  constructor(context: string, options?: BerthErrorOptions) {
    super(context, 'not-implemented', options);
  }
}

/** Returned when the caller cancelled the operation. */
export class CanceledError extends BerthError {
  readonly kind = 'canceled' as const;
  constructor(context = '', options?: BerthErrorOptions) {
    super(context, 'canceled', options);
  }
}

/** Returned when the caller's deadline passed. */
export class DeadlineExceededError extends BerthError {
  readonly kind = 'deadline-exceeded' as const;
  constructor(context = '', options?: BerthErrorOptions) {
    super(context, 'deadline-exceeded', options);
  }
}

/** Returned for offsets outside an object (content reads and writes). Sent bare, as containerd does. */
export class OutOfRangeError extends BerthError {
  readonly kind = 'out-of-range' as const;
  constructor(context: string, options?: BerthErrorOptions) {
    super(context, 'out-of-range', { bare: true, ...options });
  }
}

/** Returned when data was lost or corrupted (a short write, a digest mismatch on disk). */
export class DataLossError extends BerthError {
  readonly kind = 'data-loss' as const;
  constructor(context: string, options?: BerthErrorOptions) {
    super(context, 'data-loss', { bare: true, ...options });
  }
}

/** Returned when a consumer cannot keep up (an event subscriber whose queue overflowed). */
export class ResourceExhaustedError extends BerthError {
  readonly kind = 'resource-exhausted' as const;
  constructor(context: string, options?: BerthErrorOptions) {
    super(context, 'resource-exhausted', { bare: true, ...options });
  }
}

/** Returned for failures with no better kind; kept with their message. */
export class UnknownError extends BerthError {
  readonly kind = 'unknown' as const;
  constructor(context: string, options?: BerthErrorOptions) {
    super(context, 'unknown', { bare: true, ...options });
  }
}

const CONSTRUCTORS: Record<ErrorKind, new (context: string, options?: BerthErrorOptions) => BerthError> = {
  unknown: UnknownError,
  'invalid-argument': InvalidArgumentError,
  'not-found': NotFoundError,
  'already-exists': AlreadyExistsError,
  'failed-precondition': FailedPreconditionError,
  unavailable: UnavailableError,
  'not-implemented': NotImplementedError,
  canceled: CanceledError,
  'deadline-exceeded': DeadlineExceededError,
  'out-of-range': OutOfRangeError,
  'data-loss': DataLossError,
  'resource-exhausted': ResourceExhaustedError,
};

/** Creates an error of the given kind. */
export function errorOfKind(kind: ErrorKind, context: string, options?: BerthErrorOptions): BerthError {
  return new CONSTRUCTORS[kind](context, options);
}

/**
 * Returns the kind of an error: the first deliberate kind found walking the `cause` chain,
 * abort errors as "canceled", anything else as "unknown".
 */
export function kindOf(err: unknown): ErrorKind {
  for (let e: unknown = err, depth = 0; e != null && depth < 32; depth++) {
    if (e instanceof BerthError) return e.kind;
    // Platform abort errors: Node's AbortError (code ABORT_ERR) and the DOMExceptions that
    // AbortSignal.abort() and AbortSignal.timeout() carry as their reason.
    if (e instanceof DOMException) {
      if (e.name === 'TimeoutError') return 'deadline-exceeded';
      if (e.name === 'AbortError') return 'canceled';
    }
    if (typeof e === 'object') {
      const code = (e as { code?: unknown }).code;
      if (code === 'ABORT_ERR') return 'canceled';
      e = (e as { cause?: unknown }).cause;
    } else {
      break;
    }
  }
  return 'unknown';
}

/**
 * Adds context in front of an error's message, keeping its kind: the equivalent of Go's
 * `fmt.Errorf("context: %w", err)`. The original error stays reachable as `cause`.
 */
export function wrap(err: unknown, context: string): BerthError {
  const kind = kindOf(err);
  const inner = err instanceof Error ? err.message : String(err);
  return errorOfKind(kind, `${context}: ${inner}`, { cause: err, bare: true });
}

const is = (kind: ErrorKind) => (err: unknown): boolean => kindOf(err) === kind;

/** Reports whether the error (or one it wraps) is of kind "invalid-argument". */
export const isInvalidArgument = is('invalid-argument');
/** Reports whether the error (or one it wraps) is of kind "not-found". */
export const isNotFound = is('not-found');
/** Reports whether the error (or one it wraps) is of kind "already-exists". */
export const isAlreadyExists = is('already-exists');
/** Reports whether the error (or one it wraps) is of kind "failed-precondition". */
export const isFailedPrecondition = is('failed-precondition');
/** Reports whether the error (or one it wraps) is of kind "unavailable". */
export const isUnavailable = is('unavailable');
/** Reports whether the error (or one it wraps) is of kind "not-implemented". */
export const isNotImplemented = is('not-implemented');
/** Reports whether the error (or one it wraps) is of kind "canceled". */
export const isCanceled = is('canceled');
/** Reports whether the error (or one it wraps) is of kind "deadline-exceeded". */
export const isDeadlineExceeded = is('deadline-exceeded');
/** Reports whether the error (or one it wraps) is of kind "out-of-range". */
export const isOutOfRange = is('out-of-range');
/** Reports whether the error (or one it wraps) is of kind "data-loss". */
export const isDataLoss = is('data-loss');
/** Reports whether the error (or one it wraps) is of kind "resource-exhausted". */
export const isResourceExhausted = is('resource-exhausted');
