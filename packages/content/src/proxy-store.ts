import { Readable } from 'node:stream';
import { content as api } from '@berth/api';
import { AlreadyExistsError, FailedPreconditionError, InvalidArgumentError, NotFoundError, NotImplementedError, isAlreadyExists, isNotFound } from '@berth/errdefs';
import { Client, DuplexCall, createClient } from '@berth/grpc';
import { parseDigest, type Digest } from './digest';
import type { ContentStore, DescriptorLike, Info, InfoFilter, Labels, ReaderAt, Status, StatusFilter, Writer, WriterOptions } from './types';

const epoch = new Date(0);

/** Bytes asked for per Read call when streaming a blob. */
const READ_WINDOW = 4 << 20;

function fromInfo(info: api.Info | undefined): Info {
  return {
    digest: (info?.digest ?? '') as Digest,
    size: Number(info?.size ?? 0),
    createdAt: info?.createdAt ?? epoch,
    updatedAt: info?.updatedAt ?? epoch,
    labels: { ...(info?.labels ?? {}) },
  };
}

function fromStatus(st: api.Status | undefined, ref: string): Status {
  return {
    ref: st?.ref || ref,
    offset: Number(st?.offset ?? 0),
    total: Number(st?.total ?? 0),
    ...(st?.expected ? { expected: st.expected as Digest } : {}),
    startedAt: st?.startedAt ?? epoch,
    updatedAt: st?.updatedAt ?? epoch,
  };
}

type ContentClient = Client<typeof api.ContentService>;

/**
 * A content store served by another process over containerd's Content API (containerd's proxy
 * plugins, `type = "content"`). Walk and status filters are applied here, on the full lists.
 * Requests carry `namespace` when given (a namespaced server such as containerd's needs one); a
 * plain store server ignores it.
 */
export class ProxyContentStore implements ContentStore {
  private readonly client: ContentClient;

