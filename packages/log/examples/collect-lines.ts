import { createLogger, parseLevel } from '@berth/log';

/**
 * Logs as berthd does, into an array instead of stderr: logfmt lines (containerd's default
 * format) or JSON ones, at a level given as containerd's `--log-level` accepts it, with the
 * fields of a derived logger on every line.
 */
export function collectLines(format: 'text' | 'json', level: string): string[] {
  const lines: string[] = [];
  const logger = createLogger({ level: parseLevel(level), format, write: (line) => void lines.push(line.trimEnd()), now: () => new Date(0) });
  const pulls = logger.with({ module: 'pull' });
  pulls.debug('resolving', { ref: 'docker.io/library/busybox:latest' });
  pulls.info('pulled', { layers: 1, ms: 812 });
  pulls.warn('slow registry', { host: 'registry-1.docker.io' });
  return lines;
}
