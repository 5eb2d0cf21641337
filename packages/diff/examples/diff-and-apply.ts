import { cpSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { applyLayer, writeDiff } from '@berth/diff';

/**
 * Computes the OCI layer between two directory trees, as a commit does (a changed file, a new
 * one, and a deleted one as a whiteout), and applies it onto a copy of the old tree, as an unpack
 * does: the copy becomes the new tree. Returns the layer's diff ID from both sides, and what the
 * copy holds afterwards.
 */
export async function diffAndApply(dir: string): Promise<{ written: string; applied: string; files: string[]; a: string }> {
  const [before, after, target] = ['before', 'after', 'target'].map((d) => join(dir, d));
  mkdirSync(before, { recursive: true });
  writeFileSync(join(before, 'a.txt'), 'one\n');
  writeFileSync(join(before, 'b.txt'), 'deleted in the layer\n');
  cpSync(before, after, { recursive: true, preserveTimestamps: true });
  cpSync(before, target, { recursive: true, preserveTimestamps: true });
  writeFileSync(join(after, 'a.txt'), 'two\n');
  writeFileSync(join(after, 'c.txt'), 'new\n');
  rmSync(join(after, 'b.txt'));

  const tar: Buffer[] = [];
  const written = await writeDiff(before, after, (chunk) => void tar.push(Buffer.from(chunk)));
  const applied = await applyLayer(target, Readable.from([Buffer.concat(tar)]));
  return { written: written.digest, applied: applied.digest, files: readdirSync(target).sort(), a: readFileSync(join(target, 'a.txt'), 'utf8') };
}