  /** Connects lazily: the server may start after this store is created. */
  constructor(
    readonly address: string,
    options: { namespace?: string } = {},
  ) {
    this.client = createClient(api.ContentService, address.replace(/^unix:\/\//, ''), { namespace: options.namespace });
  }

  async info(digest: Digest): Promise<Info> {
    parseDigest(digest);
    return fromInfo((await this.client.info({ digest })).info);
  }

  async update(info: { digest: Digest; labels?: Labels }, fieldpaths: readonly string[] = []): Promise<Info> {
    parseDigest(info.digest);
    const res = await this.client.update({ info: { digest: info.digest, size: 0, labels: { ...(info.labels ?? {}) } }, updateMask: [...fieldpaths] });
    return fromInfo(res.info);
  }

  async walk(fn: (info: Info) => void | Promise<void>, filter?: InfoFilter): Promise<void> {
    const infos: Info[] = [];
    for await (const batch of this.client.list({ filters: [] })) for (const i of batch.info) infos.push(fromInfo(i));
    for (const info of infos) if (!filter || filter(info)) await fn(info);
  }

  async delete(digest: Digest): Promise<void> {
    parseDigest(digest);
    await this.client.delete({ digest });
  }

  async readerAt(desc: DescriptorLike): Promise<ReaderAt> {
    const { size } = await this.info(desc.digest);
    const client = this.client;
    const chunks = (offset: number, length: number): AsyncIterable<api.ReadContentResponse> =>
      client.read({ digest: desc.digest, offset, size: length });
    return {
      size,
      async readAt(buffer: Uint8Array, offset: number): Promise<number> {
        if (!Number.isInteger(offset) || offset < 0) throw new InvalidArgumentError(`invalid offset ${offset}`);
        if (offset >= size || buffer.byteLength === 0) return 0;
        let n = 0;
        for await (const r of chunks(offset, Math.min(buffer.byteLength, size - offset))) {
          buffer.set(r.data.subarray(0, buffer.byteLength - n), n);
          n += Math.min(r.data.byteLength, buffer.byteLength - n);
        }
        return n;
      },
      createReadStream(offset = 0, length?: number): Readable {
        if (!Number.isInteger(offset) || offset < 0) throw new InvalidArgumentError(`invalid offset ${offset}`);
        const start = Math.min(offset, size);
        const len = length === undefined ? size - start : Math.min(length, size - start);
        if (len <= 0) return Readable.from([]);
        // One Read call per window: grpc-js buffers up to 16 replies of a call (16 MiB of
        // containerd's 1 MiB chunks) whatever the reader takes, so a call never asks for more.
        return Readable.from(
          (async function* () {
            for (let at = start; at < start + len; at += READ_WINDOW) {
              for await (const r of chunks(at, Math.min(READ_WINDOW, start + len - at))) yield r.data;
            }
          })(),
          { objectMode: false },
        );
      },
      async close() {
        // Nothing is held open between reads.
      },
    };
  }

  /** The interface's wording for a missing ingest, whatever context the server added. */
  private missingRef(ref: string) {
    return (err: unknown): never => {
      throw isNotFound(err) ? new NotFoundError(`reference ${ref}`, { cause: err }) : err;
    };
  }

  async status(ref: string): Promise<Status> {
    if (!ref) throw new InvalidArgumentError('ref must not be empty');
    const res = await this.client.status({ ref }).catch(this.missingRef(ref));
    return fromStatus(res.status, ref);
  }

  async listStatuses(filter?: StatusFilter): Promise<Status[]> {
    const res = await this.client.listStatuses({ filters: [] });
    return res.statuses.map((s) => fromStatus(s, s.ref)).filter((s) => !filter || filter(s));
  }

  async abort(ref: string): Promise<void> {
    await this.client.abort({ ref }).catch(this.missingRef(ref));
  }

  async writer(options: WriterOptions): Promise<Writer> {
    if (!options.ref) throw new InvalidArgumentError('ref must not be empty');
    if (options.expected) parseDigest(options.expected);
    const call = this.client.write();
    const w = new ProxyWriter(options.ref, call);
    try {
      await w.open(options.total ?? 0, options.expected);
    } catch (err) {
      call.cancel();
      throw err;
    }
    return w;
  }

  /** Closes the connection. */
  close(): void {
    this.client.close();
  }
}

/**
 * One Write stream: each request gets one reply, in order, so operations are queued and a write
 * issued without awaiting the previous one still lands at the right offset.
 */
class ProxyWriter implements Writer {
  private queue: Promise<unknown> = Promise.resolve();
  private offset = 0;
  private total = 0;
  private expected?: Digest;
  private startedAt = epoch;
  private updatedAt = epoch;
  private committed?: Digest;
  private closed = false;

  constructor(
    readonly ref: string,
    private readonly call: DuplexCall<api.WriteContentRequest, api.WriteContentResponse>,
  ) {}

  /** Queues a request; `build` runs when its turn comes, so it sees the offset the replies before it left. */
  private send(build: () => Partial<api.WriteContentRequest>): Promise<api.WriteContentResponse> {
    const run = async () => {
      if (this.closed) throw new FailedPreconditionError(`writer for ${this.ref} is closed`);
      const req = build();
      this.call.write({ action: api.WriteAction.STAT, ref: this.ref, total: 0, expected: '', offset: 0, data: Buffer.alloc(0), labels: {}, ...req });
      const res = await this.call.read();
      if (!res) throw new FailedPreconditionError(`content server ended the write of ${this.ref}`);
      this.offset = Number(res.offset);
      if (res.total) this.total = Number(res.total);
      if (req.action === api.WriteAction.STAT) {
        this.startedAt = res.startedAt ?? epoch;
        this.updatedAt = res.updatedAt ?? epoch;
      }
      return res;
    };
    const p = this.queue.then(run, run);
    this.queue = p.catch(() => undefined);
    return p;
  }

  async open(total: number, expected?: Digest): Promise<void> {
    this.expected = expected;
    await this.send(() => ({ action: api.WriteAction.STAT, total, expected: expected ?? '' }));
  }

  async write(chunk: Uint8Array): Promise<number> {
    const data = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    await this.send(() => ({ action: api.WriteAction.WRITE, offset: this.offset, data }));
    return chunk.byteLength;
  }

  async commit(size: number, expected?: Digest, labels: Labels = {}): Promise<void> {
    if (expected) parseDigest(expected);
    try {
      const res = await this.send(() => ({ action: api.WriteAction.COMMIT, offset: this.offset, total: size, expected: expected ?? '', labels }));
      this.committed = res.digest as Digest;
    } catch (err) {
      // The server names an expected digest it has in its own words; the interface says `content <digest>`.
      if (isAlreadyExists(err) && expected) throw new AlreadyExistsError(`content ${expected}`, { cause: err });
      throw err;
    } finally {
      this.end();
    }
  }

  async truncate(size: number): Promise<void> {
    if (size !== 0) throw new NotImplementedError('truncate to a size other than 0');
    await this.send(() => ({ action: api.WriteAction.WRITE, offset: 0 }));
  }

  async digest(): Promise<Digest> {
    if (this.committed) return this.committed;
    return (await this.send(() => ({ action: api.WriteAction.STAT }))).digest as Digest;
  }

  async status(): Promise<Status> {
    if (!this.closed) await this.send(() => ({ action: api.WriteAction.STAT }));
    return { ref: this.ref, offset: this.offset, total: this.total, ...(this.expected ? { expected: this.expected } : {}), startedAt: this.startedAt, updatedAt: this.updatedAt };
  }

  async close(): Promise<void> {
    await this.queue;
    this.end();
  }

  private end(): void {
    if (this.closed) return;
    this.closed = true;
    this.call.end();
  }
}
