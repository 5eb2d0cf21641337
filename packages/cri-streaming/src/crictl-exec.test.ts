import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '@berth/testing';
import { StreamingServer } from './streaming-server';
import { ProcessRuntime, type TestCriServer, crictl, startCriServer } from './test-support';

jest.setTimeout(120_000);

// crictl's default transport is SPDY (remotecommand v4 here); `-r websocket` offers only v5.channel.k8s.io.
describe.each(['spdy', 'websocket'])('crictl exec -r %s through the streaming server', (transport) => {
  const dir = tempDir('berth-cri-streaming-');
  const runtime = new ProcessRuntime();
  let streaming: StreamingServer;
  let cri: TestCriServer;
  const run = ([command, ...args]: string[], input?: string | Buffer) => crictl(cri.socket, dir.path, [command, '-r', transport, ...args], { input });

  beforeAll(async () => {
    streaming = await StreamingServer.start({ runtime });
    cri = await startCriServer(streaming, dir.path);
  });
  afterAll(async () => {
    runtime.cleanup();
    await cri?.close();
    await streaming?.close();
    dir.remove();
  });

  it('runs a command and prints its stdout and stderr', async () => {
    const r = await run(['exec', 'c1', 'sh', '-c', 'echo out; echo err >&2']);
    expect({ code: r.code, stdout: r.stdout.toString(), stderr: r.stderr }).toEqual({ code: 0, stdout: 'out\n', stderr: 'err\n' });
    expect(cri.calls).toContain('Exec');
  });

  // crictl 1.37 reads the exit code from the v4 status (client-go's "command terminated with exit
  // code N") but exits 1 for any failure of a streaming exec; only `exec -s` exits with the code.
  it.each([3, 1, 255])('passes exit code %i through to the client', async (n) => {
    const r = await run(['exec', 'c1', 'sh', '-c', `echo bye; exit ${n}`]);
    expect({ code: r.code, stdout: r.stdout.toString(), stderr: r.stderr.replace(/^.*msg="|"\n$/g, '') }).toEqual({
      code: 1,
      stdout: 'bye\n',
      stderr: `execing command in container c1: command terminated with exit code ${n}`,
    });
  });

  it('feeds stdin with -i and closes it at EOF', async () => {
    const r = await run(['exec', '-i', 'c1', 'sh', '-c', 'cat; echo done'], 'hello\nworld\n');
    expect({ code: r.code, stdout: r.stdout.toString() }).toEqual({ code: 0, stdout: 'hello\nworld\ndone\n' });
  });

  it('carries 20 MiB of output intact', async () => {
    const file = join(dir.path, 'big');
    writeFileSync(file, randomBytes(20 << 20));
    const want = createHash('sha256').update(readFileSync(file)).digest('hex');
    const r = await run(['exec', 'c1', 'cat', file]);
    expect({ code: r.code, length: r.stdout.length, sha256: createHash('sha256').update(r.stdout).digest('hex') }).toEqual({ code: 0, length: 20 << 20, sha256: want });
  });

  it('carries 20 MiB of input intact to a slow reader, then EOF', async () => {
    const input = randomBytes(20 << 20);
    // The reader starts late, so the input backs up through the connection first.
    const r = await run(['exec', '-i', 'c1', 'sh', '-c', 'sleep 1; sha256sum; echo eof'], input);
    expect({ code: r.code, stdout: r.stdout.toString() }).toEqual({ code: 0, stdout: `${createHash('sha256').update(input).digest('hex')}  -\neof\n` });
  });

  it('runs several sessions at once', async () => {
    const results = await Promise.all([1, 2, 3, 4, 5].map((i) => run(['exec', '-i', `c${i}`, 'sh', '-c', `cat; sleep 0.2; echo ${i}; exit ${i}`], `in${i}\n`)));
    expect(results.map((r) => [r.code, r.stdout.toString(), /exit code (\d+)/.exec(r.stderr)?.[1]])).toEqual([1, 2, 3, 4, 5].map((i) => [1, `in${i}\n${i}\n`, String(i)]));
  });
});
