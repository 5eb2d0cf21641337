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

export interface LoggerOptions {
  level?: Level;
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

  const log = (lvl: Level, msg: string, fields?: Fields) => {
    if (LEVELS.indexOf(lvl) < threshold) return;
    let line = `time="${now().toISOString()}" level=${lvl} msg=${JSON.stringify(msg)}`;
    for (const [k, v] of Object.entries({ ...base, ...fields })) {
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
  };
}

/** A logger that drops everything, for library use without a daemon. */
export const nullLogger: Logger = createLogger({ level: 'fatal', write: () => undefined });
