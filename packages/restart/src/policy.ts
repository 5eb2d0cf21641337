import { InvalidArgumentError } from '@berth/errdefs';

/** The desired status of a container's task: `running` or `stopped`. */
export const STATUS_LABEL = 'containerd.io/restart.status';
/** `always` (the default), `no`, `on-failure[:max-retries]` or `unless-stopped`. */
export const POLICY_LABEL = 'containerd.io/restart.policy';
/** How often the monitor has restarted the task (written by the monitor). */
export const COUNT_LABEL = 'containerd.io/restart.count';
/** `true` once a client stopped the container on purpose (read by `unless-stopped`). */
export const EXPLICITLY_STOPPED_LABEL = 'containerd.io/restart.explicitly-stopped';
/** Where a restarted task's stdout and stderr go: a containerd log URI (`file:///path`, `binary:///path?args`). */
export const LOG_URI_LABEL = 'containerd.io/restart.loguri';
/** Deprecated (containerd 1.5): a log file path; the log URI label wins when both are set. */
export const LOG_PATH_LABEL = 'containerd.io/restart.logpath';

/** A parsed restart policy. */
export interface RestartPolicy {
  name: 'no' | 'always' | 'on-failure' | 'unless-stopped';
  /** For on-failure: the most restarts; 0 means no limit. */
  maximumRetryCount: number;
}

/** Parses a restart policy label as containerd does; InvalidArgument with containerd's wording otherwise. */
export function parsePolicy(text: string): RestartPolicy {
  const [name, ...rest] = text.split(':');
  switch (name) {
    case '':
    case 'no':
    case 'always':
    case 'unless-stopped':
      if (rest.length > 0) throw new InvalidArgumentError(`restart policy "${name}" not support max retry count`, { bare: true });
      return { name: name === '' ? 'always' : name, maximumRetryCount: 0 };
    case 'on-failure': {
      let max = 0;
      if (rest.length > 0) {
        max = Number(rest[0]);
        if (rest.length > 1 || !/^[+-]?\d+$/.test(rest[0]) || !Number.isSafeInteger(max)) {
          throw new InvalidArgumentError(`invalid max retry count: ${rest.join(':')}`, { bare: true });
        }
      }
      return { name, maximumRetryCount: max };
    }
    default:
      throw new InvalidArgumentError(`restart policy "${text}" not supported`, { bare: true });
  }
}

/** Go's strconv.ParseBool. */
function parseBool(s: string | undefined): boolean {
  return ['1', 't', 'T', 'TRUE', 'true', 'True'].includes(s ?? '');
}

/**
 * Decides, as containerd's `restart.Reconcile`, whether a task that should be running but is not
 * is started again, from its exit status and the container's labels. A bad policy or count label
 * means no restart (and is reported through `onError`).
 */
export function shouldRestart(exitStatus: number, labels: Readonly<Record<string, string>>, onError: (err: Error) => void = () => undefined): boolean {
  let policy: RestartPolicy;
  try {
    policy = parsePolicy(labels[POLICY_LABEL] ?? '');
  } catch (err) {
    onError(err as Error);
    return false;
  }
  switch (policy.name) {
    case 'always':
      return true;
    case 'on-failure': {
      const raw = labels[COUNT_LABEL] ?? '';
      const count = raw === '' ? 0 : Number(raw);
      if (raw !== '' && !/^[+-]?\d+$/.test(raw)) {
        onError(new InvalidArgumentError(`restart count label ${JSON.stringify(raw)} is not a number`, { bare: true }));
        return false;
      }
      return exitStatus !== 0 && (policy.maximumRetryCount === 0 || count < policy.maximumRetryCount);
    }
    case 'unless-stopped':
      return !parseBool(labels[EXPLICITLY_STOPPED_LABEL]);
    default:
      return false;
  }
}
