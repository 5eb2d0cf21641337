import { ContainerConfig, ListContainersResponse } from '@berth/api/cri';
import type { CriContainer } from './container-service';
import { encodeContainerList, toContainer } from './cri-grpc';
import { PreEncoded, runtimeServiceDefinition } from './definitions';

function container(i: number, labels: Record<string, string>): CriContainer {
  return {
    id: `${i}`.repeat(64).slice(0, 64),
    name: `c${i}`,
    sandboxId: 'f'.repeat(64),
    config: ContainerConfig.fromPartial({ metadata: { name: `c${i}`, attempt: 1 }, image: { image: 'busybox' }, labels, annotations: { big: 'x'.repeat(300 * i) } }),
    imageRef: `sha256:${'a'.repeat(64)}`,
    imageName: 'docker.io/library/busybox:latest',
    logPath: '',
    stopSignal: '',
    state: { pid: 0, createdAt: 1_796_339_641_945_889_123n + BigInt(i), startedAt: 0n, finishedAt: 0n, exitCode: 0, reason: '', message: '', starting: false, removing: false, unknown: false },
  };
}

describe('ListContainers from cached encodings', () => {
  it('gives the bytes the generated encoder gives, also after a state change (which re-encodes that container)', () => {
    const list = [container(1, { app: 'a' }), container(2, {}), container(3, { app: 'b', tier: 'x' })];
    const expected = () => Buffer.from(ListContainersResponse.encode({ containers: list.map(toContainer) }).finish());
    expect(encodeContainerList(list)).toEqual(expected());
    list[1].state = { ...list[1].state, startedAt: list[1].state.createdAt + 1000n, pid: 42 };
    expect(encodeContainerList(list)).toEqual(expected());
    expect(ListContainersResponse.decode(encodeContainerList(list)).containers.map((c) => [c.metadata?.name, c.state, c.createdAt])).toEqual([
      ['c1', 0, '1796339641945889124'],
      ['c2', 1, '1796339641945889125'],
      ['c3', 0, '1796339641945889126'],
    ]);
    expect(encodeContainerList([])).toEqual(Buffer.alloc(0));
  });

  it('passes a PreEncoded answer through the service definition; encodes anything else', () => {
    const def = runtimeServiceDefinition().listContainers;
    expect(def.responseSerialize(new PreEncoded(Buffer.from([1, 2, 3])) as never)).toEqual(Buffer.from([1, 2, 3]));
    expect(Buffer.from(def.responseSerialize({ containers: [] }))).toEqual(Buffer.alloc(0));
  });
});
