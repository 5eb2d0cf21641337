import { LocalContentStore, digestOf } from '@berth/content';
import { isAlreadyExists } from '@berth/errdefs';

/**
 * Stores a blob in a local content store at `root` (containerd's layout: blobs/sha256/<hex>), as a
 * pull does: a writer under a ref, the bytes in chunks, a commit against the expected digest.
 * Writing it again answers AlreadyExists, and the blob reads back by digest from any offset.
 */
export async function storeBlob(root: string, chunks: readonly string[]): Promise<{ digest: string; size: number; again: string; tail: string }> {
  const store = await LocalContentStore.open(root);
  const data = chunks.join('');
  const digest = digestOf(data);
  const w = await store.writer({ ref: 'readme-upload', total: data.length, expected: digest });
  for (const chunk of chunks) await w.write(Buffer.from(chunk));
  await w.commit(data.length, digest);

  const again = await store.writer({ ref: 'readme-again', expected: digest }).then(
    () => 'written twice',
    (err) => (isAlreadyExists(err) ? 'already exists' : String(err)),
  );
  const info = await store.info(digest);
  const reader = await store.readerAt({ digest, size: info.size });
  try {
    const tail = Buffer.alloc(5);
    await reader.readAt(tail, info.size - 5);
    return { digest: info.digest, size: info.size, again, tail: tail.toString() };
  } finally {
    await reader.close();
  }
}
