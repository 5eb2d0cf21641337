import type { Duplex } from 'node:stream';
import { context } from '@berth/context';
import { UnknownError } from '@berth/errdefs';
import type { StreamingIo, StreamingRuntime, TerminalSize } from '@berth/cri-streaming';
import { forwardPort } from '@berth/cri-streaming';
import type { ContainerService } from './container-service';
import { CRI_NAMESPACE } from './image-service';
import type { SandboxService } from './sandbox-service';

const SIGKILL = 9;

/**
 * The CRI plugin's side of the streaming server: Exec runs through the container service's exec
 * (FIFOs, a terminal and its resizes), Attach joins the container's live stdio, PortForward dials
 * the port inside the sandbox's network namespace (the host's for host network).
 */
export class CriStreamingRuntime implements StreamingRuntime {
  private readonly ctx = context({ namespace: CRI_NAMESPACE });

  constructor(
    private readonly containers: ContainerService,
    private readonly sandboxes: SandboxService,
  ) {}

  async exec(containerId: string, cmd: string[], io: StreamingIo): Promise<number> {
    const h = await this.containers.exec(this.ctx, containerId, { cmd, tty: io.tty, stdin: io.stdin, stdout: io.stdout, stderr: io.stderr });
    // The client went away or the server is closing: containerd kills the exec then.
    const kill = () => void h.kill(SIGKILL).catch(() => undefined);
    if (io.signal.aborted) kill();
    io.signal.addEventListener('abort', kill, { once: true });
    if (io.resize) void follow(io.resize, (s) => h.resize(s.width, s.height));
    try {
      return await h.exited;
    } finally {
      io.signal.removeEventListener('abort', kill);
    }
  }

  async attach(containerId: string, io: StreamingIo): Promise<void> {
    if (io.resize) void follow(io.resize, (s) => this.containers.resizeTerminal(this.ctx, containerId, s.width, s.height));
    await this.containers.attach(this.ctx, containerId, { stdin: io.stdin, stdout: io.stdout, stderr: io.stderr });
  }

  async portForward(podSandboxId: string, port: number, stream: Duplex, signal: AbortSignal): Promise<void> {
    const s = await this.sandboxes.get(this.ctx, podSandboxId, `failed to find sandbox ${JSON.stringify(podSandboxId)}`);
    await forwardPort(s.netnsPath === '' ? undefined : s.netnsPath, port, stream, { name: s.id, signal });
  }

  /** PortForward's check before it hands out a URL: the sandbox exists and is ready. */
  async requireReady(podSandboxId: string): Promise<string> {
    const s = await this.sandboxes.get(this.ctx, podSandboxId, `failed to find sandbox ${JSON.stringify(podSandboxId)}`);
    const v = await this.sandboxes.status(this.ctx, s.id);
    if (!v.ready) throw new UnknownError(`sandbox container ${JSON.stringify(v.sandbox.id)} is not running`, { bare: true });
    return v.sandbox.id;
  }
}

/** Applies each terminal size as it comes; a failed resize is not worth ending the session for. */
async function follow(sizes: AsyncIterable<TerminalSize>, apply: (s: TerminalSize) => Promise<void>): Promise<void> {
  try {
    for await (const s of sizes) await apply(s).catch(() => undefined);
  } catch {
    /* the session ended */
  }
}
