import { execFile, spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { type ImageSpec, buildImage, busyboxImage, dir, file, pseudoRandom } from '@berth/fixtures';
import { RegistryClient, staticHosts } from '@berth/remotes';
import type { BuiltImage } from '@berth/fixtures';
import { TestDaemon, TestRegistry, cleanupShims, tempDir, tmuxRun, tmuxScreen, waitForScreen } from '@berth/testing';

const BERTH = join(__dirname, '../bin/berth');
const run = promisify(execFile);
const NO_GC = '[plugins."io.containerd.gc.v1.scheduler"]\n  schedule_delay = "1h"\n  startup_delay = "1h"\n  mutation_threshold = 1000000\n';

/** Five gzip layers of incompressible 128 KiB files. */
function fiveLayers(name: string): ImageSpec {
  const layers = [];
  for (let i = 0; i < 5; i++) layers.push({ entries: [dir(`l${i}`), file(`l${i}/data`, pseudoRandom(`berth-cli-${i}`, 128 << 10))] });
  return { name, layers };
}

async function seed(registry: TestRegistry, repo: string, tag: string, img: BuiltImage): Promise<void> {
  const client = new RegistryClient({ hosts: staticHosts({ scheme: 'http' }) });
  try {
    const ref = `${registry.host}/${repo}`;
    for (const d of [...img.layers, img.config]) await client.push(ref, d, img.blobs.get(d.digest)!);
    await client.push(`${ref}:${tag}`, img.manifest, img.blobs.get(img.manifest.digest)!);
  } finally {
    await client.close();
  }
}

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

describe('berth CLI against berthd', () => {
  let daemon: TestDaemon;
  let registry: TestRegistry;
  let busybox: string;
  let five: string;
  const logs = tempDir('berth-cli-logs-');

  /** `berth ARGS` that must succeed: a failure shows its exit code and stderr. */
  async function succeeds(args: string[], o: { input?: string; namespace?: string } = {}): Promise<Result> {
    const r = await berth(args, o);
    if (r.code !== 0) throw new Error(`berth ${args.join(' ')}: exit ${r.code}: ${r.stderr}`);
    return r;
  }

  /** Runs `berth ARGS` with the daemon's address; never throws, answers code and output (`progress` sees stdout so far as it comes). */
  function berth(args: string[], o: { input?: string; namespace?: string; progress?: (stdout: string) => void } = {}): Promise<Result> {
    return new Promise((resolve, reject) => {
      const child = spawn(process.execPath, [BERTH, ...args], {
        env: { ...process.env, BERTH_ADDRESS: daemon.address, CONTAINERD_NAMESPACE: o.namespace ?? 'cli', BERTH_LOG_DIR: logs.path },
        stdio: ['pipe', 'pipe', 'pipe'],
      });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => {
        stdout += d.toString();
        o.progress?.(stdout);
      });
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      child.on('error', reject);
      child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
      child.stdin.end(o.input ?? '');
    });
  }

  beforeAll(async () => {
    // The restart monitor looks every second (containerd's default is 10 s), for the --restart test.
    daemon = await TestDaemon.start({ config: `${NO_GC}[plugins."io.containerd.internal.v1.restart"]\n  interval = "1s"\n` });
    registry = await TestRegistry.start();
    await seed(registry, 'library/busybox', '1', await busyboxImage());
    await seed(registry, 'berth/five', '1', await buildImage(fiveLayers('five')));
    busybox = `${registry.host}/library/busybox:1`;
    five = `${registry.host}/berth/five:1`;
    const pulled = await berth(['pull', '--plain-http', busybox]);
    expect(pulled).toMatchObject({ code: 0 });
  }, 120_000);

  afterAll(async () => {
    await daemon?.stop();
    if (daemon) await cleanupShims(daemon.address, daemon.dir);
    await daemon?.cleanup();
    await registry?.stop();
    logs.remove();
  });

  it('pull to a pipe prints plain lines, one per layer and state, and a summary', async () => {
    const r = await berth(['pull', '--plain-http', five]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).not.toMatch(/\x1b/);
    const lines = r.stdout.trimEnd().split('\n');
    for (const state of ['complete', 'extracted']) expect(lines.filter((l) => l.startsWith('layer ') && l.includes(`: ${state}`))).toHaveLength(5);
    expect(lines.at(-1)).toMatch(new RegExp(`^pulled ${five.replace(/[.]/g, '\\.')}: 7 blobs, [0-9.]+[kM]B in [0-9.]+s .*5 layers extracted$`));
  }, 60_000);

  it("version: the quick bundle answers as the full CLI does, and loads neither the command tree, grpc-js nor Node's http2", async () => {
    // A preload that writes, at exit, the files the CommonJS loader loaded and Node's own http2 modules loaded.
    const loaded = join(logs.path, 'loaded.json');
    const preload = join(logs.path, 'preload.js');
    writeFileSync(
      preload,
      `process.on('exit', () => require('fs').writeFileSync(${JSON.stringify(loaded)}, JSON.stringify({ files: Object.keys(require.cache), http2: process.moduleLoadList.filter((m) => m.includes('http2')) })));\n`,
    );
    const env = { ...process.env, BERTH_ADDRESS: daemon.address };
    for (const args of [['version'], ['version', '--json'], ['-n', 'x', '--connect-timeout', '5', 'version']]) {
      const quick = await run(process.execPath, ['--require', preload, BERTH, ...args], { env });
      const { files, http2 } = JSON.parse(readFileSync(loaded, 'utf8')) as { files: string[]; http2: string[] };
      expect(files.filter((f) => f.includes('/dist/berth'))).toEqual([expect.stringMatching(/\/dist\/berth-quick\.js$/)]);
      expect(http2).toEqual([]);
      const full = await run(process.execPath, ['-e', `require(${JSON.stringify(join(__dirname, '../dist/berth.js'))}).main(${JSON.stringify(args)}).then((c) => (process.exitCode = c))`], { env });
      expect(quick).toEqual(full);
    }
    expect(JSON.parse((await berth(['version', '--json'])).stdout)).toEqual({
      client: { version: expect.any(String), node: process.version },
      server: { address: daemon.address, version: expect.stringMatching(/^2\.0\.0\+berth\./), revision: expect.any(String) },
    });
    // What the quick path does not take goes to the full CLI, which reports it.
    const bad = await berth(['--connect-timeout', 'soon', 'version']);
    expect(bad).toEqual({ code: 1, stdout: '', stderr: 'berth: invalid --connect-timeout "soon": want a number of 0 or more\n' });
    const down = await run(process.execPath, [BERTH, '-a', join(logs.path, 'none.sock'), '--connect-timeout', '0.1', 'version'], { env }).catch((e: { code: number; stdout: string }) => e);
    expect(down).toMatchObject({ code: 1, stdout: expect.stringMatching(/Error: +connection to .*none\.sock not ready after 100 ms/) });
  }, 60_000);

  it('every listing parses as JSON', async () => {
    const created = await berth(['run', '-d', '--name', 'listed', busybox, 'sleep', '60']);
    expect(created).toMatchObject({ code: 0, stdout: 'listed\n' });
    try {
      for (const args of [['ps', '--format', 'json'], ['ps', '-a', '--json'], ['images', '--json'], ['images', 'ls', '--format', 'json'], ['ns', 'ls', '--json'], ['version', '--json'], ['info', '--json']]) {
        const r = await berth(args);
        expect({ args, code: r.code, stderr: r.stderr }).toEqual({ args, code: 0, stderr: '' });
        expect(() => JSON.parse(r.stdout)).not.toThrow();
      }
      const ps = JSON.parse((await berth(['ps', '--json'])).stdout) as Array<{ ID: string; State: string; Image: string }>;
      expect(ps).toEqual([expect.objectContaining({ ID: 'listed', State: 'running', Image: busybox })]);
      expect((await berth(['ps', '--format', '{{.ID}} {{.State}}'])).stdout).toBe('listed running\n');
    } finally {
      await berth(['rm', '-f', 'listed']);
    }
  }, 60_000);

  it.each([
    ['the command exits 0', ['true'], 0],
    ["the command's own exit code", ['sh', '-c', 'exit 5'], 5],
    ['a command not found: 127', ['no-such-command'], 127],
    ['a command that cannot be invoked: 126', ['/etc/passwd'], 126],
  ])('run --rm: %s', async (_what, command, code) => {
    const r = await berth(['run', '--rm', busybox, ...command]);
    expect(r.code).toBe(code);
    expect((await berth(['ps', '-a', '-q'])).stdout).toBe('');
  }, 60_000);

  it('run of an image that is nowhere: 125 with the error', async () => {
    const r = await berth(['run', '--rm', '--plain-http', `${registry.host}/no/such:image`, 'true']);
    expect(r.code).toBe(125);
    expect(r.stderr).toMatch(/no\/such:image/);
  }, 60_000);

  it('run -i passes stdin; -e and -w reach the process', async () => {
    const r = await berth(['run', '--rm', '-i', '-e', 'GREETING=hi', '-w', '/tmp', busybox, 'sh', '-c', 'read x; echo "$GREETING $x $(pwd)"'], { input: 'there\n' });
    expect(r).toMatchObject({ code: 0, stdout: 'hi there /tmp\n' });
  }, 60_000);

  it('run -d, logs, exec, stop, start, rm', async () => {
    expect(await berth(['run', '-d', '--name', 'web', busybox, 'sh', '-c', 'echo one; echo two; sleep 600'])).toMatchObject({ code: 0, stdout: 'web\n' });
    try {
      for (let i = 0; i < 50 && !(await berth(['logs', 'web'])).stdout.includes('two'); i++) await new Promise((r) => setTimeout(r, 100));
      expect(await berth(['logs', 'web'])).toMatchObject({ code: 0, stdout: 'one\ntwo\n' });
      expect(await berth(['logs', '--tail', '1', 'web'])).toMatchObject({ code: 0, stdout: 'two\n' });
      expect(await berth(['exec', 'web', 'sh', '-c', 'echo in; exit 3'])).toMatchObject({ code: 3, stdout: 'in\n' });
      expect(await berth(['rm', 'web'])).toMatchObject({ code: 1, stderr: expect.stringMatching(/running/) });
      await succeeds(['stop', '-t', '1', 'web']);
      expect(JSON.parse((await berth(['ps', '-a', '--json'])).stdout)).toEqual([expect.objectContaining({ ID: 'web', State: 'stopped' })]);
      await succeeds(['start', 'web']);
      expect(JSON.parse((await berth(['ps', '--json'])).stdout)).toEqual([expect.objectContaining({ ID: 'web', State: 'running' })]);
    } finally {
      expect(await berth(['rm', '-f', 'web'])).toMatchObject({ code: 0, stdout: 'web\n' });
    }
    expect((await berth(['ps', '-a', '-q'])).stdout).toBe('');
  }, 90_000);

  it('stats: CPU, memory against the limit, pids of a running container', async () => {
    await succeeds(['run', '-d', '--name', 'busy', '-m', '64m', busybox, 'sh', '-c', 'while true; do :; done']);
    try {
      const r = await berth(['stats', '--json', 'busy']);
      expect(r).toMatchObject({ code: 0, stderr: '' });
      const [s] = JSON.parse(r.stdout) as Array<{ id: string; cpuPercent: number; memoryBytes: number; memoryLimit: number; pids: number }>;
      expect(s).toMatchObject({ id: 'busy', memoryLimit: 64 * 1024 * 1024, pids: 1 });
      expect(s!.cpuPercent).toBeGreaterThan(5);
      expect(s!.memoryBytes).toBeGreaterThan(0);
      // To a pipe one sample is the default; --no-stream asks for it anywhere.
      for (const args of [['stats'], ['stats', '--no-stream']]) {
        const table = await berth(args);
        expect(table).toMatchObject({ code: 0, stderr: '' });
        expect(table.stdout).toMatch(/^CONTAINER +CPU % +MEM USAGE \/ LIMIT +MEM % +NET I\/O +BLOCK I\/O +PIDS\nbusy +[0-9.]+% +[0-9.]+[kMG]?B \/ 67.1MB +[0-9.]+% .*\n$/);
      }
      expect(JSON.parse((await berth(['stats', '--no-stream', '--json', 'busy'])).stdout)).toEqual([expect.objectContaining({ id: 'busy', memoryLimit: 64 * 1024 * 1024 })]);
      expect(await berth(['stats', '--stream', 'nope'])).toMatchObject({ code: 1, stdout: '', stderr: 'berth: no such container: nope\n' });
    } finally {
      await berth(['rm', '-f', 'busy']);
    }
    await succeeds(['run', '-d', '--name', 'idle', busybox, 'sleep', '600']);
    try {
      await succeeds(['stop', '-t', '0', 'idle']);
      for (const args of [['stats', 'idle'], ['stats', '--stream', '--json', 'idle']]) expect(await berth(args)).toEqual({ code: 1, stdout: '', stderr: 'berth: container idle is not running\n' });
    } finally {
      await berth(['rm', '-f', 'idle']);
    }
  }, 60_000);

  it('stats --stream to a pipe: a JSON array a line (or a plain table) each second, until the named container exits', async () => {
    await succeeds(['run', '-d', '--name', 'brief', busybox, 'sleep', '600']);
    try {
      // A reader that goes away (head) ends the stream too, with exit code 0, before the container does.
      const env = { ...process.env, BERTH_ADDRESS: daemon.address, CONTAINERD_NAMESPACE: 'cli' };
      const headed = run('bash', ['-c', `${process.execPath} ${BERTH} stats --stream --json brief | head -n 1; echo "berth exited \${PIPESTATUS[0]}"`], { env });
      // The container exits (killed) only once both streams have printed two samples and the
      // piped one has ended: that one ended on its reader alone.
      const until = (enough: (out: string) => boolean) => {
        let seen!: () => void;
        const reached = new Promise<void>((r) => (seen = r));
        return { reached, progress: (out: string) => enough(out) && seen() };
      };
      const twoLines = until((out) => out.split('\n').length > 2);
      const twoTables = until((out) => (out.match(/^CONTAINER +CPU %/gm) ?? []).length >= 2);
      const streams = Promise.all([berth(['stats', '--stream', '--json', 'brief'], { progress: twoLines.progress }), berth(['stats', '--stream', 'brief'], { progress: twoTables.progress })]);
      await Promise.all([twoLines.reached, twoTables.reached, headed]);
      await succeeds(['kill', '-s', '9', 'brief']);
      const [json, tables] = await streams;
      const [line, exit] = (await headed).stdout.trimEnd().split('\n');
      expect(JSON.parse(line!)).toEqual([expect.objectContaining({ id: 'brief' })]);
      expect(exit).toBe('berth exited 0');
      for (const r of [json, tables]) expect(r).toMatchObject({ code: 0, stderr: 'none of the named containers is running any more\n' });
      const lines = json.stdout.trimEnd().split('\n');
      expect(lines.length).toBeGreaterThanOrEqual(2);
      // The last sample may be taken as `sleep` is killed, before its task is seen stopped: 0 pids
      // then (a loaded CI run saw it), which is what the cgroup held at that moment.
      lines.forEach((l, i) => expect(JSON.parse(l)).toEqual([expect.objectContaining({ id: 'brief', cpuPercent: expect.any(Number), pids: i < lines.length - 1 ? 1 : expect.any(Number) })]));
      expect([0, 1]).toContain(JSON.parse(lines[lines.length - 1])[0].pids);
      expect(tables.stdout).not.toMatch(/\x1b/);
      expect(tables.stdout.match(/^CONTAINER +CPU %/gm)!.length).toBeGreaterThanOrEqual(2);
      expect(tables.stdout).toMatch(/^brief +[0-9.]+% /m);
    } finally {
      await berth(['rm', '-f', 'brief']);
    }
  }, 30_000);

  it('images tag, inspect and prune; kill -s, top, inspect of a container; system prune', async () => {
    const ns = 'cli-more';
    await succeeds(['pull', '--plain-http', busybox], { namespace: ns });
    expect(await berth(['images', 'tag', busybox, 'local/copy:1', 'local/untagged'], { namespace: ns })).toMatchObject({ code: 0, stdout: 'local/copy:1\nlocal/untagged\n' });
    const [orig, copy] = JSON.parse((await berth(['images', 'inspect', busybox, 'local/copy:1'], { namespace: ns })).stdout) as Array<{ target: { digest: string } }>;
    expect(copy!.target.digest).toBe(orig!.target.digest);
    expect(await berth(['images', 'tag', busybox, 'local/copy:1'], { namespace: ns })).toMatchObject({ code: 1, stderr: expect.stringMatching(/already exists/) });
    // prune without -a takes only names without a tag; with -a every image no container uses.
    expect(await berth(['images', 'prune'], { namespace: ns })).toMatchObject({ code: 0, stdout: 'deleted local/untagged\n' });
    await succeeds(['run', '-d', '--name', 'sleeper', busybox, 'sleep', '600'], { namespace: ns });
    const top = await berth(['top', 'sleeper'], { namespace: ns });
    expect(top.stdout).toMatch(/^\s*UID\s+PID\s+PPID/);
    expect(top.stdout).toMatch(/sleep 600/);
    const [info] = JSON.parse((await berth(['inspect', 'sleeper'], { namespace: ns })).stdout) as Array<{ ID: string; State: string; Spec: { process: { args: string[] } } }>;
    expect(info).toMatchObject({ ID: 'sleeper', State: 'running', Spec: { process: { args: ['sleep', '600'] } } });
    // sleep as PID 1 ignores TERM (no handler): the kernel spares init; a number works as well as a name.
    await succeeds(['kill', '-s', '9', 'sleeper'], { namespace: ns });
    for (let i = 0; i < 50 && (await berth(['ps', '-q'], { namespace: ns })).stdout !== ''; i++) await new Promise((r) => setTimeout(r, 100));
    expect(JSON.parse((await berth(['ps', '-a', '--json'], { namespace: ns })).stdout)).toEqual([expect.objectContaining({ ID: 'sleeper', State: 'stopped', ExitCode: 137 })]);
    expect(await berth(['images', 'prune', '-a'], { namespace: ns })).toMatchObject({ code: 0, stdout: 'deleted local/copy:1\n' });
    expect(await berth(['system', 'prune'], { namespace: ns })).toMatchObject({ code: 1, stderr: expect.stringMatching(/--force/) });
    expect(await berth(['system', 'prune', '--force', '--all'], { namespace: ns })).toMatchObject({ code: 0, stdout: expect.stringMatching(/^removed 1 containers, 1 images; collected \d+ blobs and \d+ snapshots$/m) });
    expect((await berth(['ps', '-a', '-q'], { namespace: ns })).stdout).toBe('');
    expect((await berth(['images', '-q'], { namespace: ns })).stdout).toBe('');
  }, 90_000);

  it('run -d --restart always: the restart monitor starts it again, into the same log, until berth stop', async () => {
    const ns = 'cli-restart';
    await succeeds(['run', '-d', '--restart', 'always', '--name', 'again', busybox, 'sh', '-c', 'echo started; sleep 0.3'], { namespace: ns });
    const starts = async () => ((await berth(['logs', 'again'], { namespace: ns })).stdout.match(/^started$/gm) ?? []).length;
    for (let i = 0; i < 100 && (await starts()) < 3; i++) await new Promise((r) => setTimeout(r, 200));
    expect(await starts()).toBeGreaterThanOrEqual(3);
    await succeeds(['stop', '-t', '1', 'again'], { namespace: ns });
    // A monitor pass that read the labels before the stop may still start the task once more
    // (it acts on what it read); the pass after it stops it. Counted once those two have run.
    await new Promise((r) => setTimeout(r, 2500));
    const after = await starts();
    await new Promise((r) => setTimeout(r, 2500));
    expect(await starts()).toBe(after);
    await succeeds(['rm', '-f', 'again'], { namespace: ns });
  }, 60_000);

  it('logs -f follows the output until the container exits', async () => {
    await succeeds(['run', '-d', '--name', 'counter', busybox, 'sh', '-c', 'for i in 1 2 3 4; do echo line $i; sleep 0.3; done']);
    try {
      expect(await berth(['logs', '-f', 'counter'])).toMatchObject({ code: 0, stdout: 'line 1\nline 2\nline 3\nline 4\n' });
    } finally {
      await berth(['rm', '-f', 'counter']);
    }
  }, 30_000);

  it('events --json prints one object a line as they happen', async () => {
    const child = spawn(process.execPath, [BERTH, 'events', '--json', '-f', 'topic=="/namespaces/create"'], { env: { ...process.env, BERTH_ADDRESS: daemon.address } });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((r) => child.on('close', r));
    try {
      // The subscription is live once berthd answered it; create namespaces until one is seen.
      for (let i = 0; i < 50 && !out.includes('\n'); i++) {
        await berth(['ns', 'create', `evt-${i}`]);
        await new Promise((r) => setTimeout(r, 100));
      }
      const first = JSON.parse(out.split('\n')[0]!) as { namespace: string; topic: string; type: string; event: { name: string } };
      expect(first).toMatchObject({ topic: '/namespaces/create', type: 'containerd.events.NamespaceCreate', event: { name: expect.stringMatching(/^evt-\d+$/) } });
    } finally {
      child.kill('SIGINT');
      expect(await exited).toBe(0);
    }
  }, 30_000);

  it('bad input: a clear error and a non-zero code, never a stack', async () => {
    for (const args of [['rm', 'nope'], ['images', 'inspect', 'nope:1'], ['run', '-v', 'relative:/x', busybox, 'true'], ['run', '--restart', 'sometimes', '-d', busybox], ['completion', 'fish'], ['ns', 'create', 'Bad Name'], ['run', '--cpus', 'lots', busybox, 'true'], ['stop', '-t', 'soon', 'listed'], ['logs', '--tail', 'x', 'nope']]) {
      const r = await berth(args);
      expect({ args, failed: r.code !== 0 }).toEqual({ args, failed: true });
      expect(r.stderr).toMatch(/^(berth: |error: )/);
      expect(r.stderr).not.toMatch(/\n\s+at /);
    }
  }, 60_000);

  it('completion scripts for bash and zsh are valid shell and know the commands', async () => {
    const bash = await berth(['completion', 'bash']);
    expect(bash.code).toBe(0);
    await run('bash', ['-n', '-c', bash.stdout]);
    const completed = await run('bash', ['-c', `${bash.stdout}\nCOMP_WORDS=(berth images l); COMP_CWORD=2; _berth_complete; echo "\${COMPREPLY[@]}"`]);
    expect(completed.stdout.trim().split(' ')).toEqual(['ls', 'list']);
    const zsh = await berth(['completion', 'zsh']);
    expect(zsh.stdout).toMatch(/^#compdef berth/);
  }, 30_000);

  describe("Berth's own services: ns rm --force, system df, gc explain", () => {
    const ok = async (args: string[], namespace?: string) => {
      const r = await daemon.ctr(args, namespace ? { namespace } : {});
      expect({ args, code: r.code, stderr: r.stderr }).toEqual({ args, code: 0, stderr: '' });
      return r.stdout;
    };

    it('ns rm --force removes a namespace with a running task, images and snapshots; another namespace sharing its blobs keeps working', async () => {
      await succeeds(['pull', '--plain-http', busybox], { namespace: 'doomed' });
      await succeeds(['run', '-d', '--name', 'sleeper', busybox, 'sleep', '600'], { namespace: 'doomed' });
      expect(await berth(['ns', 'rm', 'doomed'])).toMatchObject({ code: 1, stderr: expect.stringMatching(/not empty|must be empty|FailedPrecondition|failed precondition/i) });
      const r = await berth(['ns', 'rm', '--force', 'doomed']);
      expect(r).toMatchObject({ code: 0, stdout: expect.stringMatching(/^doomed: removed 1 tasks, 1 containers, 1 images/) });
      expect(await ok(['namespaces', 'ls', '-q'])).not.toMatch(/^doomed$/m);
      for (const what of [['images', 'ls', '-q'], ['containers', 'ls', '-q'], ['tasks', 'ls'], ['snapshots', 'ls'], ['content', 'ls', '-q']]) {
        expect((await ok(what, 'doomed')).split('\n').filter((l) => l.trim() !== '' && !/^(TASK|KEY|DIGEST)\s/.test(l))).toEqual([]);
      }
      // The namespace the tests run in still has the image, and runs it.
      expect((await berth(['images', '-q'])).stdout).toContain(busybox);
      await succeeds(['gc']);
      expect(await berth(['run', '--rm', busybox, 'echo', 'still here'])).toMatchObject({ code: 0, stdout: 'still here\n' });
    }, 120_000);

    it('gc explain names image, manifest and layer for a kept blob, and says unreferenced for a collectable one', async () => {
      const image = JSON.parse((await berth(['images', 'inspect', busybox])).stdout)[0] as { target: { digest: string } };
      const manifest = JSON.parse(await ok(['content', 'get', image.target.digest], 'cli')) as { layers: Array<{ digest: string }> };
      const layer = manifest.layers[0]!.digest;
      const kept = await berth(['gc', 'explain', layer]);
      expect(kept.code).toBe(0);
      expect(kept.stdout).toContain(`image ${busybox}`);
      expect(kept.stdout).toContain(`blob ${image.target.digest} (target)`);
      expect(kept.stdout).toMatch(new RegExp(`blob ${layer} \\(label containerd.io/gc.ref.content`));
      const data = Buffer.from(`nobody keeps me ${process.pid}\n`);
      const { createHash } = await import('node:crypto');
      const digest = `sha256:${createHash('sha256').update(data).digest('hex')}`;
      const ingest = await daemon.ctr(['content', 'ingest', 'loose'], { namespace: 'cli', input: data });
      expect(ingest.code).toBe(0);
      expect(await berth(['gc', 'explain', digest])).toMatchObject({ code: 0, stdout: `${digest}: unreferenced; the next garbage collection removes it\n` });
      expect(await berth(['gc', 'explain', 'not-a-ref'])).toMatchObject({ code: 1, stderr: expect.stringMatching(/neither a digest/) });
    }, 60_000);

    it('system df: per namespace rows, and totals within 1% of du of the snapshot and content directories', async () => {
      await succeeds(['gc']);
      const table = await berth(['system', 'df']);
      expect(table.stdout).toMatch(/^NAMESPACE +IMAGES +CONTAINERS +SNAPSHOTS +CONTENT +SHARED +EXCLUSIVE$/m);
      expect(table.stdout).toMatch(/^cli +\d+ +\d+ /m);
      const usage = JSON.parse((await berth(['system', 'df', '--json'])).stdout) as { snapshots: { bytes: number }; content: { bytes: number } };
      const { execFileSync } = await import('node:child_process');
      const { existsSync, readdirSync } = await import('node:fs');
      const du = (paths: string[]) => Number(/^(\d+)\s+total$/m.exec(execFileSync('du', ['-s', '-B1', '-c', ...paths]).toString())![1]);
      const overlay = join(daemon.root, 'io.containerd.snapshotter.v1.overlayfs', 'snapshots');
      const blobs = join(daemon.root, 'io.containerd.content.v1.content', 'blobs', 'sha256');
      const layers = readdirSync(overlay).map((id) => join(overlay, id, 'fs')).filter((p) => existsSync(p));
      expect(Math.abs(usage.snapshots.bytes - du(layers)) / du(layers)).toBeLessThan(0.01);
      const files = readdirSync(blobs).map((f) => join(blobs, f));
      expect(Math.abs(usage.content.bytes - du(files)) / du(files)).toBeLessThan(0.01);
    }, 60_000);
  });

  describe('on a terminal (tmux)', () => {
    const session = `berth-cli-${process.pid}`;
    const tmux = (...args: string[]) => tmuxRun(session, ...args);
    const screen = () => tmuxScreen(session);
    const waitFor = (re: RegExp, timeoutMs = 30_000) => waitForScreen(session, re, timeoutMs);

    // A fresh tmux server (its own socket) for each test, so one test's leftovers never type into the next.
    beforeEach(async () => {
      await tmux('new-session', '-d', '-s', session, '-x', '100', '-y', '30', 'sh');
    });
    afterEach(async () => {
      await tmux('kill-server').catch(() => undefined);
    });

    it('run -it --rm sh: a resize, commands, exit 5', async () => {
      const env = `BERTH_ADDRESS=${daemon.address} CONTAINERD_NAMESPACE=cli`;
      await tmux('send-keys', '-t', session, `clear; ${env} ${process.execPath} ${BERTH} run -it --rm ${busybox} sh; echo "berth exited $?"`, 'Enter');
      await waitFor(/^\/ # ?$/m);
      await tmux('send-keys', '-t', session, 'stty size', 'Enter');
      await waitFor(/^30 100$/m);
      await tmux('resize-window', '-t', session, '-x', '120', '-y', '40');
      await tmux('send-keys', '-t', session, 'stty size; echo $((6 * 7))', 'Enter');
      const afterResize = await waitFor(/^42$/m);
      expect(afterResize).toMatch(/^40 120$/m);
      await tmux('send-keys', '-t', session, 'exit 5', 'Enter');
      await waitFor(/^berth exited 5$/m);
      expect((await berth(['ps', '-a', '-q'])).stdout).toBe('');
    }, 60_000);

    it('stats on a terminal redraws one table in place, shows a container started meanwhile, and ends on C-c with the cursor back', async () => {
      // The tests' namespace, where nothing else runs between tests: the table shows only these two.
      const env = `BERTH_ADDRESS=${daemon.address} CONTAINERD_NAMESPACE=cli`;
      const b = (args: string[]) => berth(args);
      // Memory that grows about 1 MB a second (tmpfs pages count to the container), so every frame differs.
      expect(await b(['run', '-d', '--name', 'grow', busybox, 'sh', '-c', 'i=0; while true; do i=$((i+1)); head -c 200000 /dev/urandom > /dev/shm/f$i; sleep 0.2; done'])).toMatchObject({ code: 0 });
      try {
        await tmux('send-keys', '-t', session, `clear; ${env} ${process.execPath} ${BERTH} stats; echo "berth exited $?"`, 'Enter');
        const headers = (text: string) => text.match(/^CONTAINER +CPU % +MEM USAGE/gm)?.length ?? 0;
        const row = (text: string) => /^grow +.*$/m.exec(text)?.[0];
        const first = await waitFor(/^grow +[0-9.]+% /m);
        expect(await tmux('display-message', '-p', '-t', session, '#{cursor_flag}')).toMatchObject({ stdout: '0\n' });
        await new Promise((r) => setTimeout(r, 2200));
        const later = await screen();
        expect([headers(first), headers(later)]).toEqual([1, 1]);
        expect(row(later)).toBeDefined();
        expect(row(later)).not.toBe(row(first));
        expect(await b(['run', '-d', '--name', 'late', busybox, 'sleep', '600'])).toMatchObject({ code: 0 });
        const both = await waitFor(/^late +[0-9.]+% /m, 10_000);
        expect(headers(both)).toBe(1);
        expect(row(both)).toBeDefined();
        await tmux('send-keys', '-t', session, 'C-c');
        // The terminal echoes ^C on the line after the table, where the cursor waits.
        const end = await waitFor(/^(\^C)?berth exited 0$/m, 10_000);
        expect(headers(end)).toBe(1);
        expect(end).toMatch(/^late +[0-9.]+% .*\n(\^C)?berth exited 0$/m);
        expect(await tmux('display-message', '-p', '-t', session, '#{cursor_flag}')).toMatchObject({ stdout: '1\n' });
      } finally {
        expect(await b(['rm', '-f', 'grow', 'late'])).toMatchObject({ code: 0 });
      }
    }, 60_000);

    it('pull on a terminal draws progress bars and ends with the summary', async () => {
      const env = `BERTH_ADDRESS=${daemon.address} CONTAINERD_NAMESPACE=cli-tty`;
      await tmux('send-keys', '-t', session, `clear; ${env} ${process.execPath} ${BERTH} pull --plain-http ${five}; echo "berth exited $?"`, 'Enter');
      const text = await waitFor(/^berth exited 0$/m);
      expect(text).toMatch(/pulled total +\|[█░]+\|/);
      expect(text).toMatch(new RegExp(`^pulled ${five.replace(/[.]/g, '\\.')}: 7 blobs`, 'm'));
    }, 60_000);
  });
});
