import { ReferenceContainerd, TestDaemon } from '@berth/testing';

/**
 * The stock ctr against berthd and against a real containerd 1.6, side by side: every command
 * must print the same and exit the same.
 */
describe('ctr compatibility (namespaces, version, plugins)', () => {
  let berthd: TestDaemon;
  let containerd: ReferenceContainerd;

  beforeAll(async () => {
    [berthd, containerd] = await Promise.all([TestDaemon.start(), ReferenceContainerd.start()]);
  });
  afterAll(async () => {
    await Promise.all([berthd?.cleanup(), containerd?.cleanup()]);
  });

  const script: string[][] = [
    ['namespaces', 'create', 'foo', 'a=b'],
    ['namespaces', 'create', 'foo'],
    ['namespaces', 'ls'],
    ['namespaces', 'label', 'foo', 'a=c', 'x'],
    ['namespaces', 'ls'],
    ['namespaces', 'label', 'foo', 'a='],
    ['namespaces', 'ls'],
    ['namespaces', 'ls', '-q'],
    ['namespaces', 'create', 'a/b'],
    ['namespaces', 'create', 'Bad!'],
    ['namespaces', 'create', 'bar', 'k', 'long.key/with-slash=v v'],
    ['namespaces', 'ls'],
    ['namespaces', 'rm', 'foo'],
    ['namespaces', 'rm', 'foo'],
    ['namespaces', 'rm', 'bar', 'nope'],
    ['namespaces', 'ls'],
  ];

  it('prints what containerd prints, command by command', async () => {
    for (const args of script) {
      const [ours, theirs] = await Promise.all([berthd.ctr(args), containerd.ctr(args)]);
      expect({ args, ...ours }).toEqual({ args, ...theirs });
    }
  });

  it('ctr plugins ls with a bad filter fails as against containerd', async () => {
    const args = ['plugins', 'ls', 'type=='];
    const [ours, theirs] = await Promise.all([berthd.ctr(args), containerd.ctr(args)]);
    expect(ours).toEqual(theirs);
  });

  it('ctr version prints a Server section with the uuid', async () => {
    const res = await berthd.ctr(['version']);
    expect(res.code).toBe(0);
    expect(res.stdout).toMatch(/Server:\n {2}Version: {2}2\.0\.0\+berth\.\d+\.\d+\.\d+\n {2}Revision: \S+\n {2}UUID: [0-9a-f-]{36}\n/);
  });

  it('ctr plugins ls prints TYPE, ID, PLATFORMS and STATUS for every plugin', async () => {
    const res = await berthd.ctr(['plugins', 'ls']);
    expect(res.code).toBe(0);
    const lines = res.stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^TYPE\s+ID\s+PLATFORMS\s+STATUS\s*$/);
    expect(lines.slice(1).every((l) => /^io\.containerd\.\S+\s+\S+\s+\S+\s+ok\s*$/.test(l))).toBe(true);
    const filtered = await berthd.ctr(['plugins', 'ls', 'type==io.containerd.grpc.v1']);
    expect(filtered.stdout.trim().split('\n').slice(1).every((l) => l.startsWith('io.containerd.grpc.v1 '))).toBe(true);
  });
});
