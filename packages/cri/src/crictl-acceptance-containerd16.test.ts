/**
 * Acceptance, side by side with Debian's containerd 1.6.20: the same steps against both daemons,
 * compared.
 * - A real terminal (tmux): `crictl exec -it <ctr> sh` (commands, their output and the prompt, a
 *   resize seen by `stty size`, `exit 3`), and `crictl attach -it` to a tty+stdin container.
 * - Invalid input sent straight through a gRPC client (crictl checks some of it first): the same
 *   gRPC codes and messages, and nothing of berthd's left on the host after each failure.
 * Where the two differ on purpose the test says so: Stop of an unknown id (OK in berthd, as CRI
 * asks) and CreateContainer without a sandbox config (containerd 1.6.20 panics).
 */
import { execFile } from 'node:child_process';
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ContainerConfig, CreateContainerRequest, PodSandboxConfig, RunPodSandboxRequest, RuntimeServiceService } from '@berth/api/cri';
import { crictlArgv } from '@berth/cri-streaming/test-support';
import { type Client, createClient } from '@berth/grpc';
import { CONTAINERD_PATH, CRICTL_PATH, runCrictl, tempDir, tmuxRun, tmuxScreen, waitForScreen } from '@berth/testing';
import { BUSYBOX as IMAGE, CriTestBed, type CriDaemon as Daemon } from './test-bed';
import { json } from './test-support';

jest.setTimeout(180_000);

const describeIf = CONTAINERD_PATH ? describe : describe.skip;
const run = promisify(execFile);
const shellQuote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

const bed = new CriTestBed({
  name: 'accept-side',
  containerd: '1.6',
  pullBusybox: true,
  pod: { prefix: 'accept', hostname: (name) => name, logs: 'own', makeLogDir: true },
  container: (name) => ({ log_path: `${name}.log`, working_dir: '/' }),
});
const daemons = () => bed.daemons();
const ok = (d: Daemon, ...args: string[]) => bed.okAt(d.address, ...args);
const podConfig = (over: Record<string, unknown> = {}) => bed.pod(over).path;
const containerConfig = (name: string, over: Record<string, unknown> = {}) => bed.containerConfig(name, over);
const removeAll = (address: string) => bed.removePods(address);

/** What a failed call may leave on the host, per daemon: compared before and after. */
async function hostState(d: Daemon) {
  // The containerd-level objects too: records, snapshots, leases, the CRI plugin's dirs.
  const ctr = async (...args: string[]) => (await d.ctr(['-n', 'k8s.io', ...args])).stdout;
  const criDirs = (root: string) => ['sandboxes', 'containers'].flatMap((k) => (existsSync(join(root, 'io.containerd.grpc.v1.cri', k)) ? readdirSync(join(root, 'io.containerd.grpc.v1.cri', k)) : []));
  return {
    records: await ctr('containers', 'ls', '-q'),
    snapshots: (await ctr('snapshots', 'ls')).split('\n').map((l) => l.split(/\s+/)[0]).sort(),
    leases: await ctr('leases', 'ls', '-q'),
    criDirs: [...criDirs(d.root), ...criDirs(d.state)].sort(),
    ...bed.hostState(['netns', 'veths', 'allocations', 'iptables', 'cgroups', 'mounts'], d),
    pods: (await runCrictl(d.address, ['pods', '-q'])).stdout,
    containers: (await runCrictl(d.address, ['ps', '-a', '-q'])).stdout,
  };
}

/**
 * Expects berthd's host state back at `before`. The two daemons share the bridge, the host-local
 * directory and the cgroup parent, and containerd finishes some cleanup after its calls return
 * (a shim's exit, its cgroups): the state is polled a little before it is compared.
 */
async function expectHostState(d: Daemon, before: Awaited<ReturnType<typeof hostState>>): Promise<void> {
  let after = await hostState(d);
  for (let i = 0; i < 25 && JSON.stringify(after) !== JSON.stringify(before); i++) {
    await new Promise((r) => setTimeout(r, 200));
    after = await hostState(d);
  }
  expect(after).toEqual(before);
}

