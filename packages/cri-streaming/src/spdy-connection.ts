import { EventEmitter } from 'node:events';
import { Duplex } from 'node:stream';
import {
  FrameDecoder,
  type FrameDecoderOptions,
  GoAwayStatus,
  RstStatus,
  type SpdyFrame,
  type SpdyHeaders,
  SpdyProtocolError,
  decodeHeaderBlock,
  encodeData,
  encodeGoAway,
  encodeHeaderBlock,
  encodePing,
  encodeRstStream,
  encodeSynReply,
  encodeSynStream,
} from './spdy-frames';
import { HeaderDeflater, HeaderInflater } from './spdy-zlib';

/** Outgoing data is cut into frames of at most this many bytes. */
const MAX_DATA_FRAME = 1 << 20;
const EMPTY = Buffer.alloc(0);

/** Options of a SPDY connection. */
export interface SpdyConnectionOptions extends FrameDecoderOptions {
  /** True on the side that accepted the connection (peer streams have odd ids). */
  server: boolean;
  /** Bytes already read after the HTTP upgrade (Node's `head`), parsed before the socket's. */
  head?: Buffer;
  /** Closes the connection after this long without a frame either way, in ms. Default: never. */
  idleTimeoutMs?: number;
}

/**
 * One SPDY stream as a Node duplex: reading gives the peer's DATA (ending at its FIN), writing
 * sends DATA, `end()` sends FIN, and `destroy()` before both sides are done sends RST_STREAM
 * (CANCEL). There is no flow control: Go's spdystream never sends WINDOW_UPDATE, so a window
 * would stall; a slow reader pauses the whole socket instead (TCP pushes back).
 */
export class SpdyStream extends Duplex {
  /** The stream's headers (SYN_STREAM's for a peer's stream). */
  readonly headers: SpdyHeaders;
  /** Set when the peer sent FIN. */
  remoteFin = false;
  /** Set when this side sent FIN. */
  localFin = false;
  /** Set when the stream was reset by either side. */
  reset = false;

  constructor(
    private readonly conn: SpdyConnection,
    readonly id: number,
    headers: SpdyHeaders,
  ) {
    super({ allowHalfOpen: true });
    this.headers = headers;
    // A write after the end or after the connection went away must not become an uncaught
    // 'error' in the daemon; users that care (pipeline) add their own listeners.
    this.on('error', () => undefined);
  }

  /** The first value of a header, or undefined. */
  header(name: string): string | undefined {
    return this.headers[name.toLowerCase()]?.[0];
  }

  override _read(): void {
    this.conn.resumeReading();
  }

  // Writes to a connection that went away are dropped, not errors: an error would destroy the
  // stream and lose the peer's frames still being read (the peer may close right after its
  // last frame). Writers learn of the end from 'close' (and runtimes from the abort signal).
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.conn.sendData(this.id, chunk, false).then(
      () => cb(),
      () => cb(),
    );
  }

  override _final(cb: (err?: Error | null) => void): void {
    this.localFin = true;
    this.conn.sendData(this.id, EMPTY, true).then(
      () => cb(),
      () => cb(),
    );
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    if (!err && !this.reset && this.remoteFin && !this.localFin) {
      // Destroyed without an error once the peer is done (as `for await` does at the end of
      // the input): a close, not an abort, so the peer gets FIN after what was written.
      this.localFin = true;
      void this.conn.sendData(this.id, EMPTY, true).catch(() => undefined);
    } else if (!this.reset && !(this.localFin && this.remoteFin)) {
      this.reset = true;
      this.conn.sendReset(this.id, RstStatus.CANCEL);
    }
    this.conn.forget(this.id);
    // A stream that goes away unread must not leave the connection paused for it.
    this.conn.resumeReading();
    cb(err);
  }

  /** Called by the connection with the peer's DATA; false when the reader is full. */
  receive(data: Buffer, fin: boolean): boolean {
    if (this.remoteFin || this.destroyed) return true;
    let more = true;
    if (data.length > 0) more = this.push(data);
    if (fin) {
      this.remoteFin = true;
      this.push(null);
    }
    return more;
  }

  /** Aborts the stream with RST_STREAM (CANCEL), whatever state it is in. */
  resetStream(): void {
    if (this.destroyed) return;
    if (!this.reset) this.conn.sendReset(this.id, RstStatus.CANCEL);
    this.reset = true;
    this.destroy();
  }

  /** Why the stream was aborted ('' for a peer's RST_STREAM), once it was. */
  abortReason: string | undefined;

  /**
   * Called by the connection when the peer reset the stream or the connection went away. The
   * stream is destroyed without an error, so a user without an 'error' listener cannot crash.
   */
  abort(reason: string): void {
    if (this.destroyed) return;
    this.reset = true;
    this.remoteFin = true;
    this.abortReason = reason;
    this.destroy();
  }
}

