import * as fs from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { kindOf } from '@berth/errdefs';
import { applyLayer } from '../apply';
import { decodeName, encodeName } from '../byte-names';
import { buildTar, readAll, tempDir } from '../test-helpers';
import { TarHeaderInit, TarType } from '.';

/**
 * Bad input is refused with InvalidArgument; any other error fails the property, with its text.
 * GNU sparse files are the one NotImplemented (a valid archive Berth does not read).
 */
async function refusedOnlyAsInvalidArgument(run: () => Promise<unknown>): Promise<void> {
  try {
    await run();
  } catch (err) {
    const kind = kindOf(err);
    if (kind === 'not-implemented' && /sparse/.test(String(err))) return;
    expect(`${kind}: ${String(err)}`).toMatch(/^invalid-argument: /);
  }
}

const nameBytes = fc.uint8Array({ minLength: 1, maxLength: 120 }).map((b) => decodeName(Buffer.from(b.map((c) => (c === 0 ? 0x61 : c)))));
const time = fc.record({ sec: fc.integer({ min: -1e10, max: 1e11 }), nsec: fc.integer({ min: 0, max: 999_999_999 }) });
const entry: fc.Arbitrary<[TarHeaderInit, Buffer?]> = fc.oneof(
  fc.tuple(fc.record({
    name: nameBytes, mode: fc.integer({ min: 0, max: 0o7777 }), uid: fc.nat(), gid: fc.nat(), mtime: time,
    uname: fc.string({ maxLength: 40 }), xattrs: fc.array(fc.tuple(fc.string({ minLength: 1, maxLength: 20 }).filter((k) => !k.includes('=') && !k.includes('\0')), fc.uint8Array({ maxLength: 30 })), { maxLength: 2 }).map((kv) => new Map(kv.map(([k, v]) => [`user.${k}`, Buffer.from(v)]))),
  }), fc.uint8Array({ maxLength: 1500 }).map((b) => Buffer.from(b))),
  fc.tuple(fc.record({ name: nameBytes, type: fc.constantFrom(TarType.Symlink, TarType.HardLink), linkname: nameBytes })),
  fc.tuple(fc.record({ name: nameBytes, type: fc.constantFrom(TarType.Directory, TarType.Fifo) })),
  fc.tuple(fc.record({ name: nameBytes, type: fc.constantFrom(TarType.Char, TarType.Block), devmajor: fc.nat({ max: 4095 }), devminor: fc.nat({ max: 1 << 20 }) })),
);
/** Entries and a format; the gnu format carries no xattrs and no sub-second times. */
const archive = fc.tuple(fc.array(entry, { minLength: 1, maxLength: 5 }), fc.constantFrom('pax' as const, 'gnu' as const))
  .map(([entries, format]) => ({
    entries: format === 'gnu' ? entries.map(([h, b]): [TarHeaderInit, Buffer?] => [{ ...h, xattrs: undefined, mtime: h.mtime && { sec: h.mtime.sec, nsec: 0 } }, b]) : entries,
    format,
  }));

