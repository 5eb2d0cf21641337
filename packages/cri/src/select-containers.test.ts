import { ContainerConfig } from '@berth/api/cri';
import { type CriContainer, CONTAINER_CREATED, CONTAINER_RUNNING, selectContainers } from './container-service';

function container(id: string, createdAt: bigint, labels: Record<string, string>, running = false): CriContainer {
  return {
    id,
    name: id,
    sandboxId: `pod-of-${id}`,
    config: ContainerConfig.fromPartial({ metadata: { name: id, attempt: 0 }, labels }),
    imageRef: '',
    imageName: '',
    logPath: '',
    stopSignal: '',
    state: { pid: running ? 42 : 0, createdAt, startedAt: running ? createdAt + 1n : 0n, finishedAt: 0n, exitCode: 0, reason: '', message: '', starting: false, removing: false, unknown: false },
  };
}

const ids = (list: CriContainer[]) => list.map((c) => c.id);
const all = { id: '', sandboxId: '', labelSelector: {} };

describe('selectContainers (ListContainers)', () => {
  const a = container('a', 10n, { app: 'web', tier: 'front' });
  const b = container('b', 20n, { app: 'web', tier: 'back' }, true);
  const c = container('c', 30n, { app: 'db' });

  it('answers oldest first, whether the containers come in creation order or not', () => {
    expect(ids(selectContainers([a, b, c], all))).toEqual(['a', 'b', 'c']);
    expect(ids(selectContainers([c, a, b], all))).toEqual(['a', 'b', 'c']);
    expect(ids(selectContainers([], all))).toEqual([]);
  });

  it.each([
    [{ labelSelector: { app: 'web' } }, ['a', 'b']],
    [{ labelSelector: { app: 'web', tier: 'back' } }, ['b']],
    [{ labelSelector: { app: 'web', tier: 'none' } }, []],
    [{ labelSelector: { missing: '' } }, []],
    [{ id: 'c' }, ['c']],
    [{ sandboxId: 'pod-of-a' }, ['a']],
    [{ state: CONTAINER_RUNNING }, ['b']],
    [{ state: CONTAINER_CREATED, labelSelector: { app: 'web' } }, ['a']],
  ])('keeps the containers that match every criterion of %j', (filter, expected) => {
    expect(ids(selectContainers([c, b, a], { ...all, ...filter }))).toEqual(expected);
  });
});
