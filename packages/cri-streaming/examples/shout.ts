import { PassThrough, Readable } from 'node:stream';
import { type StreamingRuntime, StreamingServer, streamRemoteCommand } from '@berth/cri-streaming';

/** A runtime whose exec copies stdin to stdout in capitals and exits with the number of lines. */
const shouting: StreamingRuntime = {
  async exec(_containerId, _cmd, io) {
    let lines = 0;
    for await (const chunk of io.stdin ?? []) {
      const text = String(chunk);
      io.stdout?.write(text.toUpperCase());
      lines += text.split('\n').length - 1;
    }
    return lines;
  },
  async attach() {
    throw new Error('attach is not supported here');
  },
  async portForward() {
    throw new Error('port-forward is not supported here');
  },
};

/**
 * Serves one exec session the way a CRI runtime does (the Exec call returns a URL, the client
 * upgrades it to SPDY and speaks remotecommand v4), with this package's own client.
 */
export async function shout(text: string): Promise<{ url: string; output: string; exitCode?: number }> {
  const server = await StreamingServer.start({ runtime: shouting }); // 127.0.0.1, a random port
  try {
    const { url } = server.getExec({ containerId: 'c1', cmd: ['shout'], tty: false, stdin: true, stdout: true, stderr: false });
    let output = '';
    const stdout = new PassThrough().on('data', (b: Buffer) => (output += b.toString()));
    const result = await streamRemoteCommand(url, { stdin: Readable.from([text]), stdout });
    return { url, output, exitCode: result.exitCode };
  } finally {
    await server.close();
  }
}
