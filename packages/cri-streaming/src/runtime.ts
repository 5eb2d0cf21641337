import type { Duplex, Readable, Writable } from 'node:stream';

/** A terminal size as the client reports it (columns and rows). */
export interface TerminalSize {
  width: number;
  height: number;
}

/**
 * The standard streams of an exec or attach session, as the streaming server hands them to the
 * runtime. Every stream the client did not ask for is absent.
 */
export interface StreamingIo {
  /** The client's input; it ends when the client closes stdin (close the process's stdin then). */
  stdin?: Readable;
  /** Where the process's output goes (with a tty, the terminal's single output). */
  stdout?: Writable;
  /** Where the process's error output goes; never set together with `tty`. */
  stderr?: Writable;
  /** Whether the process runs on a terminal. */
  tty: boolean;
  /** Terminal sizes, the first as soon as the client knows it; present only with `tty`. */
  resize?: AsyncIterable<TerminalSize>;
  /**
   * Aborted when the session ends before the runtime finished: the client went away or the
   * server is closing. An exec should then kill its process, as containerd does.
   */
  signal: AbortSignal;
}

/**
 * What the streaming server needs from a container runtime (the CRI plugin implements it). All
 * streams are plain Node streams; the server owns their ends:
 * - Output streams may be written and ended by the runtime (e.g. with `pipe`); the server ends
 *   whichever are still open once the returned promise settles, and only then sends the exit
 *   status, so output must be written before the promise resolves.
 * - A rejection becomes the session's error (v4: `InternalError` with the message).
 */
export interface StreamingRuntime {
  /**
   * Runs `cmd` in the container with the session's streams and resolves with its exit code once
   * it has exited and its output is written.
   */
  exec(containerId: string, cmd: string[], io: StreamingIo): Promise<number>;
  /**
   * Joins the container's live stdio (no replay of earlier output) and resolves when the
   * container's output ends (it exited) or, with `stdin_once`, after the client's stdin ended.
   */
  attach(containerId: string, io: StreamingIo): Promise<void>;
  /**
   * Connects `stream` to TCP `port` on localhost inside the sandbox's network namespace and
   * copies both ways; resolves when the connection is over (use `forwardPort`). A rejection's
   * message is written to the client's error stream.
   */
  portForward(podSandboxId: string, port: number, stream: Duplex, signal: AbortSignal): Promise<void>;
}
