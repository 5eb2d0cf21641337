/** Signal names and numbers (Linux), for an image's StopSignal. */
import { constants } from 'node:os';
import { InvalidArgumentError } from '@berth/errdefs';

/**
 * A signal's number from `SIGTERM`, `TERM`, `15` or `SIGRTMIN+3`, as containerd's ParseSignal
 * reads an image's StopSignal.
 */
export function signalNumber(s: string): number {
  if (/^\d+$/.test(s)) return Number(s);
  const name = s.toUpperCase().startsWith('SIG') ? s.toUpperCase() : `SIG${s.toUpperCase()}`;
  const rt = /^SIGRTMIN(?:\+(\d+))?$/.exec(name);
  if (rt) return 34 + Number(rt[1] ?? 0);
  const n = (constants.signals as Record<string, number>)[name];
  if (n === undefined) throw new InvalidArgumentError(`failed to parse stop signal ${JSON.stringify(s)}: unknown signal`, { bare: true });
  return n;
}
