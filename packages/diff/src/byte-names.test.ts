import * as fs from 'node:fs';
import { join } from 'node:path';
import { applyLayer } from './apply';
import { decodeName, encodeName, fsPath, compareNames } from './byte-names';
import { writeDiff, writeOverlayDiff } from './diff';
import { TarHeaderInit, TarType } from './tar';
import { buildTar, chunks, readAll, sh, tempDir } from './test-helpers';
import { describeTree } from './tree';

/** A name from raw bytes written as a latin1 string ('caf\xe9' is the four bytes 63 61 66 e9). */
const B = (latin1: string) => decodeName(Buffer.from(latin1, 'latin1'));
const bytesOf = (name: string) => encodeName(name).toString('latin1');

describe('decodeName and encodeName', () => {
  it.each([
    ['ascii', 'etc/passwd'],
    ['UTF-8 text', 'ünïcode/日本/😀'],
    ['a lone 0xE9', 'caf\xe9'],
    ['0xFF 0xFE', '\xff\xfe'],
    ['a truncated UTF-8 sequence', 'a\xc3'],
    ['an overlong slash', '\xc0\xaf'],
    ['an encoded surrogate', '\xed\xa0\x80'],
    ['beyond U+10FFFF', '\xf4\x90\x80\x80'],
    ['mixed', 'ok-\xc3\xa9-\xe9-\xf0\x9f\x98\x80-\x80'],
  ])('round-trips %s byte for byte', (_what, latin1) => {
    const bytes = Buffer.from(latin1, 'latin1');
    expect(encodeName(decodeName(bytes))).toEqual(bytes);
  });

  it('keeps valid UTF-8 as text and every other byte as its own escape', () => {
    expect(B('caf\xc3\xa9')).toBe('café');
    expect(B('caf\xe9')).toBe('caf\udce9');
    expect(fsPath('café')).toBe('café');
    expect(fsPath(B('caf\xe9'))).toEqual(Buffer.from('caf\xe9', 'latin1'));
  });

  it('round-trips every 1- and 2-byte sequence and random longer ones', () => {
    const failed: string[] = [];
    const check = (bytes: Buffer) => {
      if (!encodeName(decodeName(bytes)).equals(bytes)) failed.push(bytes.toString('hex'));
    };
    for (let a = 0; a < 256; a++) for (let b = 0; b < 256; b++) check(Buffer.of(a, b));
    let seed = 42;
    const next = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) & 0xff;
    for (let i = 0; i < 5000; i++) check(Buffer.from(Array.from({ length: 1 + (i % 13) }, () => next())));
    expect(failed).toEqual([]);
  });

  it('orders names by their bytes', () => {
    const names = ['\xff', 'b', '\xe9', '\xc3\xa9', 'a\xe9', '\xef\xbf\xbd', '\xf0\x9f\x98\x80'].map(B);
    const sorted = [...names].sort(compareNames).map(bytesOf);
    expect(sorted).toEqual([...names].map(bytesOf).sort((x, y) => Buffer.compare(Buffer.from(x, 'latin1'), Buffer.from(y, 'latin1'))));
  });
});

