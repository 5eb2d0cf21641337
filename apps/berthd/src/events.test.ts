import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, statSync, existsSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { Any, eventsService, ttrpcEvents } from '@berth/api';
import { NamespaceCreate, TaskExit, packAny } from '@berth/api/events';
import { createClient } from '@berth/grpc';
import { BERTHD_MAIN, CONTAINERD_PATH, CtrEvents, CtrEventsTarget as Target, EventSubscription, ReferenceContainerd, TestDaemon, ctrEventsDuring as eventsDuring, tempDir } from '@berth/testing';
import { TtrpcClient, createTtrpcClient } from '@berth/ttrpc';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Runs `publish` with an Any on stdin: `berthd ... publish ...` or `containerd ... publish ...`. */
function runPublish(binary: 'berthd' | 'containerd', args: string[], input: Buffer): Promise<{ code: number; stderr: string }> {
  const [cmd, argv] = binary === 'berthd' ? [process.execPath, [BERTHD_MAIN, ...args]] : [CONTAINERD_PATH!, args];
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, argv, { stdio: ['pipe', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (b: Buffer) => (stderr += b.toString()));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code: code ?? 1, stderr: stderr.replace(/^(berthd|containerd): /gm, '') }));
    child.stdin!.end(input);
  });
}

const taskExit = Buffer.from(Any.encode(packAny(TaskExit, { containerId: 'c1', id: 'c1', pid: 42, exitStatus: 137, exitedAt: new Date('2024-03-04T05:06:07.089Z') })).finish());

