import { createHash } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { Duplex } from 'node:stream';

/** Thrown for input that is not a client's WebSocket (RFC 6455) framing; the connection closes. */
export class WebSocketProtocolError extends Error {
  constructor(message: string) {
    super(`websocket: ${message}`);
    this.name = 'WebSocketProtocolError';
  }
}

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

/** The Sec-WebSocket-Accept value for a client's Sec-WebSocket-Key. */
export function webSocketAccept(key: string): string {
  return createHash('sha1').update(key + GUID).digest('base64');
}

const OP = { CONT: 0, TEXT: 1, BINARY: 2, CLOSE: 8, PING: 9, PONG: 10 } as const;

/**
 * The server side of one WebSocket (RFC 6455) over an upgraded socket: client frames must be
 * masked; fragmented messages are joined up to `maxMessage` bytes; PINGs get PONGs; a CLOSE is
 * answered and ends the connection. Emits `message` (Buffer, binary: boolean) and `close`
 * (Error when the peer broke the protocol). Nothing is thrown to the caller.
 */
export class WebSocketConnection extends EventEmitter {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private fragments: Buffer[] = [];
  private fragmentsLength = 0;
  private fragmentBinary = false;
  private closed = false;
  private closing = false;

  private idle: NodeJS.Timeout | undefined;

  /** @param idleTimeoutMs closes the connection after this long without a frame either way (default: never). */
  constructor(
    private readonly socket: Duplex,
    head: Buffer,
    private readonly maxMessage = 16 << 20,
    idleTimeoutMs?: number,
  ) {
    super();
    if (idleTimeoutMs) {
      this.idle = setTimeout(() => void this.close(), idleTimeoutMs);
      this.idle.unref();
    }
    socket.on('data', (b: Buffer) => this.onBytes(b));
    socket.on('error', (err: Error) => this.destroy(err));
    socket.on('close', () => this.destroy());
    socket.on('end', () => this.destroy());
    if (head.length > 0) setImmediate(() => this.onBytes(head));
  }

  get isClosed(): boolean {
    return this.closed || this.closing;
  }

  private onBytes(b: Buffer): void {
    if (this.closed) return;
    this.idle?.refresh();
    this.chunks.push(b);
    this.buffered += b.length;
    try {
      this.parse();
    } catch (err) {
      if (err instanceof WebSocketProtocolError) this.sendFrame(OP.CLOSE, closePayload(1002, ''));
      this.destroy(err as Error);
    }
  }

  private parse(): void {
    for (;;) {
      if (this.buffered < 2) return;
      // The head is at most 14 bytes; the whole frame is joined only once it is all here.
      let buf = this.chunks[0].length >= 14 || this.chunks.length === 1 ? this.chunks[0] : Buffer.concat(this.chunks, this.buffered);
      this.chunks = [buf, ...this.chunks.slice(buf === this.chunks[0] ? 1 : this.chunks.length)];
      const fin = (buf[0] & 0x80) !== 0;
      if ((buf[0] & 0x70) !== 0) throw new WebSocketProtocolError('reserved bits set');
      const op = buf[0] & 0x0f;
      const masked = (buf[1] & 0x80) !== 0;
      if (!masked) throw new WebSocketProtocolError('client frame not masked');
      let len = buf[1] & 0x7f;
      let off = 2;
      if (len === 126) {
        if (buf.length < 4) return;
        len = buf.readUInt16BE(2);
        off = 4;
      } else if (len === 127) {
        if (buf.length < 10) return;
        const big = buf.readBigUInt64BE(2);
        if (big > BigInt(this.maxMessage)) throw new WebSocketProtocolError(`frame of ${big} bytes is over the limit of ${this.maxMessage}`);
        len = Number(big);
        off = 10;
      }
      if (len > this.maxMessage) throw new WebSocketProtocolError(`frame of ${len} bytes is over the limit of ${this.maxMessage}`);
      if (op >= 8 && (len > 125 || !fin)) throw new WebSocketProtocolError('bad control frame');
      if (this.buffered < off + 4 + len) return;
      if (buf.length < off + 4 + len) {
        buf = Buffer.concat(this.chunks, this.buffered);
        this.chunks = [buf];
      }
      const mask = buf.subarray(off, off + 4);
      const payload = Buffer.from(buf.subarray(off + 4, off + 4 + len));
      for (let i = 0; i < payload.length; i++) payload[i] ^= mask[i & 3];
      const rest = buf.subarray(off + 4 + len);
      this.chunks = rest.length > 0 ? [rest, ...this.chunks.slice(1)] : this.chunks.slice(1);
      this.buffered -= off + 4 + len;
      this.onFrame(fin, op, payload);
      if (this.closed) return;
    }
  }

