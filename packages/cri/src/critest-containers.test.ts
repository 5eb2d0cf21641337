/**
 * critest v1.37's container specs ("Container", "Multiple Containers", "Security Context",
 * "Idempotence", "Networking", "Mount Propagation", "Mount Readonly", the sysctls and OOM specs)
 * on containerd 1.6.20 and on berthd, through the cri-conformance tool (tools/cri-conformance:
 * its look-alike images, private CNI network and cleanup): every spec that passes on containerd
 * must pass on berthd. The streaming specs (Exec, Attach, PortForward) are left out until the
 * streaming server is there.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { CONTAINERD_PATH, CRITEST_PATH } from '@berth/testing';

jest.setTimeout(3_600_000);

const MAIN = join(__dirname, '../../../tools/cri-conformance/dist/main.js');
const run = CONTAINERD_PATH && CRITEST_PATH && existsSync(CRITEST_PATH) && existsSync(MAIN) ? describe : describe.skip;

/** The specs that need the streaming server (cri-streaming), left out here. */
const STREAMING = 'Streaming|port forward|portforward';

run('critest v1.37 container specs: berthd passes every one containerd 1.6.20 passes', () => {
  it('runs them on both and finds no regression', async () => {
    const args = [MAIN, '--focus', 'Container|Security Context|Idempotence|Networking|Mount|sysctls|OOM', '--skip', STREAMING, '--timeout', '1500'];
    const { code, output } = await new Promise<{ code: number; output: string }>((resolve, reject) => {
      const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
      let output = '';
      child.stdout.on('data', (b: Buffer) => (output += b.toString()));
      child.stderr.on('data', (b: Buffer) => (output += b.toString()));
      child.once('error', reject);
      child.once('close', (c) => resolve({ code: c ?? 1, output }));
    });
    process.stderr.write(output);
    const summary = /critest: (\d+) specs: (\d+) pass on both, (\d+) pass on containerd 1\.6 only/.exec(output);
    expect(summary).not.toBeNull();
    expect({ regressions: Number(summary![3]), code }).toEqual({ regressions: 0, code: 0 });
    expect(Number(summary![2])).toBeGreaterThanOrEqual(40);
  });
});
