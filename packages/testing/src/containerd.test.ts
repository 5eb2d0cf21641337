import { existsSync } from 'node:fs';
import { ReferenceContainerd2 } from './containerd';
import { runCtr2 } from './ctr';
import { CONTAINERD2_PATH, CTR2_PATH, REFERENCE_CONTAINERD2_VERSION, REFERENCE_TOOLS_BIN } from './reference-tools';

const installed = CONTAINERD2_PATH !== undefined && CTR2_PATH !== undefined;
const why = installed ? '' : ` (skipped: ctr and containerd ${REFERENCE_CONTAINERD2_VERSION} are not in ${REFERENCE_TOOLS_BIN}; run tools/reference-tools.sh)`;

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

(installed ? describe : describe.skip)(`ReferenceContainerd2: containerd ${REFERENCE_CONTAINERD2_VERSION} with ctr ${REFERENCE_CONTAINERD2_VERSION}${why}`, () => {
  let containerd: ReferenceContainerd2;

  beforeAll(async () => {
    containerd = await ReferenceContainerd2.start();
  });
  afterAll(async () => {
    await containerd?.cleanup();
  });

  it('runs on its own temp socket with the 2.x config, not the system daemon', () => {
    expect(containerd.address.startsWith(containerd.dir)).toBe(true);
    expect(existsSync(containerd.address)).toBe(true);
    expect(containerd.ctrPath).toBe(CTR2_PATH);
    expect(containerd.output).not.toMatch(/\/run\/containerd/);
    const serving = [...containerd.output.matchAll(/msg="?serving\.\.\."? address="?([^"\s]+)/g)].map((m) => m[1]).sort();
    expect(serving).toEqual([containerd.address, `${containerd.address}.ttrpc`]);
  });

  it('ctr version reports the pinned version for client and server', async () => {
    const r = await containerd.ctr(['version']);
    expect(r).toMatchObject({ code: 0 });
    const versions = [...r.stdout.matchAll(/^\s*Version:\s*(\S+)$/gm)].map((m) => m[1]);
    expect(versions).toEqual([`${REFERENCE_CONTAINERD2_VERSION}+unknown`, `${REFERENCE_CONTAINERD2_VERSION}+unknown`]);
    // runCtr2 is the same binary for any socket.
    expect((await runCtr2(containerd.address, ['version'])).stdout).toBe(r.stdout);
  });

  it('ctr plugins ls lists the transfer and streaming plugins as ok, and no CRI plugin', async () => {
    const r = await containerd.ctr(['plugins', 'ls']);
    expect(r.code).toBe(0);
    const status = new Map(
      r.stdout
        .split('\n')
        .slice(1)
        .map((line) => line.trim().split(/\s+/))
        .filter((cols) => cols.length === 4)
        .map(([type, id, , st]) => [`${type} ${id}`, st]),
    );
    expect({
      transfer: status.get('io.containerd.transfer.v1 local'),
      transferGrpc: status.get('io.containerd.grpc.v1 transfer'),
      streaming: status.get('io.containerd.streaming.v1 manager'),
      streamingGrpc: status.get('io.containerd.grpc.v1 streaming'),
    }).toEqual({ transfer: 'ok', transferGrpc: 'ok', streaming: 'ok', streamingGrpc: 'ok' });
    expect([...status.keys()].filter((k) => /cri|podsandbox|nri/.test(k))).toEqual([]);
    expect([...status].filter(([, st]) => st === 'error')).toEqual([]);
  });

  it('ctr images tag goes through Transfer: a missing source is NotFound', async () => {
    const r = await containerd.ctr(['images', 'tag', 'docker.io/library/missing:1', 'docker.io/library/other:1']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/image "docker.io\/library\/missing:1": not found/);
  });

  it('stops the process and removes its directory on cleanup', async () => {
    const other = await ReferenceContainerd2.start();
    const pid = other.pid!;
    expect(alive(pid)).toBe(true);
    await other.cleanup();
    expect(alive(pid)).toBe(false);
    expect(existsSync(other.dir)).toBe(false);
  });
});
