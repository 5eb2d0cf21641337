import { randomBytes } from 'node:crypto';

/** How long a cached request waits for its client, in ms (containerd's is one minute). */
export const DEFAULT_TOKEN_TTL_MS = 60_000;
/** How many requests may wait at once (containerd's cache holds 1000). */
export const DEFAULT_MAX_PENDING = 1000;

interface Entry<T> {
  value: T;
  expires: number;
}

/**
 * The streaming server's cache of validated requests. Each request gets a single-use token of 8
 * URL-safe base64 characters (6 random bytes) that expires after a TTL. When full, expired
 * entries go first; if none has expired the oldest is dropped, as containerd's LRU does.
 */
export class RequestCache<T> {
  private readonly entries = new Map<string, Entry<T>>();

  constructor(
    private readonly ttlMs = DEFAULT_TOKEN_TTL_MS,
    private readonly max = DEFAULT_MAX_PENDING,
    private readonly now: () => number = Date.now,
  ) {}

  /** Caches a request; returns its token. */
  insert(value: T): string {
    this.evict();
    let token: string;
    do token = randomBytes(6).toString('base64url');
    while (this.entries.has(token));
    this.entries.set(token, { value, expires: this.now() + this.ttlMs });
    return token;
  }

  /** Returns and removes the request of a token; undefined when unknown or expired. */
  consume(token: string): T | undefined {
    const e = this.entries.get(token);
    if (!e) return undefined;
    this.entries.delete(token);
    return e.expires > this.now() ? e.value : undefined;
  }

  /** Number of requests waiting. */
  get size(): number {
    return this.entries.size;
  }

  private evict(): void {
    const now = this.now();
    for (const [k, e] of this.entries) if (e.expires <= now) this.entries.delete(k);
    while (this.entries.size >= this.max) this.entries.delete(this.entries.keys().next().value!);
  }
}
