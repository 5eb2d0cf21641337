import { FailedPreconditionError, type BerthErrorOptions } from '@berth/errdefs';

/**
 * Returned when a registry refuses the client: no credentials for a host that asks for them,
 * credentials or a token rejected (a second 401 after re-authenticating), a token server that
 * says no, or 403 denied. The message names the registry host.
 *
 * Its kind is failed-precondition only because @berth/errdefs has no unauthenticated or
 * permission-denied kind yet (gRPC UNAUTHENTICATED = 16, PERMISSION_DENIED = 7); when it gains
 * them, this class should extend those instead, and callers matching it need not change.
 */
export class RegistryAuthError extends FailedPreconditionError {
  /** The endpoint host (host[:port]) that refused. */
  readonly host: string;
  /** The HTTP status that ended it (401, 403), when one did. */
  readonly status: number | undefined;

  constructor(host: string, context: string, options: BerthErrorOptions & { status?: number } = {}) {
    super(context, options);
    this.host = host;
    this.status = options.status;
  }
}

/** Reports whether the error (or one it wraps) is a {@link RegistryAuthError}. */
export function isRegistryAuthError(err: unknown): err is RegistryAuthError {
  for (let e: unknown = err, depth = 0; e != null && depth < 32; depth++) {
    if (e instanceof RegistryAuthError) return true;
    e = typeof e === 'object' ? (e as { cause?: unknown }).cause : undefined;
  }
  return false;
}
