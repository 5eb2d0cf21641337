import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import * as net from 'node:net';
import { join } from 'node:path';
import { Duplex, PassThrough } from 'node:stream';
import { tempDir } from '@berth/testing';
import { MAX_CONCURRENT_DIAL_HELPERS, PortDialError, dialPort, forwardPort } from './port-dial';

jest.setTimeout(120_000);

const get = (socket: net.Socket): Promise<string> =>
  new Promise((resolve) => {
    let text = '';
    socket.on('data', (b: Buffer) => (text += b.toString()));
    socket.on('close', () => resolve(text));
    socket.resume();
    socket.end('GET /index.html HTTP/1.0\r\n\r\n');
  });

describe('dialing a port inside a network namespace', () => {
  const dir = tempDir('berth-cri-dial-');
  const ns = `berth-dial-${randomBytes(4).toString('hex')}`;
  const path = `/var/run/netns/${ns}`;
  let httpd: ChildProcess | undefined;

  beforeAll(async () => {
    mkdirSync(join(dir.path, 'www'));
    writeFileSync(join(dir.path, 'www', 'index.html'), 'inside\n');
    execFileSync('ip', ['netns', 'add', ns]);
    execFileSync('ip', ['netns', 'exec', ns, 'ip', 'link', 'set', 'lo', 'up']);
    httpd = spawn('ip', ['netns', 'exec', ns, 'busybox', 'httpd', '-f', '-p', '127.0.0.1:8080', '-h', join(dir.path, 'www')], { stdio: 'ignore' });
    for (let i = 0; i < 50; i++) {
      try {
        execFileSync('ip', ['netns', 'exec', ns, 'busybox', 'wget', '-q', '-O', '/dev/null', 'http://127.0.0.1:8080/index.html'], { stdio: 'ignore' });
        break;
      } catch {
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  });
  afterAll(() => {
    httpd?.kill('SIGKILL');
    execFileSync('ip', ['netns', 'del', ns]);
    dir.remove();
  });

  it(`connects many at once (more than the ${MAX_CONCURRENT_DIAL_HELPERS} helpers that run together), each socket intact`, async () => {
    const replies = await Promise.all(Array.from({ length: 20 }, async () => get(await dialPort(path, 8080))));
    for (const r of replies) expect(r).toMatch(/^HTTP\/1\.[01] 200 OK\r\n[^]*\r\n\r\ninside\n$/);
  });

  it('forwards a stream both ways with half-close', async () => {
    const stream = new PassThrough();
    const client = new PassThrough();
    // The client side of a port-forward data stream: reads come from `stream`, writes go to `client`.
    const duplex = new Duplex({
      write(chunk: Buffer, _e, cb) {
        client.write(chunk);
        cb();
      },
      final(cb) {
        client.end();
        cb();
      },
      read() {},
    });
    stream.on('data', (b: Buffer) => duplex.push(b));
    stream.on('end', () => duplex.push(null));
    let text = '';
    client.on('data', (b: Buffer) => (text += b.toString()));
    const done = forwardPort(path, 8080, duplex);
    stream.end('GET /index.html HTTP/1.0\r\n\r\n');
    await done;
    expect(text).toMatch(/\r\n\r\ninside\n$/);
  });

  it('says what containerd says when nothing listens, and when the namespace is not there', async () => {
    const v6 = /^::1\s.*\blocalhost\b/m.test(readFileSync('/etc/hosts', 'utf8'));
    const err = (await dialPort(path, 9, { name: 'pod-id' }).catch((e: unknown) => e)) as Error;
    expect(err).toBeInstanceOf(PortDialError);
    expect(err.message).toBe(
      `failed to execute portforward in network namespace "${path}": failed to connect to localhost:9 inside namespace "pod-id", IPv4: dial tcp4 127.0.0.1:9: connect: connection refused IPv6 ${
        v6 ? 'dial tcp6 [::1]:9: connect: connection refused' : 'dial tcp6: address localhost: no suitable address found'
      } `,
    );
    const gone = (await dialPort(join(dir.path, 'no-such-netns'), 80).catch((e: unknown) => e)) as Error;
    expect(gone.message).toMatch(/^failed to enter network namespace ".*no-such-netns": nsenter: /);
    await expect(dialPort(path, 0)).rejects.toThrow('invalid port 0');
  });
});
