import * as http from 'node:http';
import * as net from 'node:net';
import { PassThrough, Readable } from 'node:stream';
import { isInvalidArgument } from '@berth/errdefs';
import { openPortForwardStreams, streamRemoteCommand, upgradeToSpdy } from './client';
import { resizeEvents } from './remotecommand';
import type { StreamingIo, StreamingRuntime, TerminalSize } from './runtime';
import { encodeData, encodePing, encodeSynStream } from './spdy-frames';
import { StreamingServer } from './streaming-server';

jest.setTimeout(60_000);

/** A runtime scripted by the command: `echo <text>`, `exit <n>`, `fail <message>`, `cat`, `sleep`, `sizes`. */
class ScriptRuntime implements StreamingRuntime {
  sizes: TerminalSize[] = [];
  aborted = 0;
  async exec(_id: string, cmd: string[], io: StreamingIo): Promise<number> {
    const [verb, arg] = cmd;
    if (verb === 'echo') io.stdout?.write(arg);
    if (verb === 'err') io.stderr?.write(arg);
    if (verb === 'exit') return Number(arg);
    if (verb === 'fail') throw new Error(arg);
    if (verb === 'cat') for await (const c of io.stdin ?? []) io.stdout?.write(c);
    if (verb === 'sizes') for await (const s of io.resize ?? []) this.sizes.push(s);
    if (verb === 'sleep') {
      await new Promise<void>((resolve) => io.signal.addEventListener('abort', () => resolve()));
      this.aborted++;
      return 137;
    }
    return 0;
  }
  async attach(id: string, io: StreamingIo): Promise<void> {
    io.stdout?.write(`attached ${id}`);
  }
  async portForward(_sandbox: string, port: number, stream: import('node:stream').Duplex): Promise<void> {
    if (port === 1) throw new Error('nothing listens');
    // An echo service: what comes in goes back, then the stream ends when the client's does.
    for await (const c of stream.iterator({ destroyOnReturn: false })) stream.write(c);
  }
}

function rawRequest(port: number, text: string | Buffer, endAfterMs?: number): Promise<string> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1', () => {
      s.write(text);
      if (endAfterMs !== undefined) setTimeout(() => s.end(), endAfterMs);
    });
    let out = '';
    s.on('data', (b) => (out += b.toString('latin1')));
    s.on('error', () => resolve(out));
    s.on('close', () => resolve(out));
  });
}