describe('events: ctr events, ttrpc Forward and berthd publish, side by side with containerd', () => {
  let berthd: TestDaemon;
  let ref: ReferenceContainerd;

  beforeAll(async () => {
    [berthd, ref] = await Promise.all([TestDaemon.start(), ReferenceContainerd.start()]);
  });

  afterAll(async () => {
    await Promise.all([berthd?.cleanup(), ref?.cleanup()]);
  });

  const both = async (fn: (t: Target, name: string) => Promise<string[]>) => {
    const [ours, theirs] = await Promise.all([fn(berthd, 'berthd'), fn(ref, 'containerd')]);
    return { ours, theirs };
  };

  let namespaceRun: { ours: string[]; theirs: string[] } | undefined;

  it('prints namespace events of every namespace as against containerd', async () => {
    namespaceRun = await both((t) =>
      eventsDuring(t, [], async () => {
        for (const [ns, args] of [
          ['default', ['namespaces', 'create', 'evfoo', 'a=b']],
          ['default', ['namespaces', 'label', 'evfoo', 'c=d']],
          ['other', ['namespaces', 'create', 'evbar']],
          ['other', ['namespaces', 'label', 'evfoo', 'a=']],
          ['default', ['namespaces', 'rm', 'evfoo']],
          ['default', ['namespaces', 'rm', 'evbar']],
        ] as const) {
          const res = await t.ctr(args, { namespace: ns });
          expect(res.code).toBe(0);
        }
      }),
    );
    const { ours, theirs } = namespaceRun;
    expect(theirs).toEqual([
      '<time> default /namespaces/create {"name":"evfoo","labels":{"a":"b"}}',
      // containerd puts the request's labels in the update event, not the result.
      '<time> default /namespaces/update {"name":"evfoo","labels":{"c":"d"}}',
      '<time> other /namespaces/create {"name":"evbar"}',
      '<time> other /namespaces/update {"name":"evfoo","labels":{"a":""}}',
      '<time> evfoo /namespaces/delete {"name":"evfoo"}',
      '<time> evbar /namespaces/delete {"name":"evbar"}',
    ]);
    // Topics, namespaces and order; the update payloads are compared in the next test.
    const shape = (lines: string[]) => lines.map((l) => (l.includes('/namespaces/update') ? l.replace(/ \{.*/, '') : l));
    expect(shape(ours)).toEqual(shape(theirs));
  });

  // containerd's update event carries the request's labels, not the resulting set.
  it('namespace update events carry the request labels as containerd does', () => {
    expect(namespaceRun?.ours).toEqual(namespaceRun?.theirs);
  });

  it('ctr events with filters prints only the matching events, as against containerd', async () => {
    const { ours, theirs } = await both((t) =>
      eventsDuring(t, ['topic~="/namespaces/(create|delete)",namespace==other', 'topic=="/namespaces/update"'], async () => {
        await t.ctr(['namespaces', 'create', 'evf1'], { namespace: 'default' });
        await t.ctr(['namespaces', 'create', 'evf2'], { namespace: 'other' });
        await t.ctr(['namespaces', 'label', 'evf2', 'k=v'], { namespace: 'other' });
        await t.ctr(['namespaces', 'rm', 'evf1', 'evf2']);
      }),
    );
    expect(theirs.map((l) => l.split(' ').slice(1, 3).join(' '))).toEqual(['other /namespaces/create', 'other /namespaces/update']);
    expect(ours).toEqual(theirs);
  });

  it('a shim-style ttrpc Forward reaches subscribers with its namespace and timestamp, as against containerd', async () => {
    const when = new Date('2024-03-04T05:06:08.5Z');
    const { ours, theirs } = await both((t) =>
      eventsDuring(t, [], async () => {
        const tc = await TtrpcClient.connect(`${t.address}.ttrpc`);
        try {
          const events = createTtrpcClient(ttrpcEvents.EventsService, tc, { namespace: 'shimns' });
          await events.forward({ envelope: { timestamp: when, namespace: 'shimns', topic: '/tasks/exit', event: Any.decode(taskExit) } });
        } finally {
          tc.close();
        }
      }).then((lines) => lines.map((l) => l.replace('<time>', 'T'))),
    );
    expect(theirs).toEqual(['T shimns /tasks/exit {"container_id":"c1","id":"c1","pid":42,"exit_status":137,"exited_at":"2024-03-04T05:06:07.089Z"}']);
    expect(ours).toEqual(theirs);
    // The timestamp itself survives: ctr prints it with Go's formatting.
    const sub = createClient(eventsService.EventsService, berthd.address);
    const ac = new AbortController();
    const got = (async () => {
      for await (const env of sub.subscribe({ filters: ['topic=="/tasks/oom"'] }, { signal: ac.signal })) return env;
    })();
    // Forwarded again every 200 ms until the subscription, live at some point, has one.
    let arrived = false;
    void got.then(
      () => (arrived = true),
      () => undefined,
    );
    const tc = await TtrpcClient.connect(`${berthd.address}.ttrpc`);
    for (let i = 0; i < 50 && !arrived; i++) {
      await createTtrpcClient(ttrpcEvents.EventsService, tc).forward({ envelope: { timestamp: when, namespace: 'shimns', topic: '/tasks/oom', event: Any.decode(taskExit) } });
      await sleep(200);
    }
    tc.close();
    expect(await got).toMatchObject({ timestamp: when, namespace: 'shimns', topic: '/tasks/oom' });
    ac.abort();
    sub.close();
  });

  it('berthd publish forwards an Any from stdin like containerd publish (both flag orders)', async () => {
    const { ours, theirs } = await both((t, name) =>
      eventsDuring(t, [], async () => {
        const binary = name as 'berthd' | 'containerd';
        expect(await runPublish(binary, ['--address', t.address, 'publish', '--topic', '/tasks/exit', '--namespace', 'pubns'], taskExit)).toEqual({ code: 0, stderr: '' });
        expect(await runPublish(binary, ['--address', t.address, 'publish', '--topic', '/tasks/oom', '--namespace', 'pubns'], Buffer.alloc(0))).toEqual({ code: 0, stderr: '' });
      }),
    );
    expect(ours).toEqual(theirs);
    // ctr warns about the empty Any and prints no event line for it.
    expect(ours.map((l) => l.split(' ').slice(1, 3).join(' '))).toEqual(['pubns /tasks/exit', 'level=warning msg="cannot']);
    const after = await eventsDuring(berthd, [], async () => {
      expect(await runPublish('berthd', ['publish', '--address', berthd.address, '--topic', '/tasks/start', '--namespace', 'pubns'], taskExit)).toEqual({ code: 0, stderr: '' });
    });
    expect(after.map((l) => l.split(' ').slice(1, 3).join(' '))).toEqual(['pubns /tasks/start']);
  });

  it.each([
    [['--topic', '', '--namespace', 'x']],
    [['--topic', '/x']],
    [['--topic', '/x', '--namespace', 'Bad!']],
    [['--topic', 'x', '--namespace', 'x']],
    [['--topic', '/x/', '--namespace', 'x']],
  ])('berthd publish %p fails as containerd publish does', async (args) => {
    const [ours, theirs] = await Promise.all([
      runPublish('berthd', ['--address', berthd.address, 'publish', ...args], taskExit),
      runPublish('containerd', ['--address', ref.address, 'publish', ...args], taskExit),
    ]);
    expect(theirs.code).toBe(1);
    expect(ours).toEqual(theirs);
  });

  it('berthd publish reports a daemon it cannot reach and a payload it cannot decode', async () => {
    const unreachable = await runPublish('berthd', ['--address', '/nonexistent/berthd.sock', 'publish', '--topic', '/x', '--namespace', 'x'], taskExit);
    expect(unreachable.code).toBe(1);
    expect(unreachable.stderr).toMatch(/^failed to dial "\/nonexistent\/berthd.sock": /);
    const garbage = await runPublish('berthd', ['--address', berthd.address, 'publish', '--topic', '/x', '--namespace', 'x'], Buffer.from('garbage'));
    expect(garbage.code).toBe(1);
    expect(garbage.stderr).toMatch(/^failed to read the event from stdin: /);
  });

  it('EventSubscription (@berth/testing) returns what was published, against both daemons', async () => {
    const { ours, theirs } = await both(async (t) => {
      const events = await EventSubscription.open(t.address, ['topic~="^/namespaces/"']);
      try {
        await t.ctr(['namespaces', 'create', 'evsub', 'k=v']);
        await t.ctr(['namespaces', 'rm', 'evsub']);
        return (await events.take()).map(({ timestamp, ...rest }) => JSON.stringify(rest));
      } finally {
        events.close();
      }
    });
    expect(theirs).toEqual([
      JSON.stringify({ namespace: 'default', topic: '/namespaces/create', typeUrl: 'containerd.events.NamespaceCreate', event: { name: 'evsub', labels: { k: 'v' } } }),
      JSON.stringify({ namespace: 'evsub', topic: '/namespaces/delete', typeUrl: 'containerd.events.NamespaceDelete', event: { name: 'evsub' } }),
    ]);
    expect(ours).toEqual(theirs);
  });

  it('keeps serving after garbage and oversized frames on the ttrpc socket', async () => {
    const garbage = connect(`${berthd.address}.ttrpc`);
    await new Promise((r) => garbage.once('connect', r));
    garbage.write('GET / HTTP/1.1\r\n\r\n');
    await new Promise((r) => garbage.once('close', r));
    const big = connect(`${berthd.address}.ttrpc`);
    await new Promise((r) => big.once('connect', r));
    const header = Buffer.alloc(10);
    header.writeUInt32BE(5 << 20, 0);
    header.writeUInt32BE(1, 4);
    header.writeUInt8(1, 8);
    big.write(header);
    big.write(Buffer.alloc(5 << 20));
    const reply = await new Promise<Buffer>((r) => big.once('data', r));
    big.destroy();
    expect(reply.readUInt8(8)).toBe(2);
    const tc = await TtrpcClient.connect(`${berthd.address}.ttrpc`);
    await createTtrpcClient(ttrpcEvents.EventsService, tc).forward({ envelope: { timestamp: new Date(), namespace: 'x', topic: '/ok', event: Any.decode(taskExit) } });
    tc.close();
    expect((await berthd.ctr(['version'])).code).toBe(0);
  });
});

describe('berthd ttrpc socket and shutdown', () => {
  it('serves <address>.ttrpc 0660 over a stale socket, ends subscriptions promptly on SIGTERM and removes the socket', async () => {
    const dir = tempDir('berthd-ttrpc-');
    const stale = join(dir.path, 'state', 'berthd.sock.ttrpc');
    mkdirSync(join(dir.path, 'state'), { recursive: true });
    // A socket file nobody listens on, as a killed daemon leaves behind.
    execFileSync('python3', ['-c', `import socket; socket.socket(socket.AF_UNIX).bind(${JSON.stringify(stale)})`]);
    const d = await TestDaemon.start({ dir: dir.path });
    try {
      expect(statSync(stale).mode & 0o777).toBe(0o660);
      const ev = new CtrEvents(d.address, []);
      const sub = createClient(eventsService.EventsService, d.address, { namespace: 'default' });
      await ev.waitFor((l) => l.some((x) => x.includes('/sync')), () => sub.publish({ topic: '/sync', event: packAny(NamespaceCreate, { name: 's' }) }));
      sub.close();
      const t0 = Date.now();
      expect(await d.stop()).toBe(0);
      expect(Date.now() - t0).toBeLessThan(3_000);
      await ev.exited;
      expect(existsSync(stale)).toBe(false);
      expect(existsSync(d.address)).toBe(false);
    } finally {
      await d.cleanup();
    }
  });
});