describe('tar reader: properties', () => {
  it('reads back what the writer wrote: names, link targets and data byte for byte', async () => {
    await fc.assert(fc.asyncProperty(archive, async ({ entries, format }) => {
      const back = await readAll(await buildTar(entries, format));
      expect(back.map((e) => [encodeName(e.header.name).toString('hex'), encodeName(e.header.linkname).toString('hex'), e.data.toString('hex')]))
        .toEqual(entries.map(([h, b]) => [encodeName(h.name).toString('hex'), encodeName(h.linkname ?? '').toString('hex'), [TarType.Symlink, TarType.HardLink, TarType.Directory, TarType.Fifo, TarType.Char, TarType.Block].includes(h.type ?? '0') ? '' : (b ?? Buffer.alloc(0)).toString('hex')]));
    }), { numRuns: 300 });
  });

  it('takes any bytes: entries, or InvalidArgument', async () => {
    await fc.assert(fc.asyncProperty(fc.uint8Array({ maxLength: 3000 }), (b) => refusedOnlyAsInvalidArgument(() => readAll(Buffer.from(b)))), { numRuns: 2000 });
  });

  it('takes any truncation or corruption of a valid archive: entries, or InvalidArgument', async () => {
    const damaged = fc.tuple(archive, fc.nat(), fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 4 }), fc.boolean());
    await fc.assert(fc.asyncProperty(damaged, async ([{ entries, format }, cut, flips, fixChecksums]) => {
      const tar = Buffer.from(await buildTar(entries, format));
      for (const [at, value] of flips) tar[at % tar.length] = value;
      if (fixChecksums) rechecksum(tar);
      await refusedOnlyAsInvalidArgument(() => readAll(tar.subarray(0, cut % (tar.length + 1))));
    }), { numRuns: 2000 });
  });

  it('PAX records with any keys and values: entries, or InvalidArgument', async () => {
    const records = fc.array(fc.tuple(
      fc.oneof(fc.constantFrom('path', 'linkpath', 'size', 'uid', 'gid', 'mtime', 'atime', 'ctime', 'uname', 'SCHILY.devmajor', 'SCHILY.xattr.user.a', 'LIBARCHIVE.xattr.user.%zz', 'LIBARCHIVE.xattr.', 'GNU.sparse.size', 'hdrcharset'), fc.string({ maxLength: 20 })),
      fc.oneof(fc.string({ unit: 'binary', maxLength: 30 }), fc.constantFrom('', '-1', '1e3', '9007199254740993', '1.5', '-0.5', '%', 'x'.repeat(3)), fc.integer().map(String)),
    ), { maxLength: 4 });
    await fc.assert(fc.asyncProperty(records, fc.boolean(), async (recs, global) => {
      const body = Buffer.concat(recs.map(([k, v]) => paxRecord(k, v)));
      const tar = await buildTar([[{ name: 'pax', type: global ? TarType.PaxGlobal : TarType.PaxHeader }, body], [{ name: 'f' }, 'data']]);
      await refusedOnlyAsInvalidArgument(() => readAll(tar));
    }), { numRuns: 2000 });
  });
});

describe('applyLayer: properties', () => {
  let dir: string;
  beforeAll(() => {
    dir = tempDir();
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('applies any archive, damaged or not, or refuses it with InvalidArgument; never writes outside', async () => {
    const outside = join(dir, 'outside');
    fs.mkdirSync(outside);
    let n = 0;
    const damaged = fc.tuple(archive, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 2 }), fc.boolean());
    await fc.assert(fc.asyncProperty(damaged, async ([{ entries, format }, flips, overlay]) => {
      const tar = Buffer.from(await buildTar(entries, format));
      for (const [at, value] of flips) tar[at % tar.length] = value;
      rechecksum(tar);
      const root = join(dir, `r${n++}`);
      fs.mkdirSync(root);
      try {
        await refusedOnlyAsInvalidArgument(() => applyLayer(root, (async function* () { yield tar; })(), { overlay }));
      } finally {
        fs.rmSync(root, { recursive: true, force: true });
      }
      expect(fs.readdirSync(outside)).toEqual([]);
      expect(fs.readdirSync(dir).filter((name) => !/^r\d+$/.test(name))).toEqual(['outside']);
    }), { numRuns: 150 });
  });
});

function paxRecord(key: string, value: string): Buffer {
  const body = Buffer.from(` ${key}=${value}\n`);
  let len = body.length + 1;
  while (String(len).length + body.length !== len) len = String(len).length + body.length;
  return Buffer.concat([Buffer.from(String(len)), body]);
}

/** Recomputes every header block's checksum that has a ustar magic, so corruption gets past the check. */
function rechecksum(tar: Buffer): void {
  for (let off = 0; off + 512 <= tar.length; off += 512) {
    if (tar.toString('latin1', off + 257, off + 262) !== 'ustar') continue;
    tar.fill(0x20, off + 148, off + 156);
    let sum = 0;
    for (let i = off; i < off + 512; i++) sum += tar[i];
    tar.write(sum.toString(8).padStart(6, '0') + '\0 ', off + 148, 'latin1');
  }
}