function get(url: string, headers: http.OutgoingHttpHeaders = {}, method = 'GET'): Promise<{ status: number; body: string; headers: http.IncomingHttpHeaders; raw: string[] }> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, headers }, (res) => {
      let body = '';
      res.on('data', (b: Buffer) => (body += b.toString()));
      res.on('end', () => resolve({ status: res.statusCode!, body, headers: res.headers, raw: res.rawHeaders }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('StreamingServer', () => {
  const runtime = new ScriptRuntime();
  let server: StreamingServer;
  const execUrl = (cmd: string[], o: Partial<{ stdin: boolean; stdout: boolean; stderr: boolean; tty: boolean }> = {}) =>
    server.getExec({ containerId: 'c1', cmd, stdin: false, stdout: true, stderr: true, tty: false, ...o }).url;

  beforeAll(async () => {
    server = await StreamingServer.start({ runtime, streamCreationTimeoutMs: 1000 });
  });
  afterAll(() => server.close());

  describe('requests', () => {
    it.each([
      ['exec without a container id', () => server.getExec({ containerId: '', cmd: ['x'], stdin: false, stdout: true, stderr: false, tty: false }), 'missing required container_id'],
      ['exec with tty and stderr', () => server.getExec({ containerId: 'c', cmd: ['x'], stdin: true, stdout: true, stderr: true, tty: true }), 'tty and stderr cannot both be true'],
      ['exec with no stream', () => server.getExec({ containerId: 'c', cmd: ['x'], stdin: false, stdout: false, stderr: false, tty: false }), 'one of stdin, stdout, or stderr must be set'],
      ['attach with no stream', () => server.getAttach({ containerId: 'c', stdin: false, stdout: false, stderr: false, tty: false }), 'one of stdin, stdout, and stderr must be set'],
      ['attach without a container id', () => server.getAttach({ containerId: '', stdin: true, stdout: false, stderr: false, tty: false }), 'missing required container_id'],
      ['port-forward without a sandbox id', () => server.getPortForward({ podSandboxId: '' }), 'missing required pod_sandbox_id'],
    ])('refuse %s with INVALID_ARGUMENT and containerd\'s text', (_name, call, message) => {
      let err: unknown;
      try {
        call();
      } catch (e) {
        err = e;
      }
      expect(isInvalidArgument(err)).toBe(true);
      expect((err as Error).message).toBe(message);
    });

    it('answer URLs on the listen address with a single-use token; unknown and used tokens are 404, on GET and POST', async () => {
      const url = execUrl(['echo', 'x']);
      expect(url).toMatch(new RegExp(`^http://127\\.0\\.0\\.1:${server.port}/exec/[A-Za-z0-9_-]{8}$`));
      expect(await get(url, { 'X-Stream-Protocol-Version': 'v4.channel.k8s.io' }, 'POST')).toMatchObject({ status: 400, body: expect.stringContaining('unable to upgrade: missing upgrade headers in request') });
      expect(await get(url, { 'X-Stream-Protocol-Version': 'v4.channel.k8s.io' })).toMatchObject({ status: 404, body: '404 page not found\n' });
      expect((await get(`http://127.0.0.1:${server.port}/exec/AAAAAAAA`)).status).toBe(404);
      expect((await get(`http://127.0.0.1:${server.port}/`)).status).toBe(404);
      // A token is good only for its own kind.
      const pf = server.getPortForward({ podSandboxId: 'p' }).url;
      expect((await get(pf.replace('/portforward/', '/exec/'))).status).toBe(404);
    });

    it('negotiate the protocol: none offered is 400, none supported is 403 with the accepted list', async () => {
      const none = await get(execUrl(['x']), { Connection: 'Upgrade', Upgrade: 'SPDY/3.1' });
      expect(none).toMatchObject({ status: 400, body: 'unable to upgrade: X-Stream-Protocol-Version is required\n' });
      const err = await upgradeToSpdy(execUrl(['x']), ['v5.channel.k8s.io', 'v9.channel.k8s.io']).catch((e: Error & { statusCode?: number; headers?: http.IncomingHttpHeaders }) => e);
      expect(err).toMatchObject({ statusCode: 403 });
      expect((err as Error).message).toContain('unable to upgrade: unable to negotiate protocol: client supports [v5.channel.k8s.io v9.channel.k8s.io], server accepts [v4.channel.k8s.io v3.channel.k8s.io v2.channel.k8s.io channel.k8s.io]');
      expect((err as { headers: http.IncomingHttpHeaders }).headers['x-accepted-stream-protocol-versions']).toBe('v4.channel.k8s.io, v3.channel.k8s.io, v2.channel.k8s.io, channel.k8s.io');
      const pf = await upgradeToSpdy(server.getPortForward({ podSandboxId: 'p' }).url, ['v4.channel.k8s.io']).catch((e: Error) => e);
      expect((pf as Error).message).toContain('server accepts [portforward.k8s.io]');
      const { conn, protocol } = await upgradeToSpdy(execUrl(['echo', 'x']), ['v5.channel.k8s.io, v3.channel.k8s.io', 'v4.channel.k8s.io']);
      expect(protocol).toBe('v3.channel.k8s.io');
      conn.destroy();
    });
  });

  describe('remotecommand', () => {
    const session = async (url: string, protocols?: string[], stdin?: string) => {
      let out = '';
      let err = '';
      const stdout = new PassThrough().on('data', (b: Buffer) => (out += b.toString()));
      const stderr = new PassThrough().on('data', (b: Buffer) => (err += b.toString()));
      const r = await streamRemoteCommand(url, { stdout, stderr, stdin: stdin === undefined ? undefined : Readable.from([stdin]), protocols });
      return { ...r, out, err };
    };

    it.each([
      ['success', ['echo', 'hi'], { out: 'hi', error: '{"metadata":{},"status":"Success"}', exitCode: 0 }],
      [
        'an exit code',
        ['exit', '3'],
        {
          out: '',
          error: '{"metadata":{},"status":"Failure","message":"command terminated with non-zero exit code: error executing command [exit 3], exit code 3","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"3"}]}}',
          exitCode: 3,
        },
      ],
      [
        'a runtime error',
        ['fail', 'no such container'],
        {
          out: '',
          error: '{"metadata":{},"status":"Failure","message":"Internal error occurred: error executing command in container: failed to exec in container: no such container","reason":"InternalError","details":{"causes":[{"message":"error executing command in container: failed to exec in container: no such container"}]},"code":500}',
          exitCode: undefined,
        },
      ],
    ])('v4 ends with the status JSON for %s', async (_name, cmd, want) => {
      const r = await session(execUrl(cmd));
      expect({ out: r.out, error: r.error, exitCode: r.exitCode, protocol: r.protocol }).toEqual({ ...want, protocol: 'v4.channel.k8s.io' });
    });

    it.each(['v3.channel.k8s.io', 'v2.channel.k8s.io'])('%s sends the message as text, and nothing on success', async (p) => {
      expect(await session(execUrl(['echo', 'ok']), [p])).toMatchObject({ protocol: p, out: 'ok', error: '' });
      expect(await session(execUrl(['exit', '2']), [p])).toMatchObject({ protocol: p, error: 'command terminated with non-zero exit code: error executing command [exit 2], exit code 2' });
    });

    it('channel.k8s.io (v1) resets the error stream at the start, as containerd does: no status at all', async () => {
      expect(await session(execUrl(['echo', 'ok']), ['channel.k8s.io'])).toMatchObject({ protocol: 'channel.k8s.io', out: 'ok', error: '' });
      expect(await session(execUrl(['exit', '2']), ['channel.k8s.io'])).toMatchObject({ protocol: 'channel.k8s.io', error: '' });
    });

    it('copies stdin until its end, and stderr separately', async () => {
      expect(await session(execUrl(['cat'], { stdin: true }), undefined, 'some input')).toMatchObject({ out: 'some input', exitCode: 0 });
      expect(await session(execUrl(['err', 'oops']))).toMatchObject({ out: '', err: 'oops', exitCode: 0 });
    });

    it('attach answers success and its errors as "error attaching to container"', async () => {
      const r = await session(server.getAttach({ containerId: 'box', stdin: false, stdout: true, stderr: true, tty: false }).url);
      expect({ out: r.out, exitCode: r.exitCode }).toEqual({ out: 'attached box', exitCode: 0 });
    });

    it('hands newline-delimited resize messages to the runtime', async () => {
      runtime.sizes = [];
      const url = execUrl(['sizes'], { tty: true, stdin: false, stderr: false });
      const { conn } = await upgradeToSpdy(url, ['v4.channel.k8s.io']);
      const error = await conn.openStream({ streamtype: 'error' });
      const stdout = await conn.openStream({ streamtype: 'stdout' });
      stdout.resume();
      const resize = await conn.openStream({ streamtype: 'resize' });
      resize.write('{"Width":80,"Height":24}\n{"width":100,');
      resize.end('"height":30}\n');
      let status = '';
      error.on('data', (b: Buffer) => (status += b.toString()));
      await new Promise((r) => error.on('end', r));
      expect(status).toBe('{"metadata":{},"status":"Success"}');
      expect(runtime.sizes).toEqual([{ width: 80, height: 24 }, { width: 100, height: 30 }]);
      await conn.close();
    });

    it('closes the connection when the client does not create its streams in time', async () => {
      const { conn } = await upgradeToSpdy(execUrl(['echo', 'x']), ['v4.channel.k8s.io']);
      await conn.openStream({ streamtype: 'error' });
      const t = Date.now();
      await new Promise((r) => conn.once('close', r));
      expect(Date.now() - t).toBeGreaterThanOrEqual(800);
    });
  });

  describe('port-forward', () => {
    it('pairs streams by request id (or stream ids), and writes failures on the error stream', async () => {
      const { conn, protocol } = await upgradeToSpdy(server.getPortForward({ podSandboxId: 'pod' }).url, ['portforward.k8s.io']);
      expect(protocol).toBe('portforward.k8s.io');
      const a = await openPortForwardStreams(conn, 80, 0);
      const b = await openPortForwardStreams(conn, 80, 1);
      // Without requestid: the data stream's id minus 2 names the error stream.
      const e = await conn.openStream({ streamtype: 'error', port: '80' });
      e.end();
      const d = await conn.openStream({ streamtype: 'data', port: '80' });
      const echo = async (s: import('node:stream').Duplex, text: string) => {
        s.end(text);
        let got = '';
        for await (const c of s) got += c.toString();
        return got;
      };
      expect(await Promise.all([echo(a.data, 'one'), echo(b.data, 'two'), echo(d, 'three')])).toEqual(['one', 'two', 'three']);
      const bad = await openPortForwardStreams(conn, 1, 2);
      let text = '';
      for await (const c of bad.error) text += c.toString();
      expect(text).toBe('error forwarding port 1 to pod pod, uid : nothing listens');
      await conn.close();
    });
  });

  describe('hostile input', () => {
    const upgraded = async (kind: 'exec' | 'pf' = 'exec') => {
      const url = kind === 'exec' ? execUrl(['echo', 'x']) : server.getPortForward({ podSandboxId: 'p' }).url;
      const path = new URL(url).pathname;
      const proto = kind === 'exec' ? 'v4.channel.k8s.io' : 'portforward.k8s.io';
      return `POST ${path} HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: ${proto}\r\n\r\n`;
    };
    const closesWith = async (bytes: Buffer) => {
      const reply = await rawRequest(server.port, Buffer.concat([Buffer.from(await upgraded()), bytes]));
      expect(reply).toMatch(/^HTTP\/1\.1 101 Switching Protocols\r\n/);
      return reply;
    };

    it.each([
      ['text that is not SPDY', Buffer.from('GET / HTTP/1.1\r\n\r\n')],
      ['a frame of SPDY/2', Buffer.from([0x80, 0x02, 0, 6, 0, 0, 0, 4, 0, 0, 0, 1])],
      ['a control frame claiming 16 MiB', Buffer.from([0x80, 0x03, 0, 1, 0, 0xff, 0xff, 0xff])],
      ['a SYN_STREAM whose header block is not zlib', encodeSynStream(1, Buffer.from('garbage'))],
      ['a SYN_STREAM with an even id', encodeSynStream(2, Buffer.alloc(0))],
      ['random bytes', Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 7919) & 0xff))],
    ])('after the upgrade, %s closes that connection only', async (_name, bytes) => {
      await closesWith(bytes);
      // The server goes on serving.
      expect((await streamRemoteCommand(execUrl(['echo', 'still here']), { stdout: new PassThrough().resume(), stderr: new PassThrough().resume() })).exitCode).toBe(0);
    });

    it('answers PINGs, ignores DATA for unknown streams, and survives a client that vanishes mid-frame', async () => {
      const reply = await rawRequest(server.port, Buffer.concat([Buffer.from(await upgraded('pf')), encodePing(1), encodeData(99, Buffer.from('x')), encodeData(101, Buffer.alloc(100)).subarray(0, 20)]), 300);
      expect(reply).toContain(encodePing(1).toString('latin1'));
    });

    it('answers garbage instead of HTTP with 400', async () => {
      expect(await rawRequest(server.port, '\x00\x01\x02 nonsense\r\n\r\n')).toMatch(/^HTTP\/1\.1 400 Bad Request/);
    });
  });

  it('parses resize messages strictly', async () => {
    const sizes = async (chunks: string[]) => {
      const out: TerminalSize[] = [];
      for await (const s of resizeEvents(Readable.from(chunks))) out.push(s);
      return out;
    };
    expect(await sizes(['{"Width":1,"Height":2}\n\n{"Height":', '4,"Width":3}'])).toEqual([{ width: 1, height: 2 }, { width: 3, height: 4 }]);
    expect(await sizes(['{"Width":1,"Height":2}\nnot json\n{"Width":5,"Height":6}\n'])).toEqual([{ width: 1, height: 2 }]);
    expect(await sizes(['{"Width":-1,"Height":2}\n'])).toEqual([]);
  });
});

