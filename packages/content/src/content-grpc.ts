import { content as api } from '@berth/api';
import { GO_ZERO_TIME } from '@berth/api/events';
import type { Context } from '@berth/context';
import {
  AlreadyExistsError,
  CanceledError,
  InvalidArgumentError,
  OutOfRangeError,
  isNotFound,
  wrap,
} from '@berth/errdefs';
import { adaptorFromFields, labelsAdaptor, parseAll } from '@berth/filters';
import { type CallContext, type GrpcService, createService } from '@berth/grpc';
import type { Logger } from '@berth/log';
import { parseDigest, type Digest } from './digest';
import { allocReadChunk, encodeReadContentResponse } from './read-response';
import type { DescriptorLike, Info, InfoFilter, Labels, ReaderAt, Status, StatusFilter, Writer, WriterOptions } from './types';

/**
 * What the Content API adapter serves: the daemon's namespaced {@link ContentService}, or one
 * plain store whatever the namespace (`SingleStoreContentApi`, what proxy plugins talk to).
 */
export interface ContentApi {
  info(ctx: Context, digest: Digest): Promise<Info>;
  update(ctx: Context, info: { digest: Digest; labels?: Labels }, fieldpaths?: readonly string[]): Promise<Info>;
  list(ctx: Context, filter?: InfoFilter): Promise<Info[]>;
  delete(ctx: Context, digest: Digest): Promise<void>;
  readerAt(ctx: Context, desc: DescriptorLike): Promise<ReaderAt>;
  status(ctx: Context, ref: string): Promise<Status>;
  listStatuses(ctx: Context, filter?: StatusFilter): Promise<Status[]>;
  abort(ctx: Context, ref: string): Promise<void>;
  writer(ctx: Context, options: WriterOptions): Promise<Writer>;
  /** Whether the blob is there for the caller (a Write naming it as expected then ends AlreadyExists). */
  hold(ctx: Context, digest: Digest): boolean | Promise<boolean>;
}

/** Infos per List reply, as containerd batches them. */
export const LIST_BATCH = 100;
/** Largest data chunk per Read reply (containerd's 1 MiB). */
export const READ_CHUNK = 1 << 20;

/** containerd's Content service, with a single-copy encoder for Read's replies. */
const ContentServiceFastRead = {
  ...api.ContentService,
  read: { ...api.ContentService.read, responseSerialize: encodeReadContentResponse },
};

/**
 * Builds containerd.services.content.v1.Content over the in-process service. The adapter only
 * translates messages and reproduces containerd's per-method wording of bad digests; the
 * semantics live in the store.
 */
export function createContentGrpcService(svc: ContentApi, logger: Logger): GrpcService {
  return createService(
    ContentServiceFastRead,
    {
      info: async (req, ctx) => ({ info: toApiInfo(await svc.info(ctx, validated(req.digest))) }),
      update: async (req, ctx) => {
        const info = req.info ?? { digest: '', size: 0, labels: {} };
        const updated = await svc.update(ctx, { digest: validated(info.digest), labels: { ...info.labels } }, req.updateMask ?? []);
        return { info: toApiInfo(updated) };
      },
      list: async function* (req, ctx) {
        const infos = await svc.list(ctx, infoFilter(req.filters));
        for (let i = 0; i < infos.length; i += LIST_BATCH) {
          // containerd's List leaves updated_at unset (the zero time on the wire).
          yield { info: infos.slice(i, i + LIST_BATCH).map((info) => ({ ...toApiInfo(info), updatedAt: GO_ZERO_TIME })) };
        }
      },
      delete: async (req, ctx) => {
        parseDigest(req.digest); // go-digest's message, bare, as containerd sends it
        await svc.delete(ctx, req.digest);
        return {};
      },
      read: (req, ctx) => read(svc, req, ctx),
      status: async (req, ctx) => {
        try {
          return { status: toApiStatus(await svc.status(ctx, req.ref)) };
        } catch (err) {
          if (isNotFound(err)) throw wrap(err, `could not get status for ref ${JSON.stringify(req.ref)}`);
          throw err;
        }
      },
      listStatuses: async (req, ctx) => ({
        statuses: (await svc.listStatuses(ctx, statusFilter(req.filters))).map(toApiStatus),
      }),
      write: (reqs, ctx) => write(svc, reqs, ctx),
      abort: async (req, ctx) => {
        await svc.abort(ctx, req.ref);
        return {};
      },
    },
    logger,
  );
}

/** Checks a digest for Info and Update: InvalidArgument `"<d>" failed validation`, as containerd. */
function validated(digest: string): Digest {
  try {
    parseDigest(digest);
  } catch (err) {
    throw new InvalidArgumentError(`${JSON.stringify(digest)} failed validation`, { bare: true, cause: err });
  }
  return digest;
}

function toApiInfo(info: Info): api.Info {
  return { digest: info.digest, size: info.size, createdAt: info.createdAt, updatedAt: info.updatedAt, labels: { ...info.labels } };
}

function toApiStatus(st: Status): api.Status {
  return { ref: st.ref, offset: st.offset, total: st.total, expected: st.expected ?? '', startedAt: st.startedAt, updatedAt: st.updatedAt };
}

/**
 * Content List filters: `digest`, `size` and `labels.<k>`. containerd 1.6's adaptor has no `size`
 * field (a size filter there matches nothing, or everything with `!=`); Berth supports it as the
 * issue asks, compared as the decimal string.
 */
