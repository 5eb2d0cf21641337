import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { CRICTL_PATH, tempDir, tmuxRun, tmuxScreen, waitForScreen } from '@berth/testing';
import { StreamingServer } from './streaming-server';
import { ProcessRuntime, type TestCriServer, crictl, crictlArgv, startCriServer } from './test-support';

jest.setTimeout(120_000);

const shellQuote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

describe('crictl attach and exec -it through the streaming server', () => {
  const dir = tempDir('berth-cri-tty-');
  const runtime = new ProcessRuntime();
  let streaming: StreamingServer;
  let cri: TestCriServer;

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

  it.each(['spdy', 'websocket'])('attach -r %s -i joins a running process: its stdin gets the input, EOF closes it (stdin_once), output comes back', async (transport) => {
    runtime.startContainer(`box-${transport}`, ['sh', '-c', 'read line; echo "got:$line"; echo "to stderr" >&2; cat; echo "bye"']);
    const r = await crictl(cri.socket, dir.path, ['attach', '-r', transport, '-i', `box-${transport}`], { input: 'hello\nmore\n' });
    expect({ code: r.code, stdout: r.stdout.toString(), stderr: r.stderr }).toEqual({ code: 0, stdout: 'got:hello\nmore\nbye\n', stderr: 'to stderr\n' });
    expect(cri.calls).toContain('Attach');
  });

  it('attach to an unknown container ends with the runtime error as an InternalError', async () => {
    const r = await crictl(cri.socket, dir.path, ['attach', 'nobody']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('error attaching to container: container \\"nobody\\" not found');
  });

  describe('on a terminal (tmux)', () => {
    // A fresh tmux server (its own socket) for each test.
    let n = 0;
    let session = '';
    const tmux = (...args: string[]) => tmuxRun(session, ...args);
    const screen = () => tmuxScreen(session);
    const waitFor = (re: RegExp, timeoutMs = 30_000) => waitForScreen(session, re, timeoutMs);

    beforeEach(async () => {
      session = `berth-cri-tty-${process.pid}-${++n}`;
      await tmux('new-session', '-d', '-s', session, '-x', '100', '-y', '30', 'sh');
    });
    afterEach(async () => {
      await tmux('kill-server').catch(() => undefined);
      // kill-server leaves its socket file behind.
      rmSync(join(process.env.TMUX_TMPDIR ?? '/tmp', `tmux-${process.getuid!()}`, session), { force: true });
    });

    it.each(['spdy', 'websocket'])('exec -r %s -it sh: the terminal size, a resize, commands, exit 5', async (transport) => {
      const argv = [CRICTL_PATH!, ...crictlArgv(cri.socket, dir.path, ['exec', '-r', transport, '-it', 'c1', 'env', 'PS1=pod$ ', 'sh'])].map(shellQuote).join(' ');
      await tmux('send-keys', '-t', session, `clear; ${argv}; echo "crictl exited $?"`, 'Enter');
      await waitFor(/^pod\$ ?$/m);
      await tmux('send-keys', '-t', session, 'tty; stty size', 'Enter');
      const first = await waitFor(/^30 100\s*$/m);
      expect(first).toMatch(/^\/dev\/pts\/\d+\s*$/m);
      await tmux('resize-window', '-t', session, '-x', '120', '-y', '40');
      // The size travels tmux -> crictl (SIGWINCH) -> resize stream -> the test runtime's
      // `stty -F` on the pty, which the shell's next command may overtake: ask until it shows.
      let afterResize = '';
      for (let i = 0; i < 20 && !/^40 120\s*$/m.test(afterResize); i++) {
        await tmux('send-keys', '-t', session, 'clear; stty size; echo $((6 * 7))', 'Enter');
        afterResize = await waitFor(/^42\s*$/m);
        if (!/^40 120\s*$/m.test(afterResize)) await new Promise((r) => setTimeout(r, 200));
      }
      expect(afterResize).toMatch(/^40 120\s*$/m);
      await tmux('send-keys', '-t', session, 'exit 5', 'Enter');
      const end = await waitFor(/^crictl exited \d+$/m);
      expect(end).toMatch(/command terminated with exit code 5/);
      expect(end).toMatch(/^crictl exited 1$/m);
    });
  });
});