describe('StreamingServer idle timeout', () => {
  it('closes a session that sends nothing for streamIdleTimeoutMs (SPDY and WebSocket)', async () => {
    const server = await StreamingServer.start({ runtime: new ScriptRuntime(), streamIdleTimeoutMs: 300 });
    try {
      const { conn } = await upgradeToSpdy(server.getPortForward({ podSandboxId: 'p' }).url, ['portforward.k8s.io']);
      const t = Date.now();
      await new Promise((r) => conn.once('close', r));
      expect(Date.now() - t).toBeGreaterThanOrEqual(250);
      const ws = await new Promise<number>((resolve) => {
        const path = new URL(server.getExec({ containerId: 'c', cmd: ['sleep'], stdin: true, stdout: true, stderr: false, tty: false }).url).pathname;
        const s = net.connect(server.port, '127.0.0.1', () =>
          s.write(`GET ${path} HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: v5.channel.k8s.io\r\n\r\n`),
        );
        const t0 = Date.now();
        s.resume();
        s.on('close', () => resolve(Date.now() - t0));
      });
      expect(ws).toBeGreaterThanOrEqual(250);
    } finally {
      await server.close();
    }
  });
});

describe('StreamingServer.close', () => {
  it('ends live sessions through the abort signal and still sends their status', async () => {
    const runtime = new ScriptRuntime();
    const server = await StreamingServer.start({ runtime });
    const url = server.getExec({ containerId: 'c', cmd: ['sleep'], stdin: false, stdout: true, stderr: false, tty: false }).url;
    const result = streamRemoteCommand(url, { stdout: new PassThrough().resume() });
    while (server.sessionCount === 0) await new Promise((r) => setTimeout(r, 20));
    await new Promise((r) => setTimeout(r, 100));
    await server.close();
    expect((await result).exitCode).toBe(137);
    expect(runtime.aborted).toBe(1);
    expect(server.sessionCount).toBe(0);
    expect(() => server.getExec({ containerId: 'c', cmd: ['x'], stdin: false, stdout: true, stderr: false, tty: false })).toThrow('streaming server is closed');
  });
});

