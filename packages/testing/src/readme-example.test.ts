import { ctrAgainstBerthd } from '../examples/daemon-and-ctr';

describe('README example: ctr against a test daemon', () => {
  jest.setTimeout(60_000);

  it("creates a namespace and lists it and the gc plugin with containerd's ctr", async () => {
    const { namespaces, plugins } = await ctrAgainstBerthd();
    expect(namespaces.split('\n').map((l) => l.trimEnd())).toContain('tests suite=readme');
    expect(plugins).toMatch(/^io\.containerd\.gc\.v1\s+scheduler\s+-\s+ok\s*$/m);
  });
});
