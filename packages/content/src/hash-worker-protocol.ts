/** Messages between a content writer's thread and the hashing thread (see hash-worker.ts). */

/** To the hashing thread. `upTo`: bytes [0, upTo) of the file are written and are to be hashed. */
export type HashRequest =
  | { op: 'open'; id: number; path: string; algorithm: string; upTo: number }
  | { op: 'grow'; id: number; upTo: number }
  | { op: 'digest'; id: number; seq: number; upTo: number }
  | { op: 'close'; id: number };

/** From the hashing thread: the answer to the `digest` request numbered `seq`. */
export type HashReply = { seq: number; digest: string } | { seq: number; error: string };
