import { CanceledError, DeadlineExceededError, type BerthError } from '@berth/errdefs';

/**
 * Returns the error an aborted operation ends with: DeadlineExceeded for a timeout signal
 * (`AbortSignal.timeout`), Canceled otherwise, with the signal's reason as cause.
 */
export function abortError(signal: AbortSignal, context = ''): BerthError {
  const reason: unknown = signal.reason;
  if (reason instanceof DOMException && reason.name === 'TimeoutError') return new DeadlineExceededError(context, { cause: reason });
  return new CanceledError(context, { cause: reason });
}

/** Throws {@link abortError} when the signal has fired. */
export function throwIfAborted(signal: AbortSignal | undefined, context = ''): void {
  if (signal?.aborted) throw abortError(signal, context);
}

/** Resolves as `p` does, or rejects with {@link abortError} as soon as the signal fires. */
export function raceAbort<T>(p: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return p;
  if (signal.aborted) return Promise.reject(abortError(signal));
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(abortError(signal));
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e) => {
        signal.removeEventListener('abort', onAbort);
        reject(e);
      },
    );
  });
}

/** Waits `ms` milliseconds, or rejects with {@link abortError} when the signal fires first. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return raceAbort(new Promise<void>((r) => setTimeout(r, ms).unref?.()), signal);
}
