import { POLICY_LABEL, COUNT_LABEL, shouldRestart } from '@berth/restart';

/**
 * Decides, as the restart monitor does for a container whose task should run but exited, whether
 * it is started again: from the exit status and the container's labels (the policy clients such
 * as nerdctl's `--restart` set, and the count the monitor keeps). A bad policy means no restart
 * and is reported.
 */
export function restartDecisions(): { decisions: string[]; reported: string[] } {
  const reported: string[] = [];
  const cases: Array<[number, Record<string, string>]> = [
    [0, {}],
    [0, { [POLICY_LABEL]: 'on-failure' }],
    [1, { [POLICY_LABEL]: 'on-failure:3', [COUNT_LABEL]: '2' }],
    [1, { [POLICY_LABEL]: 'on-failure:3', [COUNT_LABEL]: '3' }],
    [137, { [POLICY_LABEL]: 'no' }],
    [1, { [POLICY_LABEL]: 'sometimes' }],
  ];
  const decisions = cases.map(([status, labels]) => {
    const restart = shouldRestart(status, labels, (err) => reported.push(err.message));
    return `${labels[POLICY_LABEL] ?? '(always)'} exit ${status}${labels[COUNT_LABEL] ? ` after ${labels[COUNT_LABEL]}` : ''}: ${restart ? 'restart' : 'leave'}`;
  });
  return { decisions, reported };
}