/**
 * A SPDY/3.1 session over a socket, as Go's spdystream speaks it: the peer's streams are accepted
 * at once with an empty SYN_REPLY and announced by `stream` events; PINGs are echoed; SETTINGS,
 * WINDOW_UPDATE and unknown control frames are ignored. Bad input of any kind (a malformed frame,
 * a corrupt header block, an oversized length, bytes that are not SPDY at all) closes the
 * connection: nothing is thrown to the caller. Emits `stream` (SpdyStream) and `close` (Error
 * when the connection failed).
 */
export class SpdyConnection extends EventEmitter {
  private readonly decoder: FrameDecoder;
  private readonly inflater = new HeaderInflater();
  private readonly deflater = new HeaderDeflater();
  private readonly streams = new Map<number, SpdyStream>();
  private readonly replies = new Map<number, (ok: boolean) => void>();
  private inChain: Promise<void> = Promise.resolve();
  private outChain: Promise<void> = Promise.resolve();
  private nextId: number;
  private lastPeerId = 0;
  private paused = false;
  private closing = false;
  private closed = false;
  /** Set when the peer said GOAWAY. */
  goneAway = false;
  private idle: NodeJS.Timeout | undefined;

  constructor(
    private readonly socket: Duplex,
    private readonly options: SpdyConnectionOptions,
  ) {
    super();
    this.decoder = new FrameDecoder(options);
    this.nextId = options.server ? 2 : 1;
    if (options.idleTimeoutMs) {
      this.idle = setTimeout(() => void this.close(), options.idleTimeoutMs);
      this.idle.unref();
    }
    socket.on('data', (chunk: Buffer) => this.onBytes(chunk));
    socket.on('error', (err: Error) => this.destroy(err));
    // The end of the socket is handled after the frames before it (a reply still inflating).
    const ended = () => {
      this.inChain = this.inChain.then(() => this.destroy());
    };
    socket.on('close', ended);
    socket.on('end', ended);
    if (options.head && options.head.length > 0) this.onBytes(options.head);
  }

  /** Number of open streams. */
  get streamCount(): number {
    return this.streams.size;
  }

  /** Whether the connection is closed or closing. */
  get isClosed(): boolean {
    return this.closed || this.closing;
  }

  private onBytes(chunk: Buffer): void {
    if (this.closed) return;
    this.idle?.refresh();
    let frames: SpdyFrame[];
    try {
      frames = this.decoder.push(chunk);
    } catch (err) {
      this.fail(err as Error);
      return;
    }
    for (const f of frames) {
      this.inChain = this.inChain.then(() => this.handle(f)).catch((err: unknown) => this.fail(err as Error));
    }
  }

  private fail(err: Error): void {
    if (this.closed) return;
    if (err instanceof SpdyProtocolError) this.write(encodeGoAway(this.lastPeerId, GoAwayStatus.PROTOCOL_ERROR));
    // Let the GOAWAY go out, then drop the connection.
    void this.outChain.then(() => this.destroy(err));
  }

  private async handle(f: SpdyFrame): Promise<void> {
    if (this.closed) return;
    switch (f.type) {
      case 'data': {
        const s = this.streams.get(f.streamId);
        if (!s) return;
        if (!s.receive(f.data, f.fin)) this.pauseReading();
        return;
      }
      case 'syn_stream': {
        const headers = decodeHeaderBlock(await this.inflater.inflate(f.headerBlock));
        if (this.closed) return;
        const peerParity = this.options.server ? 1 : 0;
        if (f.streamId % 2 !== peerParity || f.streamId <= this.lastPeerId) {
          if (this.streams.has(f.streamId)) this.sendReset(f.streamId, RstStatus.STREAM_IN_USE);
          else throw new SpdyProtocolError(`SYN_STREAM with stream id ${f.streamId} out of order`);
          return;
        }
        this.lastPeerId = f.streamId;
        if (this.closing || this.goneAway) {
          this.sendReset(f.streamId, RstStatus.REFUSED_STREAM);
          return;
        }
        const s = new SpdyStream(this, f.streamId, headers);
        this.streams.set(f.streamId, s);
        // The reply goes out before anything written on the stream (the output is ordered).
        this.write(this.deflater.deflate(encodeHeaderBlock({})).then((block) => encodeSynReply(f.streamId, block)));
        if (f.fin) s.receive(EMPTY, true);
        this.emit('stream', s);
        return;
      }
      case 'syn_reply': {
        await this.inflater.inflate(f.headerBlock).then(decodeHeaderBlock);
        const s = this.streams.get(f.streamId);
        this.replies.get(f.streamId)?.(true);
        this.replies.delete(f.streamId);
        if (s && f.fin) s.receive(EMPTY, true);
        return;
      }
      case 'headers': {
        // Headers after the reply carry nothing the streaming protocols use; keep zlib in step.
        await this.inflater.inflate(f.headerBlock).then(decodeHeaderBlock);
        if (f.fin) this.streams.get(f.streamId)?.receive(EMPTY, true);
        return;
      }
      case 'rst_stream': {
        this.replies.get(f.streamId)?.(false);
        this.replies.delete(f.streamId);
        this.streams.get(f.streamId)?.abort('');
        return;
      }
      case 'ping':
        // Echo the peer's pings (odd ids from a client, even from a server); ignore echoes of ours.
        if ((f.id % 2 === 1) === this.options.server) this.write(encodePing(f.id));
        return;
      case 'goaway':
        this.goneAway = true;
        return;
      default:
        return;
    }
  }