function infoFilter(filters: readonly string[]): InfoFilter {
  const filter = parseAll(filters);
  return (info) => filter.match(labelsAdaptor({ digest: info.digest, size: String(info.size) }, info.labels));
}

/** Ingest filters: the field is `ref`. */
function statusFilter(filters: readonly string[]): StatusFilter {
  const filter = parseAll(filters);
  return (st) => filter.match(adaptorFromFields((path) => (path[0] === 'ref' ? st.ref : undefined)));
}

/**
 * Read: offsets below 0 read from 0, an offset past the end is OutOfRange `read past object
 * length N bytes`, a size of 0 or less or past the end reads to the end. Reply offsets count from
 * the requested offset.
 */
async function* read(svc: ContentApi, req: api.ReadContentRequest, ctx: Context): AsyncIterable<api.ReadContentResponse> {
  try {
    parseDigest(req.digest);
  } catch (err) {
    throw wrap(err, req.digest);
  }
  const reader = await svc.readerAt(ctx, { digest: req.digest });
  try {
    const size = reader.size;
    const start = Math.max(0, req.offset);
    if (start > size) throw new OutOfRangeError(`read past object length ${size} bytes`);
    const length = req.size <= 0 || start + req.size > size ? size - start : req.size;
    for (let done = 0; done < length; ) {
      // Between chunks only: the stream writer stops on a cancel before each reply, and the
      // signal costs an AbortController per call (most reads, ctr's 32 KiB ones, are one chunk).
      if (done > 0 && ctx.signal.aborted) return;
      const buffer = allocReadChunk(Math.min(READ_CHUNK, length - done));
      const n = await reader.readAt(buffer, start + done);
      if (n === 0) break;
      yield { offset: done, data: n === buffer.byteLength ? buffer : buffer.subarray(0, n) };
      done += n;
    }
  } finally {
    await reader.close();
  }
}

/** Resolves the next request, or rejects when the call is cancelled while waiting for it. */
function nextOrCancel<T>(it: AsyncIterator<T>, signal: AbortSignal): Promise<IteratorResult<T>> {
  if (signal.aborted) return Promise.reject(signal.reason ?? new CanceledError('call cancelled'));
  return new Promise((resolve, reject) => {
    const onAbort = () => reject(signal.reason ?? new CanceledError('call cancelled'));
    signal.addEventListener('abort', onAbort, { once: true });
    it.next().then(
      (r) => {
        signal.removeEventListener('abort', onAbort);
        resolve(r);
      },
      (e) => {
        signal.removeEventListener('abort', onAbort);
        reject(e);
      },
    );
  });
}

function checkExpected(expected: string): Digest {
  try {
    parseDigest(expected);
  } catch (err) {
    throw wrap(err, `invalid expected digest ${JSON.stringify(expected)}`);
  }
  return expected;
}

/**
 * Write: containerd's STAT / WRITE / COMMIT session. The first message names the ref (and may
 * carry total and expected); every message gets exactly one reply with the writer's offset.
 * WRITE and COMMIT at offset 0 on an ingest with data truncate it first; another offset must be
 * the current one (OutOfRange otherwise). Replies carry the zero time until a STAT, then that
 * STAT's times. The writer is closed, keeping its data for a resume, whenever the stream ends
 * without a commit: client half-close, cancel, or error.
 */
async function* write(svc: ContentApi, reqs: AsyncIterable<api.WriteContentRequest>, ctx: CallContext): AsyncIterable<api.WriteContentResponse> {
  const it = reqs[Symbol.asyncIterator]();
  let next = await nextOrCancel(it, ctx.signal);
  if (next.done) return;
  const first = next.value;
  if (!first.ref) throw new InvalidArgumentError('first message must have a reference', { bare: true });
  const ref = first.ref;
  let expected = first.expected ? checkExpected(first.expected) : undefined;
  const w: Writer = await svc.writer(ctx, { ref, total: first.total, expected });
  let open = true;
  try {
    let total = first.total > 0 ? first.total : (await w.status()).total;
    let startedAt = GO_ZERO_TIME;
    let updatedAt = GO_ZERO_TIME;
    for (;;) {
      const req = next.value;
      if (req.expected) {
        expected = checkExpected(req.expected);
        if (await svc.hold(ctx, expected)) {
          open = false;
          await w.close();
          await svc.abort(ctx, ref).catch(() => undefined);
          throw new AlreadyExistsError(`blob with expected digest ${expected} exists`, { bare: true });
        }
      }
      if (req.total > 0) total = req.total;
      let committed = false;
      if (req.action === api.WriteAction.STAT) {
        const st = await w.status();
        startedAt = st.startedAt;
        updatedAt = st.updatedAt;
      } else if (req.action === api.WriteAction.WRITE || req.action === api.WriteAction.COMMIT) {
        const offset = (await w.status()).offset;
        if (req.offset > 0 && req.offset !== offset) {
          throw new OutOfRangeError(`write @${req.offset} must occur at current offset ${offset}`);
        }
        if (req.offset === 0 && offset > 0) await w.truncate(0);
        if (req.data.byteLength > 0) await w.write(req.data);
        if (req.action === api.WriteAction.COMMIT) {
          open = false;
          await w.commit(total, expected, { ...req.labels });
          committed = true;
        }
      }
      const st = await w.status();
      yield { action: req.action, startedAt, updatedAt, offset: st.offset, total, digest: await w.digest() };
      if (committed) return;
      next = await nextOrCancel(it, ctx.signal);
      if (next.done) return;
    }
  } finally {
    if (open) await w.close();
  }
}
