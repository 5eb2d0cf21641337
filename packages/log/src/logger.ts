import { AsyncLocalStorage } from 'node:async_hooks';

/** Log levels in increasing severity, as containerd's `--log-level` accepts them. */
export const LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal'] as const;
export type Level = (typeof LEVELS)[number];

export type Fields = Record<string, string | number | boolean | undefined | null>;

/** A leveled logger that carries fields; `with` derives a logger with more fields. */
export interface Logger {
  readonly level: Level;
  trace(msg: string, fields?: Fields): void;
  debug(msg: string, fields?: Fields): void;
  info(msg: string, fields?: Fields): void;
  warn(msg: string, fields?: Fields): void;
  error(msg: string, fields?: Fields): void;
  with(fields: Fields): Logger;
  enabled(level: Level): boolean;
  /**
   * Whether lines carry the fields of the operation being handled (`withLogFields`): the gRPC
   * layer sets them (method, namespace) only for loggers that read them.
   */
  readonly contextual: boolean;
}

/** The fields of the operation running in the current async context (a gRPC call's method and namespace). */
const operationFields = new AsyncLocalStorage<Fields>();

/**
 * Runs `fn` with `fields` added to every line a contextual logger writes from it, across its
 * awaits. Costs an async context per call, so callers use it only for contextual loggers.
 */
export function withLogFields<T>(fields: Fields, fn: () => T): T {
  return operationFields.run(fields, fn);
}

/** Checks a level name, accepting containerd's aliases ("warning", "panic"). */
export function parseLevel(s: string): Level {
  const v = s.toLowerCase();
  if (v === 'warning') return 'warn';
  if (v === 'panic') return 'fatal';
  if ((LEVELS as readonly string[]).includes(v)) return v as Level;
  throw new Error(`unknown log level "${s}" (use one of ${LEVELS.join(', ')})`);
}

/** Quotes a logfmt value when it needs quoting, as logrus' text formatter does. */
function fmtValue(v: unknown): string {
  const s = String(v);
  return /^[A-Za-z0-9_.\/:@+-]+$/.test(s) ? s : JSON.stringify(s);
}

/** `text`: logfmt, as containerd's default; `json`: one JSON object a line, as `[debug] format = "json"`. */
export type LogFormat = 'text' | 'json';

export interface LoggerOptions {
  level?: Level;
  /** Default `text`. */
  format?: LogFormat;
  /** Adds the fields of `withLogFields` to every line. Default false. */
  contextual?: boolean;
  /** Where lines go; default process.stderr. */
  write?: (line: string) => void;
  fields?: Fields;
  /** Clock, for tests. */
  now?: () => Date;
}

/** Creates a logger writing logfmt lines (`time=... level=info msg="..." k=v`). */
export function createLogger(options: LoggerOptions = {}): Logger {
  const level = options.level ?? 'info';
  const write = options.write ?? ((line: string) => process.stderr.write(line));
  const now = options.now ?? (() => new Date());
  const threshold = LEVELS.indexOf(level);
  const base = options.fields ?? {};

  const contextual = options.contextual === true;
  const json = options.format === 'json';

  const log = (lvl: Level, msg: string, fields?: Fields) => {
    if (LEVELS.indexOf(lvl) < threshold) return;
    // The operation's fields come last, so that a line keeps the order its caller gave, and a
    // caller's own field of the same name wins.
    const all: Fields = { ...base, ...fields };
    const extra = contextual ? operationFields.getStore() : undefined;
    if (extra) for (const k in extra) if (!(k in all)) all[k] = extra[k];
    if (json) {
      const out: Record<string, unknown> = { time: now().toISOString(), level: lvl, msg };
      for (const [k, v] of Object.entries(all)) if (v !== undefined && v !== null && !(k in out)) out[k] = v;
      write(JSON.stringify(out) + '\n');
      return;
    }
    let line = `time="${now().toISOString()}" level=${lvl} msg=${JSON.stringify(msg)}`;
    for (const [k, v] of Object.entries(all)) {
      if (v !== undefined && v !== null) line += ` ${k}=${fmtValue(v)}`;
    }
    write(line + '\n');
  };

  return {
    level,
    trace: (m, f) => log('trace', m, f),
    debug: (m, f) => log('debug', m, f),
    info: (m, f) => log('info', m, f),
    warn: (m, f) => log('warn', m, f),
    error: (m, f) => log('error', m, f),
    with: (fields) => createLogger({ ...options, fields: { ...base, ...fields } }),
    enabled: (lvl) => LEVELS.indexOf(lvl) >= threshold,
    contextual,
  };
}

/** A logger that drops everything, for library use without a daemon. */
export const nullLogger: Logger = createLogger({ level: 'fatal', write: () => undefined });