describe('StreamingServer over WebSocket', () => {
  const runtime = new ScriptRuntime();
  let server: StreamingServer;
  beforeAll(async () => {
    server = await StreamingServer.start({ runtime });
  });
  afterAll(() => server.close());

  const frame = (op: number, payload: Buffer, masked = true) => {
    const mask = Buffer.from([1, 2, 3, 4]);
    const len = payload.length;
    const head = len < 126 ? Buffer.from([0x80 | op, (masked ? 0x80 : 0) | len]) : Buffer.from([0x80 | op, (masked ? 0x80 : 0) | 126, len >> 8, len & 0xff]);
    const body = Buffer.from(payload);
    if (masked) for (let i = 0; i < body.length; i++) body[i] ^= mask[i & 3];
    return Buffer.concat([head, masked ? mask : Buffer.alloc(0), body]);
  };
  const handshake = (url: string, protocol: string) => {
    const path = new URL(url).pathname;
    return `GET ${path} HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: ${protocol}\r\n\r\n`;
  };
  /** Server frames (unmasked) in a byte string: [opcode, payload]. */
  const frames = (bytes: Buffer): Array<[number, string]> => {
    const out: Array<[number, string]> = [];
    let off = bytes.indexOf('\r\n\r\n') + 4;
    while (off + 2 <= bytes.length) {
      let len = bytes[off + 1] & 0x7f;
      let start = off + 2;
      if (len === 126) {
        len = bytes.readUInt16BE(off + 2);
        start = off + 4;
      }
      out.push([bytes[off] & 0x0f, bytes.subarray(start, start + len).toString('latin1')]);
      off = start + len;
    }
    return out;
  };
  const exchange = (bytes: Buffer, later?: Buffer): Promise<Buffer> =>
    new Promise((resolve) => {
      const s = net.connect(server.port, '127.0.0.1', () => {
        s.write(bytes);
        if (later) setTimeout(() => s.write(later), 300);
      });
      const got: Buffer[] = [];
      s.on('data', (b: Buffer) => got.push(b));
      s.on('error', () => undefined);
      s.on('close', () => resolve(Buffer.concat(got)));
    });
  const execUrl = (cmd: string[], stdin = false) => server.getExec({ containerId: 'c', cmd, stdin, stdout: true, stderr: false, tty: false }).url;

  it('answers the handshake (RFC 6455 accept value) and speaks base64.channel.k8s.io', async () => {
    const reply = await exchange(Buffer.concat([Buffer.from(handshake(execUrl(['cat'], true), 'base64.channel.k8s.io')), frame(1, Buffer.from('0' + Buffer.from('hi there').toString('base64')))]), frame(8, Buffer.from([3, 232])));
    const text = reply.toString('latin1');
    expect(text).toMatch(/^HTTP\/1\.1 101 Switching Protocols\r\n/);
    expect(text).toContain('Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n');
    expect(text).toContain('Sec-WebSocket-Protocol: base64.channel.k8s.io\r\n');
    // Empty stdout and error messages first; without v5's close signal stdin ends only with the
    // connection: the client's close is answered with the same code.
    expect(frames(reply)).toEqual([
      [1, '1'],
      [1, '3'],
      [1, '1' + Buffer.from('hi there').toString('base64')],
      [8, '\x03\xe8'],
    ]);
  });

  it('ends stdin at the v5 close signal and sends the v4 status JSON, then a normal closure', async () => {
    const reply = await exchange(Buffer.concat([Buffer.from(handshake(execUrl(['cat'], true), 'v5.channel.k8s.io')), frame(2, Buffer.from('\x00abc')), frame(2, Buffer.from([255, 0]))]));
    expect(frames(reply)).toEqual([
      [2, '\x01'],
      [2, '\x03'],
      [2, '\x01abc'],
      [2, '\x03{"metadata":{},"status":"Success"}'],
      [8, '\x03\xe8'],
    ]);
  });

  it.each([
    ['an unmasked frame', frame(2, Buffer.from('\x00x'), false)],
    ['a frame claiming 2^40 bytes', Buffer.from([0x82, 0xff, 0, 0, 1, 0, 0, 0, 0, 0, 1, 2, 3, 4])],
    ['a continuation without a message', frame(0, Buffer.from('x'))],
    ['an unknown opcode', frame(5, Buffer.from('x'))],
  ])('closes the connection on %s with a protocol error (1002)', async (_name, bad) => {
    const reply = await exchange(Buffer.concat([Buffer.from(handshake(execUrl(['sleep'], true), 'v5.channel.k8s.io')), bad]));
    expect(frames(reply).pop()).toEqual([8, '\x03\xea']);
  });

  it('refuses port-forward over WebSocket and unknown channel protocols', async () => {
    const pf = server.getPortForward({ podSandboxId: 'p' }).url;
    expect((await exchange(Buffer.from(handshake(pf, 'SPDY/3.1+portforward.k8s.io')))).toString()).toMatch(/^HTTP\/1\.1 400 Bad Request[^]*port-forward over WebSocket is not supported/);
    expect((await exchange(Buffer.from(handshake(execUrl(['x']), 'v9.channel.k8s.io')))).toString()).toMatch(/^HTTP\/1\.1 403 Forbidden[^]*server accepts \[v5\.channel\.k8s\.io v4\.channel\.k8s\.io/);
  });
});
