import { BerthError, ErrorKind, KIND_SUFFIX, errorOfKind, kindOf } from './errors';

/** gRPC status codes (numbers from the gRPC spec), kept here so errdefs does not load grpc-js. */
export enum GrpcCode {
  OK = 0,
  CANCELLED = 1,
  UNKNOWN = 2,
  INVALID_ARGUMENT = 3,
  DEADLINE_EXCEEDED = 4,
  NOT_FOUND = 5,
  ALREADY_EXISTS = 6,
  PERMISSION_DENIED = 7,
  RESOURCE_EXHAUSTED = 8,
  FAILED_PRECONDITION = 9,
  ABORTED = 10,
  OUT_OF_RANGE = 11,
  UNIMPLEMENTED = 12,
  INTERNAL = 13,
  UNAVAILABLE = 14,
  DATA_LOSS = 15,
  UNAUTHENTICATED = 16,
}

/** The one table between error kinds and gRPC codes, in both directions. */
export const KIND_TO_CODE: Readonly<Record<ErrorKind, GrpcCode>> = {
  unknown: GrpcCode.UNKNOWN,
  'invalid-argument': GrpcCode.INVALID_ARGUMENT,
  'not-found': GrpcCode.NOT_FOUND,
  'already-exists': GrpcCode.ALREADY_EXISTS,
  'failed-precondition': GrpcCode.FAILED_PRECONDITION,
  unavailable: GrpcCode.UNAVAILABLE,
  'not-implemented': GrpcCode.UNIMPLEMENTED,
  canceled: GrpcCode.CANCELLED,
  'deadline-exceeded': GrpcCode.DEADLINE_EXCEEDED,
  'out-of-range': GrpcCode.OUT_OF_RANGE,
  'data-loss': GrpcCode.DATA_LOSS,
  'resource-exhausted': GrpcCode.RESOURCE_EXHAUSTED,
};

const CODE_TO_KIND = new Map<number, ErrorKind>(
  Object.entries(KIND_TO_CODE).map(([kind, code]) => [code, kind as ErrorKind]),
);

/** A gRPC status as grpc-js servers accept it (`callback(status)`) and clients raise it. */
export interface GrpcStatus {
  code: number;
  details: string;
}

/** A value that already is a gRPC status (from a downstream call), passed through unchanged. */
function asGrpcStatus(err: unknown): GrpcStatus | undefined {
  if (err instanceof BerthError || typeof err !== 'object' || err === null) return undefined;
  const { code, details } = err as { code?: unknown; details?: unknown };
  if (typeof code === 'number' && Number.isInteger(code) && code >= 0 && code <= 16 && typeof details === 'string') {
    return { code, details };
  }
  return undefined;
}

/**
 * Turns any thrown value into the status a service answers with. Deliberate errors map by kind,
 * with the full message (containerd sends "...: not found"); gRPC statuses pass through; anything
 * else is UNKNOWN with its message kept.
 */
export function toGrpcStatus(err: unknown): GrpcStatus {
  const passthrough = asGrpcStatus(err);
  if (passthrough) return passthrough;
  const kind = kindOf(err);
  const message = err instanceof Error ? err.message : String(err);
  return { code: KIND_TO_CODE[kind], details: message };
}

/** Reports whether an error is one Berth raised on purpose (as opposed to a bug to log with its stack). */
export function isDeliberate(err: unknown): boolean {
  return kindOf(err) !== 'unknown' || asGrpcStatus(err) !== undefined;
}

/**
 * Turns a status received from a server back into a Berth error of the matching kind, with the
 * trailing ": <kind>" removed from the message as containerd's client does (the error class
 * appends it again). Codes with no errdefs kind become "unknown".
 */
export function fromGrpcStatus(status: { code: number; details?: string; message?: string }): BerthError {
  const kind = CODE_TO_KIND.get(status.code) ?? 'unknown';
  let message = status.details ?? status.message ?? '';
  const suffix = `: ${KIND_SUFFIX[kind]}`;
  if (kind !== 'unknown' && message.endsWith(suffix)) message = message.slice(0, -suffix.length);
  return errorOfKind(kind, message, { cause: status });
}
