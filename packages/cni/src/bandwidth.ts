import { InvalidArgumentError } from '@berth/errdefs';
import type { BandwidthConfig } from './cni';

/** Pod annotations that ask the bandwidth plugin for traffic shaping (bits per second). */
export const INGRESS_BANDWIDTH_ANNOTATION = 'kubernetes.io/ingress-bandwidth';
export const EGRESS_BANDWIDTH_ANNOTATION = 'kubernetes.io/egress-bandwidth';

const MULTIPLIERS: Record<string, number> = {
  '': 1,
  n: 1e-9,
  u: 1e-6,
  m: 1e-3,
  k: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  P: 1e15,
  E: 1e18,
  Ki: 2 ** 10,
  Mi: 2 ** 20,
  Gi: 2 ** 30,
  Ti: 2 ** 40,
  Pi: 2 ** 50,
  Ei: 2 ** 60,
};

const QUANTITY_RE = /^([+-]?(?:\d+(?:\.\d*)?|\.\d+))(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][+-]?\d+)?$/;

/**
 * Reads a Kubernetes resource quantity (`10M`, `1.5Gi`, `2e6`, `500k`) as a whole number,
 * rounded up as Quantity.Value() rounds. Throws InvalidArgument on anything else.
 */
export function parseQuantity(s: string): number {
  const m = QUANTITY_RE.exec(s.trim() === s ? s : '');
  if (!m) throw new InvalidArgumentError(`quantity ${JSON.stringify(s)}: quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'`);
  const suffix = m[2] ?? '';
  const mult = /^[eE]/.test(suffix) ? 10 ** Number(suffix.slice(1)) : MULTIPLIERS[suffix];
  // Rounded to 9 places first so that 1.1k is 1100 and not 1100.0000000000002 rounded up.
  return Math.ceil(Number((Number(m[1]) * mult).toFixed(9)));
}

/**
 * Turns the pod's bandwidth annotations into the `bandwidth` capability as containerd does:
 * rates in bits per second (from 1k to 1P), each burst at 2^32-1 bits; undefined when neither
 * annotation is there. Throws InvalidArgument for an unreadable or unreasonable value.
 */
export function bandwidthFromAnnotations(annotations: Readonly<Record<string, string>> | undefined): BandwidthConfig | undefined {
  const read = (key: string): number | undefined => {
    const v = annotations?.[key];
    if (v === undefined) return undefined;
    let n: number;
    try {
      n = parseQuantity(v);
    } catch (err) {
      throw new InvalidArgumentError(`reading pod bandwidth annotations: ${key}: ${(err as Error).message}`, { bare: true });
    }
    if (n < 1e3) throw new InvalidArgumentError(`reading pod bandwidth annotations: ${key}: resource is unreasonably small (< 1kbit)`, { bare: true });
    if (n > 1e15) throw new InvalidArgumentError(`reading pod bandwidth annotations: ${key}: resource is unreasonably large (> 1Pbit)`, { bare: true });
    return n;
  };
  const ingress = read(INGRESS_BANDWIDTH_ANNOTATION);
  const egress = read(EGRESS_BANDWIDTH_ANNOTATION);
  if (ingress === undefined && egress === undefined) return undefined;
  const MAX_BURST = 2 ** 32 - 1;
  return {
    ...(ingress !== undefined ? { ingressRate: ingress, ingressBurst: MAX_BURST } : {}),
    ...(egress !== undefined ? { egressRate: egress, egressBurst: MAX_BURST } : {}),
  };
}
