import { createHash } from 'node:crypto';

/** chainID(1) = diffID(1); chainID(n) = sha256(chainID(n-1) + " " + diffID(n)). */
export function chainIds(diffIds: readonly string[]): string[] {
  const out: string[] = [];
  for (const d of diffIds) {
    const prev = out[out.length - 1];
    out.push(prev === undefined ? d : `sha256:${createHash('sha256').update(`${prev} ${d}`).digest('hex')}`);
  }
  return out;
}

/** The chain ID of the whole list (the top snapshot's name); '' for none. */
export function chainId(diffIds: readonly string[]): string {
  const all = chainIds(diffIds);
  return all[all.length - 1] ?? '';
}
