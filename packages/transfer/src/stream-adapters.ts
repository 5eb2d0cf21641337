import { normalizeTypeUrl, packAny, typeUrlOf, unpackAnyAs } from '@berth/api';
import { AuthRequest, AuthResponse, AuthType, Progress } from '@berth/api/transfer';
import type { CredentialsProvider, RegistryCredentials } from '@berth/remotes';
import type { Stream } from '@berth/streaming';
import type { ProgressEvent, ProgressSink } from './types';

/**
 * A progress sink that sends each event as a Progress frame on the client's progress stream, in
 * order. Sending never fails the transfer: a client that went away just stops seeing progress.
 *
 * `finish` makes containerd's final pass (the last event of every named node is sent again, after
 * the operation's closing status line) and resolves once everything was handed to the stream.
 * ctr shows a new status line only when a named event follows it, so without that pass it would
 * never print `Completed ...`.
 */
export function progressToStream(stream: Stream): { sink: ProgressSink; finish(): Promise<void> } {
  let tail: Promise<void> = Promise.resolve();
  const latest = new Map<string, ProgressEvent>();
  const send = (e: ProgressEvent) => {
    const frame = packAny(Progress, {
      event: e.event,
      name: e.name ?? '',
      parents: e.parents ?? [],
      progress: e.progress ?? 0,
      total: e.total ?? 0,
      desc: e.desc && { mediaType: e.desc.mediaType, digest: e.desc.digest, size: e.desc.size, annotations: e.desc.annotations ?? {} },
    });
    tail = tail.then(() => stream.send(frame)).catch(() => undefined);
  };
  const sink: ProgressSink = (e) => {
    if (e.name) latest.set(e.name, e);
    send(e);
  };
  return {
    sink,
    finish: () => {
      for (const e of latest.values()) send(e);
      return tail;
    },
  };
}

/**
 * Credentials asked of the client over its auth stream, as containerd's transfer service asks
 * ctr: one AuthRequest{host, reference} at a time, answered by one AuthResponse. CREDENTIALS
 * gives a username and secret; REFRESH a refresh token (an empty one means anonymous); any other
 * answer means anonymous.
 */
export function credentialsFromStream(stream: Stream, reference: string, signal?: AbortSignal): CredentialsProvider {
  let tail: Promise<unknown> = Promise.resolve();
  const ask = async (host: string): Promise<RegistryCredentials | undefined> => {
    await stream.send(packAny(AuthRequest, { host, reference, wwwauthenticate: [] }));
    for (;;) {
      const frame = await stream.recv(signal);
      if (normalizeTypeUrl(frame.typeUrl) !== typeUrlOf(AuthResponse)) continue;
      const r = unpackAnyAs(frame, AuthResponse);
      if (r.authType === AuthType.CREDENTIALS) return { username: r.username, secret: r.secret };
      if (r.authType === AuthType.REFRESH && r.secret !== '') return { refreshToken: r.secret };
      return undefined;
    }
  };
  return (host) => {
    const answer = tail.then(() => ask(host));
    tail = answer.catch(() => undefined);
    return answer;
  };
}