describeIf('acceptance: berthd and containerd 1.6.20 side by side', () => {
  beforeAll(() => bed.start());
  afterAll(() => bed.cleanup());

  describe('on a real terminal (tmux)', () => {
    // crictl's empty config file (crictlArgv writes it) and HOME.
    let crictlDir: ReturnType<typeof tempDir>;
    beforeAll(() => {
      crictlDir = tempDir('berth-cri-accept-tty-');
    });
    let n = 0;
    let session = '';
    const tmux = (...args: string[]) => tmuxRun(session, ...args);
    /** The lines of a screen with trailing spaces and blanks dropped. */
    const lines = (text: string) => text.split('\n').map((l) => l.trimEnd()).filter((l, i, all) => l !== '' || all.slice(i).some((x) => x !== ''));
    const screen = () => tmuxScreen(session);
    const waitFor = (re: RegExp, timeoutMs = 20_000) => waitForScreen(session, re, timeoutMs);
    /** Types a line and waits until the screen shows `until` (which should end with the next prompt, so that the screen is complete). */
    async function type(line: string, until: RegExp): Promise<string> {
      await tmux('send-keys', '-t', session, '-l', line);
      await tmux('send-keys', '-t', session, 'Enter');
      return waitFor(until);
    }
    /**
     * Clears the screen with busybox sh's ^L (no command runs, so nothing typed next is lost to
     * its line editor's setup) and waits for the bare prompt.
     */
    async function clearScreen(): Promise<void> {
      await tmux('send-keys', '-t', session, 'C-l');
      const until = Date.now() + 20_000;
      while (Date.now() < until) {
        if (lines(await screen()).join('\n') === '/ #') return;
        await new Promise((r) => setTimeout(r, 50));
      }
      throw new Error(`the screen was not cleared:\n${await screen()}`);
    }
    /** Waits until the pane's terminal is in raw mode (crictl's -t does that before it streams). */
    async function rawTerminal(): Promise<void> {
      const tty = (await tmux('display-message', '-p', '-t', session, '#{pane_tty}')).stdout.trim();
      const until = Date.now() + 20_000;
      while (Date.now() < until) {
        if (/(^|\s)-icanon(\s|$)/.test((await run('stty', ['-F', tty, '-a'])).stdout)) return;
        await new Promise((r) => setTimeout(r, 50));
      }
      throw new Error(`${tty} never became raw:\n${await screen()}`);
    }
    /** Starts crictl on the terminal, after `clear`, so that the screen holds only its session. */
    async function startCrictl(d: Daemon, args: string[]): Promise<void> {
      const argv = [CRICTL_PATH!, ...crictlArgv(d.address, crictlDir.path, args)].map(shellQuote).join(' ');
      await tmux('send-keys', '-t', session, '-l', `clear; ${argv}; echo "crictl exited $?"`);
      await tmux('send-keys', '-t', session, 'Enter');
    }

    beforeEach(async () => {
      session = `berth-cri-accept-${process.pid}-${++n}`;
      await tmux('new-session', '-d', '-s', session, '-x', '100', '-y', '30', 'sh');
      await waitFor(/[$#]$/m);
    });
    afterEach(async () => {
      await tmux('kill-server').catch(() => undefined);
      // kill-server leaves its socket file behind.
      rmSync(join(process.env.TMUX_TMPDIR ?? '/tmp', `tmux-${process.getuid!()}`, session), { force: true });
    });
    afterAll(() => crictlDir?.remove());

    it('exec -it sh: a prompt, commands and their output, the size and a resize, exit 3: the same screens on both', async () => {
      const screens: Record<string, string[][]> = {};
      for (const d of daemons()) {
        const pod = podConfig();
        const podId = (await ok(d, 'runp', pod)).trim();
        const id = (await ok(d, 'create', '--no-pull', podId, containerConfig('shell', { command: ['sleep', '100000'] }), pod)).trim();
        await ok(d, 'start', id);
        await tmux('resize-window', '-t', session, '-x', '100', '-y', '30');
        await startCrictl(d, ['exec', '-it', id, 'sh']);
        const got: string[][] = [];
        // busybox sh's prompt for root in /.
        got.push(lines(await waitFor(/^\/ #$/m)));
        await clearScreen();
        got.push(lines(await type('echo $((6 * 7)); tty; stty size', /^30 100\n\/ #$/m)));
        expect(got.at(-1)!.join('\n')).toMatch(/^42\n\/dev\/pts\/\d+\n30 100\n\/ #$/m);
        await tmux('resize-window', '-t', session, '-x', '120', '-y', '40');
        // tmux -> SIGWINCH to crictl -> the resize stream -> the exec's pty: asked until it shows.
        let after = '';
        for (let i = 0; i < 20 && !/^40 120$/m.test(after); i++) {
          await clearScreen();
          after = await type('stty size; echo $((6 * 7))', /^42\n\/ #$/m);
          if (!/^40 120$/m.test(after)) await new Promise((r) => setTimeout(r, 200));
        }
        got.push(lines(after));
        expect(after).toMatch(/^40 120$/m);
        got.push(lines(await type('exit 3', /^crictl exited \d+\n#$/m)));
        // Masked: pty numbers, the id, and crictl's log prefix, which counts seconds since it started.
        screens[d.name] = got.map((s) => s.map((l) => l.replace(/\/dev\/pts\/\d+/, '/dev/pts/N').replace(id, '<id>').replace(/ERRO\[\d{4}\]/, 'ERRO[....]')));
        await ok(d, 'rmp', '-f', podId);
      }
      expect(screens.berthd).toEqual(screens.containerd);
      // crictl 1.37 reports a non-zero exit code in words and exits 1.
      const end = screens.berthd.at(-1)!;
      expect(end.join('')).toContain('ERRO[....] execing command in container <id>: command terminated with exit code 3');
      expect(end).toContain('crictl exited 1');
    });

    it('attach -it to a tty+stdin container: a command and its answer, then exit ends the session: the same screens on both', async () => {
      const screens: Record<string, string[][]> = {};
      for (const d of daemons()) {
        const pod = podConfig();
        const podId = (await ok(d, 'runp', pod)).trim();
        const id = (await ok(d, 'create', '--no-pull', podId, containerConfig('tty', { command: ['sh'], tty: true, stdin: true, stdin_once: true }), pod)).trim();
        await ok(d, 'start', id);
        await startCrictl(d, ['attach', '-it', id]);
        const got: string[][] = [];
        // Nothing is redrawn on attach: a line typed gets its answer and a fresh prompt. Typed
        // only once crictl has made the terminal raw, or the pane's own line discipline would
        // echo it too.
        await rawTerminal();
        got.push(lines(await type('echo attached-$((1 + 2)); stty size', /^30 100\n\/ #$/m)));
        expect(got.at(-1)).toContain('attached-3');
        // The terminal is raw: ^C goes to the container's shell, and the session goes on.
        await tmux('send-keys', '-t', session, 'C-c');
        await waitFor(/^\/ # \^C\n\/ #$/m);
        got.push(lines(await type('echo still-$((2 + 2))', /^still-4\n\/ #$/m)));
        got.push(lines(await type('exit 4', /^crictl exited \d+\n#$/m)));
        screens[d.name] = got;
        // The daemons learn of the exit from the task's event, a moment after crictl has ended.
        let st = json(await ok(d, 'inspect', id)).status;
        for (let i = 0; i < 50 && st.state !== 'CONTAINER_EXITED'; i++) {
          await new Promise((r) => setTimeout(r, 100));
          st = json(await ok(d, 'inspect', id)).status;
        }
        screens[d.name].push([st.state, String(st.exitCode)]);
        await ok(d, 'rmp', '-f', podId);
      }
      expect(screens.berthd).toEqual(screens.containerd);
      // crictl attach has no detach keys: it ends when the container's shell does, and exits 0
      // whatever the container's exit code (4 here, in the status).
      expect(screens.berthd[2]).toContain('crictl exited 0');
      expect(screens.berthd[3]).toEqual(['CONTAINER_EXITED', '4']);
    });
  });
  describe('invalid input through a gRPC client: the same codes and messages, nothing left behind', () => {
    type Runtime = Client<typeof RuntimeServiceService>;
    const clients = new Map<string, Runtime>();
    const runtime = (d: Daemon) => {
      if (!clients.has(d.name)) clients.set(d.name, createClient(RuntimeServiceService, d.address));
      return clients.get(d.name)!;
    };
    afterAll(() => {
      for (const c of clients.values()) c.close();
    });

    /** A call's outcome: OK (`then` runs on its reply), or the status code and message with what differs by nature masked. */
    async function outcome<T>(call: Promise<T>, then: (reply: T) => Promise<unknown>): Promise<string> {
      let reply: T;
      try {
        reply = await call;
      } catch (err) {
        const status = (err as { cause?: { code?: number; details?: string } }).cause;
        if (typeof status?.code !== 'number') throw err;
        return `code ${status.code}: ${(status.details ?? '')
          .replace(/[0-9a-f]{64}/g, '<id>')
          // portmap's chain (a hash of the sandbox id) and the pod's address.
          .replace(/CNI-DN-[0-9a-f]+/g, 'CNI-DN-<hash>')
          .replace(/\d+\.\d+\.\d+\.\d+/g, '<ip>')}`;
      }
      await then(reply);
      return 'OK';
    }

    const podBase = () => ({
      metadata: { name: `bad-${++bed.seq}`, namespace: 'berth-test', uid: `uid-${process.pid}-${bed.seq}`, attempt: 0 },
      hostname: 'bad',
      logDirectory: join(bed.world.dir, 'logs'),
      linux: { cgroupParent: bed.cgroupParent },
    });

    it.each<[string, (base: ReturnType<typeof podBase>) => Record<string, unknown> | undefined]>([
      ['no config', () => undefined],
      ['no metadata', (b) => ({ ...b, metadata: undefined })],
      // containerd 1.6.20 checks only that metadata is there. A pod without a name, namespace or
      // uid runs, and Stop/RemovePodSandbox remove it; crictl (its cri-client) refuses its status,
      // so `crictl rmp` cannot. Kubelet never sends one. Matched, not refused.
      ['an empty name', (b) => ({ ...b, metadata: { ...b.metadata, name: '' } })],
      ['an empty namespace', (b) => ({ ...b, metadata: { ...b.metadata, namespace: '' } })],
      ['an empty uid', (b) => ({ ...b, metadata: { ...b.metadata, uid: '' } })],
      ['container_port 0', (b) => ({ ...b, portMappings: [{ protocol: 0, containerPort: 0, hostPort: 18080 }] })],
      ['a host port over 65535', (b) => ({ ...b, portMappings: [{ protocol: 0, containerPort: 80, hostPort: 70000 }] })],
      ['a container port over 65535', (b) => ({ ...b, portMappings: [{ protocol: 0, containerPort: 70000, hostPort: 18081 }] })],
      ['an unknown protocol', (b) => ({ ...b, portMappings: [{ protocol: 7, containerPort: 80, hostPort: 18082 }] })],
      ['a host IP that is not an address', (b) => ({ ...b, portMappings: [{ protocol: 0, containerPort: 80, hostPort: 18083, hostIp: 'nope' }] })],
    ])('RunPodSandbox with %s', async (_what, make) => {
      const got: Record<string, string> = {};
      for (const d of daemons()) {
        const before = await hostState(d);
        const attempt = () => {
          const config = make(podBase());
          const req = RunPodSandboxRequest.fromPartial(config ? { config: PodSandboxConfig.fromPartial(config as never) } : {});
          return outcome(runtime(d).runPodSandbox(req), async ({ podSandboxId }) => {
            await runtime(d).stopPodSandbox({ podSandboxId });
            await runtime(d).removePodSandbox({ podSandboxId });
          });
        };
        got[d.name] = await attempt();
        // runc under containerd 1.6.20 once failed a pause task's create in a loaded clean-clone CI
        // run ("can't get final child's PID from pipe: EOF"): the reference gets a second try.
        if (d.name === 'containerd' && got[d.name].includes("can't get final child's PID from pipe")) got[d.name] = await attempt();
        // containerd 1.6.20 leaves the network namespace of some sandboxes whose portmap step
        // failed mounted (afterAll removes them): only berthd is held to leaving nothing.
        if (d.name === 'berthd') await expectHostState(d, before);
      }
      expect(got.berthd).toBe(got.containerd);
    });
      it.each<[string, (r: Runtime, id: string) => Promise<unknown>]>([
      ['PodSandboxStatus', (r, id) => r.podSandboxStatus({ podSandboxId: id, verbose: false })],
      ['StopPodSandbox', (r, id) => r.stopPodSandbox({ podSandboxId: id })],
      ['RemovePodSandbox', (r, id) => r.removePodSandbox({ podSandboxId: id })],
      ['ContainerStatus', (r, id) => r.containerStatus({ containerId: id, verbose: false })],
      ['StartContainer', (r, id) => r.startContainer({ containerId: id })],
      ['StopContainer', (r, id) => r.stopContainer({ containerId: id, timeout: 0 })],
      ['RemoveContainer', (r, id) => r.removeContainer({ containerId: id })],
      ['ExecSync', (r, id) => r.execSync({ containerId: id, cmd: ['true'], timeout: 0 })],
      ['Exec', (r, id) => r.exec({ containerId: id, cmd: ['true'], tty: false, stdin: false, stdout: true, stderr: false })],
      ['Attach', (r, id) => r.attach({ containerId: id, tty: false, stdin: false, stdout: true, stderr: false })],
      ['PortForward', (r, id) => r.portForward({ podSandboxId: id, port: [80] })],
      ['UpdateContainerResources', (r, id) => r.updateContainerResources({ containerId: id, annotations: {} })],
      ['ReopenContainerLog', (r, id) => r.reopenContainerLog({ containerId: id })],
      ['ContainerStats', (r, id) => r.containerStats({ containerId: id })],
    ])('%s with an empty id, and with an unknown one', async (what, call) => {
      for (const id of ['', 'f'.repeat(64)]) {
        const got: Record<string, string> = {};
        for (const d of daemons()) got[d.name] = await outcome(call(runtime(d), id), async () => undefined);
        if (id !== '' && what.startsWith('Stop')) {
          // Stopping what is not there is done, as CRI asks (critest "Idempotence"); containerd
          // 1.6.20 still answers NotFound (changed in containerd#10520 and #10531).
          expect(got.berthd).toBe('OK');
          expect(got.containerd).toMatch(/^code 5: an error occurred when try to find \w+ "<id>": not found$/);
        } else expect(got.berthd).toBe(got.containerd);
      }
    });

    describe('CreateContainer', () => {
      const pods = new Map<string, { id: string; config: ReturnType<typeof podBase> }>();
      beforeAll(async () => {
        for (const d of daemons()) {
          const config = podBase();
          const { podSandboxId } = await runtime(d).runPodSandbox(RunPodSandboxRequest.fromPartial({ config: PodSandboxConfig.fromPartial(config as never) }));
          pods.set(d.name, { id: podSandboxId, config });
        }
      });
      afterAll(async () => {
        for (const d of daemons()) await removeAll(d.address);
      });

      const ctrBase = () => ({ metadata: { name: `c-${++bed.seq}` }, image: { image: IMAGE }, command: ['sleep', '1000'], logPath: `c-${bed.seq}.log` });
      it.each<[string, (c: ReturnType<typeof ctrBase>, pod: { id: string; config: ReturnType<typeof podBase> }) => Record<string, unknown>]>([
        ['no config', (_c, p) => ({ podSandboxId: p.id, sandboxConfig: p.config })],
        ['no metadata', (c, p) => ({ podSandboxId: p.id, sandboxConfig: p.config, config: { ...c, metadata: undefined } })],
        ['an empty name', (c, p) => ({ podSandboxId: p.id, sandboxConfig: p.config, config: { ...c, metadata: { name: '' } } })],
        ['a name with a slash and spaces', (c, p) => ({ podSandboxId: p.id, sandboxConfig: p.config, config: { ...c, metadata: { name: 'a/b c' } } })],
        ['no image', (c, p) => ({ podSandboxId: p.id, sandboxConfig: p.config, config: { ...c, image: undefined } })],
        ['an image not pulled', (c, p) => ({ podSandboxId: p.id, sandboxConfig: p.config, config: { ...c, image: { image: 'docker.io/library/nosuch:1' } } })],
        ['no pod id', (c, p) => ({ podSandboxId: '', sandboxConfig: p.config, config: c })],
        ['an unknown pod id', (c, p) => ({ podSandboxId: 'f'.repeat(64), sandboxConfig: p.config, config: c })],
      ])('with %s', async (_what, make) => {
        const got: Record<string, string> = {};
        for (const d of daemons()) {
          const before = await hostState(d);
          const req = make(ctrBase(), pods.get(d.name)!) as { config?: unknown; sandboxConfig?: unknown; podSandboxId: string };
          const request = CreateContainerRequest.fromPartial({
            podSandboxId: req.podSandboxId,
            ...(req.config ? { config: ContainerConfig.fromPartial(req.config as never) } : {}),
            ...(req.sandboxConfig ? { sandboxConfig: PodSandboxConfig.fromPartial(req.sandboxConfig as never) } : {}),
          });
          got[d.name] = await outcome(runtime(d).createContainer(request), async ({ containerId }) => {
            await runtime(d).removeContainer({ containerId });
          });
          if (d.name === 'berthd') await expectHostState(d, before);
        }
        expect(got.berthd).toBe(got.containerd);
      });

      it('with no sandbox config: berthd names and builds the container from the pod it knows (containerd 1.6.20 panics and exits)', async () => {
        // containerd 1.6.20 dereferences the missing sandbox metadata while making the
        // container's name (pkg/cri/server/helpers.go:113, seen here): the whole bed.berthd dies. So
        // only berthd is asked.
        const d = daemons()[0];
        const before = await hostState(d);
        const pod = pods.get(d.name)!;
        const { containerId } = await runtime(d).createContainer(CreateContainerRequest.fromPartial({ podSandboxId: pod.id, config: ContainerConfig.fromPartial(ctrBase() as never) }));
        const status = json(await ok(d, 'inspect', containerId));
        expect(status.status.logPath).toBe(join(pod.config.logDirectory, `c-${bed.seq}.log`));
        expect(status.info.runtimeSpec.annotations['io.kubernetes.cri.sandbox-name']).toBe(pod.config.metadata.name);
        await runtime(d).removeContainer({ containerId });
        await expectHostState(d, before);
      });
    });
  });
});
