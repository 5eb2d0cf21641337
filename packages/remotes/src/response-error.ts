import {
  InvalidArgumentError,
  NotFoundError,
  UnavailableError,
  UnknownError,
  type BerthError,
} from '@berth/errdefs';
import { RegistryAuthError } from './registry-auth-error';

/** One entry of a registry's JSON error body (`{"errors":[{"code":"MANIFEST_UNKNOWN",…}]}`). */
export interface RegistryErrorDetail {
  code: string;
  message?: string;
  detail?: unknown;
}

/**
 * The unexpected HTTP answer behind a registry error, kept as the error's `cause` so callers can
 * look at the status and the registry's error codes without parsing messages.
 */
export class RegistryResponseError extends Error {
  constructor(
    readonly method: string,
    readonly url: string,
    readonly status: number,
    readonly statusText: string,
    readonly errors: readonly RegistryErrorDetail[],
  ) {
    super(`${method} ${url}: ${status} ${statusText}${formatDetails(errors)}`);
    this.name = 'RegistryResponseError';
  }
}

function formatDetails(errors: readonly RegistryErrorDetail[]): string {
  return errors.map((e) => `: ${e.code}${e.message ? `: ${e.message}` : ''}`).join('');
}

/** Parses the registry's JSON error body, if it is one. */
export function parseRegistryErrors(body: string): RegistryErrorDetail[] {
  try {
    const parsed = JSON.parse(body) as { errors?: unknown };
    if (!Array.isArray(parsed.errors)) return [];
    return parsed.errors
      .filter((e): e is RegistryErrorDetail => typeof e === 'object' && e !== null && typeof e.code === 'string')
      .map((e) => ({ code: e.code, message: typeof e.message === 'string' ? e.message : undefined, detail: e.detail }));
  } catch {
    return [];
  }
}

/**
 * Turns an unexpected registry status into an errdefs error: 404 not found, 401/403
 * {@link RegistryAuthError}, 400 invalid argument, 429 and 5xx unavailable (worth retrying),
 * anything else unknown. `context` leads the message; the response is the cause.
 */
export function errorForResponse(host: string, context: string, response: RegistryResponseError): BerthError {
  const text = `${context}: ${response.message}`;
  const options = { cause: response };
  const { status } = response;
  if (status === 404) return new NotFoundError(text, options);
  if (status === 401 || status === 403) {
    const what = status === 401 ? 'authentication failed' : 'access denied';
    return new RegistryAuthError(host, `${host}: ${what}: ${text}`, { ...options, status });
  }
  if (status === 400) return new InvalidArgumentError(text, options);
  if (status === 429 || status >= 500) return new UnavailableError(text, options);
  return new UnknownError(text, options);
}