describe('tar names are bytes', () => {
  let dir: string;
  beforeEach(() => {
    dir = tempDir();
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('reads names and link targets that are not UTF-8 from GNU tar (pax and gnu formats)', async () => {
    const src = join(dir, 'src');
    fs.mkdirSync(src);
    const p = (latin1: string) => Buffer.from(`${src}/${latin1}`, 'latin1');
    fs.mkdirSync(p('d\xff\xfe'));
    fs.writeFileSync(p('d\xff\xfe/caf\xe9'), 'x');
    fs.symlinkSync(Buffer.from('d\xff\xfe/caf\xe9', 'latin1'), p('l\xe9'));
    fs.linkSync(p('d\xff\xfe/caf\xe9'), p('h\xff'));
    fs.mkdirSync(p('\xe9'.repeat(120)));
    fs.writeFileSync(p(`${'\xe9'.repeat(120)}/${'\xfe'.repeat(110)}`), 'long');
    for (const format of ['pax', 'gnu']) {
      sh(`tar --format=${format} -C src -cf ${format}.tar .`, dir);
      const names = (await readAll(fs.readFileSync(join(dir, `${format}.tar`)))).map((e) => [bytesOf(e.header.name), bytesOf(e.header.linkname)]);
      expect(names).toEqual(expect.arrayContaining([
        ['./d\xff\xfe/caf\xe9', ''],
        ['./l\xe9', 'd\xff\xfe/caf\xe9'],
        [`./${'\xe9'.repeat(120)}/${'\xfe'.repeat(110)}`, ''],
      ]));
      expect(names.find(([n]) => n === './h\xff' || n === './d\xff\xfe/caf\xe9')).toBeDefined();
    }
  });

  it('writes them back byte for byte (ustar, PAX path and linkpath, GNU long names), and GNU tar extracts them', async () => {
    const long = `${'\xe9'.repeat(120)}/${'\xfe'.repeat(110)}`;
    const entries: Array<[TarHeaderInit, string?]> = [
      [{ name: B('d\xff\xfe/'), type: TarType.Directory }],
      [{ name: B('d\xff\xfe/caf\xe9'), xattrs: new Map([[B('user.n\xe9'), Buffer.from('v\xe9', 'latin1')]]) }, 'x'],
      [{ name: B('l\xe9'), type: TarType.Symlink, linkname: B('d\xff\xfe/caf\xe9') }],
      [{ name: B('h\xff'), type: TarType.HardLink, linkname: B('d\xff\xfe/caf\xe9') }],
      [{ name: B(long) }, 'long'],
    ];
    for (const format of ['pax', 'gnu'] as const) {
      const usable = format === 'gnu' ? entries.map(([h, b]): [TarHeaderInit, string?] => [{ ...h, xattrs: undefined }, b]) : entries;
      const tar = await buildTar(usable, format);
      const back = await readAll(tar);
      expect(back.map((e) => [bytesOf(e.header.name), bytesOf(e.header.linkname)])).toEqual(usable.map(([h]) => [bytesOf(h.name), bytesOf(h.linkname ?? '')]));
      if (format === 'pax') expect([...back[1].header.xattrs.keys()].map(bytesOf)).toEqual(['user.n\xe9']);
      fs.writeFileSync(join(dir, `${format}.tar`), tar);
      const out = join(dir, format);
      fs.mkdirSync(out);
      sh(`tar -xf ${format}.tar -C ${format}`, dir);
      expect(fs.readFileSync(Buffer.from(`${out}/${long}`, 'latin1'), 'utf8')).toBe('long');
      expect(fs.readlinkSync(Buffer.from(`${out}/l\xe9`, 'latin1'), { encoding: 'buffer' }).toString('latin1')).toBe('d\xff\xfe/caf\xe9');
    }
  });
});

describe('apply and diff keep names that are not UTF-8', () => {
  let dir: string;
  const mounts: string[] = [];
  beforeEach(() => {
    dir = tempDir();
  });
  afterEach(() => {
    for (const m of mounts.splice(0)) sh(`umount ${m} 2>/dev/null || umount -l ${m}`);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const LONG = `${'\xe9'.repeat(60)}/${'\xff'.repeat(80)}`; // > 100 bytes and not UTF-8: a PAX path record
  const layer1 = () => buildTar([
    [{ name: B('d\xff\xfe/'), type: TarType.Directory, mode: 0o750, mtime: { sec: 1000, nsec: 0 } }],
    [{ name: B('d\xff\xfe/caf\xe9'), mode: 0o640, mtime: { sec: 1000, nsec: 0 }, xattrs: new Map([[B('user.n\xe9'), Buffer.from('v')]]) }, 'cafe'],
    [{ name: B('l\xe9'), type: TarType.Symlink, linkname: B('d\xff\xfe/caf\xe9'), mtime: { sec: 1000, nsec: 0 } }],
    [{ name: B('h\xff'), type: TarType.HardLink, linkname: B('d\xff\xfe/caf\xe9') }],
    [{ name: B('p\xe9'), type: TarType.Fifo, mode: 0o600, mtime: { sec: 1000, nsec: 0 } }],
    [{ name: B('old\xe9'), mtime: { sec: 1000, nsec: 0 } }, 'old'],
    // Its directory by name too: an implicit one takes the time of its creation, which differs
    // between two unpacks made a second apart.
    [{ name: B(`${'\xe9'.repeat(60)}/`), type: TarType.Directory, mtime: { sec: 1000, nsec: 0 } }],
    [{ name: B(LONG), mtime: { sec: 1000, nsec: 0 } }, 'long'],
    [{ name: B('\xe9dir/'), type: TarType.Directory, mtime: { sec: 1000, nsec: 0 } }],
    [{ name: B('\xe9dir/a\xfe'), mtime: { sec: 1000, nsec: 0 } }, 'a'],
  ]);
  const layer2 = () => buildTar([
    [{ name: B('.wh.old\xe9') }],
    [{ name: B('\xe9dir/'), type: TarType.Directory, mtime: { sec: 2000, nsec: 0 } }],
    [{ name: B('\xe9dir/.wh..wh..opq') }],
    [{ name: B('\xe9dir/b\xfe'), mtime: { sec: 2000, nsec: 0 } }, 'b'],
    [{ name: B('new\xff\xfe'), mtime: { sec: 2000, nsec: 0 } }, 'new'],
  ]);
  /** The tree as byte names (latin1 strings), with what else must survive. */
  const tree = async (root: string) => (await describeTree(root)).map((e) => ({ ...e, path: bytesOf(e.path), target: e.target && bytesOf(e.target), linkedTo: e.linkedTo && bytesOf(e.linkedTo) }));

  it('unpacks both layers natively and through overlay upper dirs to the same byte-named tree, and diffs them back', async () => {
    const [plain, u1, u2, mnt, lower1] = ['plain', 'u1', 'u2', 'mnt', 'lower1'].map((n) => join(dir, n));
    for (const d of [plain, u1, u2, mnt, lower1]) fs.mkdirSync(d);
    const [l1, l2] = [await layer1(), await layer2()];
    await applyLayer(plain, chunks(l1, 1000));
    await applyLayer(lower1, chunks(l1, 1000));
    await applyLayer(plain, chunks(l2, 1000));
    await applyLayer(u1, chunks(l1, 1000), { overlay: true });
    await applyLayer(u2, chunks(l2, 1000), { overlay: true, parents: [u1] });

    const expected = await tree(plain);
    expect(expected.map((e) => e.path)).toEqual([
      'd\xff\xfe', 'd\xff\xfe/caf\xe9', 'h\xff', 'l\xe9', 'new\xff\xfe', 'p\xe9', '\xe9dir', '\xe9dir/b\xfe', '\xe9'.repeat(60), LONG,
    ]);
    expect(expected.find((e) => e.path === 'l\xe9')?.target).toBe('d\xff\xfe/caf\xe9');
    expect(expected.find((e) => e.path === 'h\xff')?.linkedTo).toBe('d\xff\xfe/caf\xe9');
    expect(expected.find((e) => e.path === 'd\xff\xfe/caf\xe9')).toMatchObject({ mode: '0640', xattrs: { [B('user.n\xe9')]: Buffer.from('v').toString('base64') } });
    expect(expected.find((e) => e.path === 'p\xe9')).toMatchObject({ type: 'fifo', mode: '0600' });

    sh(`/bin/mount -t overlay overlay -o lowerdir=${u2}:${u1} ${mnt}`);
    mounts.push(mnt);
    expect(await tree(mnt)).toEqual(expected);
    // The whiteout in the upper dir is an overlay whiteout with the byte name.
    expect(fs.lstatSync(Buffer.from(`${u2}/old\xe9`, 'latin1')).isCharacterDevice()).toBe(true);

    const collect = async (fn: (sink: (b: Buffer) => void) => Promise<unknown>) => {
      const parts: Buffer[] = [];
      await fn((b) => {
        parts.push(Buffer.from(b));
      });
      return (await readAll(Buffer.concat(parts))).map((e) => `${bytesOf(e.header.name)} ${e.header.type}`);
    };
    const layer2Names = ['new\xff\xfe 0', '.wh.old\xe9 0', '\xe9dir/ 5', '\xe9dir/.wh..wh..opq 0', '\xe9dir/b\xfe 0'];
    expect(await collect((sink) => writeOverlayDiff(u2, sink))).toEqual(layer2Names);
    expect(await collect((sink) => writeDiff(lower1, plain, sink))).toEqual(['new\xff\xfe 0', '.wh.old\xe9 0', '\xe9dir/ 5', '\xe9dir/.wh.a\xfe 0', '\xe9dir/b\xfe 0']);
    // The first layer, diffed from nothing, gives back every name and link target it had.
    const empty = join(dir, 'empty');
    fs.mkdirSync(empty);
    const full = await collect((sink) => writeDiff(empty, lower1, sink));
    expect(full).toEqual(expect.arrayContaining(['d\xff\xfe/ 5', 'd\xff\xfe/caf\xe9 0', 'h\xff 1', 'l\xe9 2', 'p\xe9 6', 'old\xe9 0', `${LONG} 0`, '\xe9dir/a\xfe 0']));
  });
});
