import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { runPod } from '../examples/pod-network';
import { TestNetwork } from './test-helpers';

jest.setTimeout(60_000);

describe('README example: one pod on a bridge network', () => {
  let net: TestNetwork;
  beforeAll(() => (net = new TestNetwork()));
  afterAll(() => net.cleanup());

  it('is not ready without a configuration, then attaches a namespace and gives its address back', async () => {
    const dir = join(net.dir, 'example');
    const res = await runPod(dir, net.bridge, `${net.subnet}.0/24`);
    expect(res).toEqual({ before: 'Network plugin returns error: cni plugin not initialized', after: 'ready', ip: `${net.subnet}.2`, gateway: `${net.subnet}.1` });
    expect(readdirSync(join(dir, 'ipam', 'pods')).filter((f) => /^\d/.test(f))).toEqual([]);
    expect(readdirSync(join(dir, 'netns'))).toEqual([]);
  });
});