  /** Opens a stream (client side); resolves once the peer's SYN_REPLY arrives. */
  async openStream(headers: Record<string, string | readonly string[]>, options: { fin?: boolean } = {}): Promise<SpdyStream> {
    if (this.isClosed) throw new Error('spdy: connection closed');
    const id = this.nextId;
    this.nextId += 2;
    const lower: SpdyHeaders = {};
    for (const [k, v] of Object.entries(headers)) lower[k.toLowerCase()] = typeof v === 'string' ? [v] : [...v];
    const s = new SpdyStream(this, id, lower);
    if (options.fin) s.localFin = true;
    this.streams.set(id, s);
    const replied = new Promise<boolean>((resolve) => this.replies.set(id, resolve));
    this.write(this.deflater.deflate(encodeHeaderBlock(headers)).then((block) => encodeSynStream(id, block, { fin: options.fin })));
    if (!(await replied)) throw new Error(`spdy: stream ${id} was refused`);
    return s;
  }

  /** Queues DATA for a stream; resolves when the socket took it. */
  sendData(id: number, data: Buffer, fin: boolean): Promise<void> {
    if (this.closed) return Promise.reject(new Error('spdy: connection closed'));
    if (data.length <= MAX_DATA_FRAME) return this.write(encodeData(id, data, fin));
    let p: Promise<void> = Promise.resolve();
    for (let off = 0; off < data.length; off += MAX_DATA_FRAME) {
      const end = Math.min(off + MAX_DATA_FRAME, data.length);
      p = this.write(encodeData(id, data.subarray(off, end), fin && end === data.length));
    }
    return p;
  }

  /** Queues RST_STREAM. */
  sendReset(id: number, status: number): void {
    if (!this.closed) void this.write(encodeRstStream(id, status)).catch(() => undefined);
  }

  /** Removes a finished stream. */
  forget(id: number): void {
    this.streams.delete(id);
  }

  /** Called when a stream's reader wants more. */
  resumeReading(): void {
    if (this.paused && !this.closed) {
      this.paused = false;
      this.socket.resume();
    }
  }

  private pauseReading(): void {
    if (!this.paused) {
      this.paused = true;
      this.socket.pause();
    }
  }

  /** Writes frames in order, waiting for compressed blocks and for the socket to drain. */
  private write(frame: Buffer | Promise<Buffer>): Promise<void> {
    const next = this.outChain.then(async () => {
      const buf = await frame;
      if (this.closed || this.socket.destroyed) throw new Error('spdy: connection closed');
      this.idle?.refresh();
      if (!this.socket.write(buf)) await drained(this.socket);
    });
    this.outChain = next.catch(() => undefined);
    return next;
  }

  /**
   * Says GOAWAY, lets queued frames go out and ends the socket; streams still open are reset.
   * Resolves when the socket is closed.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    if (!this.closing) {
      this.closing = true;
      void this.write(encodeGoAway(this.lastPeerId, GoAwayStatus.OK)).catch(() => undefined);
    }
    await this.outChain;
    if (!this.closed) {
      const gone = new Promise<void>((resolve) => this.once('close', () => resolve()));
      this.socket.end();
      // A peer that never closes its side gets a little time, then the socket is dropped.
      const t = setTimeout(() => this.destroy(), 2000);
      t.unref();
      await gone;
      clearTimeout(t);
    }
  }

  /** Drops the connection at once. */
  destroy(err?: Error): void {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.idle);
    for (const s of [...this.streams.values()]) s.abort(err ? err.message : 'spdy: connection closed');
    this.streams.clear();
    for (const r of this.replies.values()) r(false);
    this.replies.clear();
    this.inflater.close();
    this.deflater.close();
    this.socket.destroy();
    this.emit('close', err);
  }
}

function drained(socket: Duplex): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      socket.off('drain', done);
      socket.off('close', done);
      resolve();
    };
    socket.on('drain', done);
    socket.on('close', done);
  });
}
