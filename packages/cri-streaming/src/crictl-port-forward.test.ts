import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '@berth/testing';
import { StreamingServer } from './streaming-server';
import { ProcessRuntime, type TestCriServer, crictlArgv, startCriServer } from './test-support';
import { CRICTL_PATH } from '@berth/testing';

jest.setTimeout(120_000);

/** Starts `crictl port-forward` and resolves with its local port once it says it listens. */
function portForward(cri: TestCriServer, dir: string, args: string[]): Promise<{ child: ChildProcess; port: number; output: () => string }> {
  const child = spawn(CRICTL_PATH!, crictlArgv(cri.socket, dir, ['port-forward', ...args]), { stdio: ['ignore', 'pipe', 'pipe'], env: { PATH: process.env.PATH, HOME: dir } });
  let out = '';
  return new Promise((resolve, reject) => {
    const onData = (b: Buffer) => {
      out += b.toString();
      const m = /Forwarding from 127\.0\.0\.1:(\d+)/.exec(out);
      if (m) resolve({ child, port: Number(m[1]), output: () => out });
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.once('exit', (code) => reject(new Error(`crictl port-forward exited ${code}: ${out}`)));
  });
}

function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once('exit', () => resolve());
    child.kill('SIGINT');
  });
}

describe('crictl port-forward into a network namespace', () => {
  const dir = tempDir('berth-cri-pf-');
  const ns = `berth-pf-${randomBytes(4).toString('hex')}`;
  const runtime = new ProcessRuntime();
  const big = randomBytes(4 << 20);
  let httpd: ChildProcess | undefined;
  let streaming: StreamingServer;
  let cri: TestCriServer;
  const forwards: ChildProcess[] = [];

  beforeAll(async () => {
    const www = join(dir.path, 'www');
    mkdirSync(www);
    writeFileSync(join(www, 'index.html'), 'hello from the pod\n');
    writeFileSync(join(www, 'big'), big);
    execFileSync('ip', ['netns', 'add', ns]);
    execFileSync('ip', ['netns', 'exec', ns, 'ip', 'link', 'set', 'lo', 'up']);
    // Listening on the namespace's loopback only: reachable only from inside it.
    httpd = spawn('ip', ['netns', 'exec', ns, 'busybox', 'httpd', '-f', '-p', '127.0.0.1:8080', '-h', www], { stdio: 'ignore' });
    for (let i = 0; i < 50; i++) {
      try {
        execFileSync('ip', ['netns', 'exec', ns, 'busybox', 'wget', '-q', '-O', '/dev/null', 'http://127.0.0.1:8080/index.html'], { stdio: 'ignore' });
        break;
      } catch {
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    runtime.netns.set('pod1', `/var/run/netns/${ns}`);
    streaming = await StreamingServer.start({ runtime });
    cri = await startCriServer(streaming, dir.path);
  });
  afterAll(async () => {
    for (const c of forwards) await stop(c);
    if (httpd?.pid) httpd.kill('SIGKILL');
    await cri?.close();
    await streaming?.close();
    runtime.cleanup();
    execFileSync('ip', ['netns', 'del', ns]);
    dir.remove();
  });

  it('forwards a local port to the pod: one request, a big one, and several at once', async () => {
    const pf = await portForward(cri, dir.path, ['pod1', ':8080']);
    forwards.push(pf.child);
    const base = `http://127.0.0.1:${pf.port}`;
    expect(await (await fetch(`${base}/index.html`)).text()).toBe('hello from the pod\n');
    const body = Buffer.from(await (await fetch(`${base}/big`)).arrayBuffer());
    expect(createHash('sha256').update(body).digest('hex')).toBe(createHash('sha256').update(big).digest('hex'));
    // Rounds of concurrent connections: each is its own stream pair and its own helper in the
    // namespace (a helper that read from its socket before handing it over once lost replies).
    for (let round = 0; round < 5; round++) {
      const texts = await Promise.all([1, 2, 3, 4, 5, 6].map(async () => (await fetch(`${base}/index.html`)).text()));
      expect(texts).toEqual(Array(6).fill('hello from the pod\n'));
    }
    expect(cri.calls).toContain('PortForward');
    await stop(pf.child);
  });

  // client-go prints the error stream's text and then drops the whole connection ("lost connection
  // to pod"), so crictl exits.
  it('reports a port with no listener on the error stream', async () => {
    const pf = await portForward(cri, dir.path, ['pod1', ':9']);
    forwards.push(pf.child);
    await expect(fetch(`http://127.0.0.1:${pf.port}/`)).rejects.toThrow();
    for (let i = 0; i < 50 && !pf.output().includes('error forwarding port 9'); i++) await new Promise((r) => setTimeout(r, 100));
    await new Promise((resolve) => (pf.child.exitCode === null ? pf.child.once('exit', resolve) : resolve(undefined)));
    expect(pf.output().replace(/\\/g, '')).toContain(
      `error forwarding port 9 to pod pod1, uid : failed to execute portforward in network namespace "/var/run/netns/${ns}": failed to connect to localhost:9 inside namespace "pod1", IPv4: dial tcp4 127.0.0.1:9: connect: connection refused IPv6 ${
        // Go, like this server, finds localhost's addresses in /etc/hosts: none for IPv6 on some machines.
        /^::1\s.*\blocalhost\b/m.test(readFileSync('/etc/hosts', 'utf8')) ? 'dial tcp6 [::1]:9: connect: connection refused' : 'dial tcp6: address localhost: no suitable address found'
      } `,
    );
    expect(pf.output()).toContain('lost connection to pod');
  });
});
