/** Exit codes as Docker's CLI uses them. */
export const EXIT = {
  /** A command failed (an error from the daemon or the CLI). */
  failure: 1,
  /** `run`/`exec`: the error is the daemon's or the CLI's, before the container's command ran. */
  daemon: 125,
  /** `run`/`exec`: the command exists but cannot be invoked (permission denied, not executable). */
  cannotInvoke: 126,
  /** `run`/`exec`: the command was not found. */
  notFound: 127,
} as const;

/** An error that ends the command with a message and a given exit code. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: number = EXIT.failure,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/**
 * The exit code for a failed start of a container's or an exec's command, read from the
 * runtime's error as Docker reads it: not found (127), not invocable (126), else 125.
 */
export function startFailureCode(err: unknown): number {
  const message = err instanceof Error ? err.message : String(err);
  if (/executable file not found|no such file or directory/i.test(message)) return EXIT.notFound;
  if (/permission denied|exec format error|is a directory/i.test(message)) return EXIT.cannotInvoke;
  return EXIT.daemon;
}

/** The message to print for an error: its message, without a stack. */
export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}

/** A non-negative number given to `flag`, or a CliError naming it (exit code `code`). */
export function nonNegative(flag: string, v: string, code: number = EXIT.failure): number {
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n) || n < 0) throw new CliError(`invalid ${flag} "${v}": want a number of 0 or more`, code);
  return n;
}