  private onFrame(fin: boolean, op: number, payload: Buffer): void {
    switch (op) {
      case OP.PING:
        this.sendFrame(OP.PONG, payload);
        return;
      case OP.PONG:
        return;
      case OP.CLOSE:
        if (!this.closing) this.sendFrame(OP.CLOSE, payload.subarray(0, 2));
        this.closing = true;
        this.socket.end();
        return;
      case OP.TEXT:
      case OP.BINARY:
      case OP.CONT: {
        if (op !== OP.CONT) {
          if (this.fragments.length > 0) throw new WebSocketProtocolError('new message inside a fragmented one');
          this.fragmentBinary = op === OP.BINARY;
        } else if (this.fragments.length === 0) {
          throw new WebSocketProtocolError('continuation without a message');
        }
        this.fragments.push(payload);
        this.fragmentsLength += payload.length;
        if (this.fragmentsLength > this.maxMessage) throw new WebSocketProtocolError('message over the limit');
        if (!fin) return;
        const message = Buffer.concat(this.fragments, this.fragmentsLength);
        this.fragments = [];
        this.fragmentsLength = 0;
        this.emit('message', message, this.fragmentBinary);
        return;
      }
      default:
        throw new WebSocketProtocolError(`unknown opcode ${op}`);
    }
  }

  private sendFrame(op: number, payload: Buffer): boolean {
    if (this.closed || this.socket.destroyed) return true;
    this.idle?.refresh();
    let head: Buffer;
    if (payload.length < 126) {
      head = Buffer.from([0x80 | op, payload.length]);
    } else if (payload.length < 0x10000) {
      head = Buffer.alloc(4);
      head[0] = 0x80 | op;
      head[1] = 126;
      head.writeUInt16BE(payload.length, 2);
    } else {
      head = Buffer.alloc(10);
      head[0] = 0x80 | op;
      head[1] = 127;
      head.writeBigUInt64BE(BigInt(payload.length), 2);
    }
    return this.socket.write(Buffer.concat([head, payload]));
  }

  /** Sends one message; resolves when the socket took it. */
  send(data: Buffer, binary = true): Promise<void> {
    if (this.isClosed) return Promise.reject(new Error('websocket: connection closed'));
    if (this.sendFrame(binary ? OP.BINARY : OP.TEXT, data)) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        this.socket.off('drain', done);
        this.socket.off('close', done);
        resolve();
      };
      this.socket.on('drain', done);
      this.socket.on('close', done);
    });
  }

  /** Sends a normal closure (1000) and ends the socket; resolves when it closed. */
  async close(): Promise<void> {
    if (this.closed) return;
    const gone = new Promise<void>((resolve) => this.once('close', () => resolve()));
    if (!this.closing) {
      this.closing = true;
      this.sendFrame(OP.CLOSE, closePayload(1000, ''));
      this.socket.end();
    }
    const t = setTimeout(() => this.destroy(), 2000);
    t.unref();
    await gone;
    clearTimeout(t);
  }

  destroy(err?: Error): void {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.idle);
    this.socket.destroy();
    this.emit('close', err);
  }
}

function closePayload(code: number, reason: string): Buffer {
  const b = Buffer.alloc(2 + Buffer.byteLength(reason));
  b.writeUInt16BE(code, 0);
  b.write(reason, 2);
  return b;
}
