import { InvalidArgumentError, wrap, goQuote } from '@berth/errdefs';
import { ownValue, setOwn, validateLabels } from '@berth/metadata';
import { INHERITED_LABEL_PREFIX } from './types';

/** Returns the labels a backend keeps: only `containerd.io/snapshot/...` ones, as containerd. */
export function inheritedLabels(labels: Readonly<Record<string, string>> | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(labels ?? {})) if (k.startsWith(INHERITED_LABEL_PREFIX)) setOwn(out, k, v);
  return out;
}

/** Checks label sizes, with containerd's "info.Labels: " context. */
export function validateSnapshotLabels(labels: Readonly<Record<string, string>> | undefined): void {
  try {
    validateLabels(labels);
  } catch (err) {
    throw wrap(err, 'info.Labels');
  }
}

/** Drops empty values: an empty label is a deleted label. */
export function cleanLabels(labels: Readonly<Record<string, string>> | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(labels ?? {})) if (v !== '') setOwn(out, k, v);
  return out;
}

/**
 * Applies a label update as containerd's snapshot stores do: each `labels.<k>` path copies that
 * label from `labels` (absent or empty deletes it), `labels` or no paths replace the whole set.
 */
export function applyLabelUpdate(
  current: Readonly<Record<string, string>>,
  labels: Readonly<Record<string, string>> | undefined,
  fieldpaths: readonly string[] | undefined,
  name: string,
): Record<string, string> {
  if (!fieldpaths || fieldpaths.length === 0) return cleanLabels(labels);
  let next: Record<string, string> = { ...current };
  for (const path of fieldpaths) {
    if (path.startsWith('labels.')) {
      const key = path.slice('labels.'.length);
      setOwn(next, key, ownValue(labels, key) ?? '');
      continue;
    }
    if (path === 'labels') {
      next = { ...(labels ?? {}) };
      continue;
    }
    throw new InvalidArgumentError(`cannot update ${goQuote(path)} field on snapshot ${goQuote(name)}`);
  }
  return cleanLabels(next);
}
