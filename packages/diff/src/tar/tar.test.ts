import * as fs from 'node:fs';
import { join } from 'node:path';
import { isInvalidArgument } from '@berth/errdefs';
import { buildTar, readAll, sh, tempDir } from '../test-helpers';
import { TarType, encodeHeader, makeHeader, parsePaxTime, formatPaxTime } from '.';

const LONG_DIR = 'd'.repeat(60) + '/' + 'e'.repeat(60) + '/' + 'f'.repeat(60); // > 155: needs PAX/GNU
const NAME_120 = 'n'.repeat(120); // > 100, one component: no ustar split
const NAME_300 = `${LONG_DIR}/${'g'.repeat(110)}`; // > 255

describe('tar reader against GNU tar', () => {
  let dir: string;
  beforeAll(() => {
    dir = tempDir();
    const src = join(dir, 'src');
    fs.mkdirSync(join(src, LONG_DIR), { recursive: true });
    fs.writeFileSync(join(src, NAME_120), 'long name');
    fs.writeFileSync(join(src, NAME_300), 'x'.repeat(1000));
    fs.writeFileSync(join(src, 'suid'), 'suid');
    fs.chownSync(join(src, 'suid'), 3_000_000, 42); // uid beyond ustar's 7 octal digits
    fs.chmodSync(join(src, 'suid'), 0o4755); // after chown, which clears setuid
    fs.linkSync(join(src, 'suid'), join(src, 'hard'));
    fs.symlinkSync(`/${'t'.repeat(150)}`, join(src, 'longlink'));
    fs.mkdirSync(join(src, 'sticky'));
    fs.chmodSync(join(src, 'sticky'), 0o1777);
    sh(`mknod ${src}/null c 1 3 && mknod ${src}/loop b 7 200 && mkfifo ${src}/fifo`);
    sh(`setfattr -n user.color -v blue ${src}/suid && setfattr -n trusted.bin -v 0x00ff01 ${src}/sticky`);
    sh(`touch -h -d '2021-03-04 05:06:07.123456789' ${src}/suid`);
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('reads a --format=pax archive: long names, big uid, fractional mtime, xattrs, all types', async () => {
    sh(`tar --format=pax --xattrs --xattrs-include='*' -C src -cf pax.tar .`, dir);
    const entries = await readAll(fs.readFileSync(join(dir, 'pax.tar')));
    const by = new Map(entries.map((e) => [e.header.name.replace(/^\.\//, ''), e]));
    expect(by.get(NAME_120)?.data.toString()).toBe('long name');
    expect(by.get(NAME_300)?.data.length).toBe(1000);
    expect(by.get(`${LONG_DIR}/`)?.header.type).toBe(TarType.Directory);
    const suid = by.get('suid')!.header;
    expect(suid).toMatchObject({ mode: 0o4755, uid: 3_000_000, gid: 42, size: 4 });
    expect(suid.mtime.nsec).toBe(123456789);
    expect(suid.xattrs.get('user.color')?.toString()).toBe('blue');
    expect(by.get('hard')?.header).toMatchObject({ type: TarType.HardLink, linkname: './suid', size: 0 });
    expect(by.get('longlink')?.header).toMatchObject({ type: TarType.Symlink, linkname: `/${'t'.repeat(150)}` });
    expect(by.get('sticky/')?.header.mode).toBe(0o1777);
    expect(by.get('sticky/')?.header.xattrs.get('trusted.bin')).toEqual(Buffer.from([0, 0xff, 1]));
    expect(by.get('null')?.header).toMatchObject({ type: TarType.Char, devmajor: 1, devminor: 3 });
    expect(by.get('loop')?.header).toMatchObject({ type: TarType.Block, devmajor: 7, devminor: 200 });
    expect(by.get('fifo')?.header.type).toBe(TarType.Fifo);
  });

  it('reads a --format=gnu archive: long names and links, base-256 uid', async () => {
    sh(`tar --format=gnu -C src -cf gnu.tar .`, dir);
    const entries = await readAll(fs.readFileSync(join(dir, 'gnu.tar')));
    const by = new Map(entries.map((e) => [e.header.name.replace(/^\.\//, ''), e]));
    expect(by.get(NAME_300)?.data.length).toBe(1000);
    expect(by.get(NAME_120)?.data.toString()).toBe('long name');
    expect(by.get('suid')?.header).toMatchObject({ uid: 3_000_000, mode: 0o4755 });
    expect(by.get('longlink')?.header.linkname).toBe(`/${'t'.repeat(150)}`);
  });
});

describe('tar writer read by GNU tar', () => {
  let dir: string;
  beforeEach(() => {
    dir = tempDir();
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  const entries = (): Array<[Parameters<typeof makeHeader>[0], string?]> => [
    [{ name: 'dir/', type: TarType.Directory, mode: 0o2755, uid: 1000, gid: 1000, mtime: { sec: 1_600_000_000, nsec: 0 } }],
    [{ name: 'dir/file', mode: 0o4711, uid: 3_000_000, gid: 5, mtime: { sec: 1_600_000_001, nsec: 500_000_000 }, xattrs: new Map([['user.k', Buffer.from('v\n=1')]]) }, 'hello'],
    [{ name: `dir/${NAME_120}`, mtime: { sec: 1_600_000_002, nsec: 0 } }, 'a'.repeat(513)],
    [{ name: NAME_300, mtime: { sec: 1_600_000_003, nsec: 0 } }, ''],
    [{ name: 'dir/hard', type: TarType.HardLink, linkname: 'dir/file' }],
    [{ name: 'sym', type: TarType.Symlink, linkname: 'x'.repeat(200), mtime: { sec: 1_600_000_004, nsec: 0 } }],
    [{ name: 'chr', type: TarType.Char, devmajor: 1, devminor: 5, mode: 0o666 }],
    [{ name: 'blk', type: TarType.Block, devmajor: 8, devminor: 1, mode: 0o660 }],
    [{ name: 'fifo', type: TarType.Fifo, mode: 0o600 }],
    [{ name: 'ünïcode', uname: 'üser' }, 'u'],
  ];

  it('writes PAX archives that tar lists and extracts with xattrs, owners and modes', async () => {
    const tar = await buildTar(entries());
    fs.writeFileSync(join(dir, 'a.tar'), tar);
    const list = sh('tar -tvf a.tar', dir);
    expect(list).toContain(NAME_300);
    expect(list).toContain(`dir/${NAME_120}`);
    expect(list).toContain('dir/hard link to dir/file');
    expect(list).toMatch(/-rws--x--x 3000000\/5\s+5 2020-09-13 \d\d:\d\d dir\/file/);
    fs.mkdirSync(join(dir, 'x'));
    sh(`tar --xattrs --xattrs-include='*' -xpf a.tar -C x`, dir);
    const st = fs.statSync(join(dir, 'x/dir/file'));
    expect({ mode: st.mode & 0o7777, uid: st.uid, gid: st.gid, nlink: st.nlink }).toEqual({ mode: 0o4711, uid: 3_000_000, gid: 5, nlink: 2 });
    expect(st.mtimeMs).toBe(1_600_000_001_500);
    expect(sh(`getfattr --absolute-names -n user.k --only-values ${dir}/x/dir/file`)).toBe('v\n=1');
    expect(fs.statSync(join(dir, 'x/dir')).mode & 0o7777).toBe(0o2755);
    expect(fs.readlinkSync(join(dir, 'x/sym'))).toBe('x'.repeat(200));
    expect(fs.statSync(join(dir, 'x/chr')).rdev).toBe(fs.statSync('/dev/zero').rdev);
    expect(fs.statSync(join(dir, 'x/fifo')).isFIFO()).toBe(true);
    expect(fs.readFileSync(join(dir, 'x', NAME_300)).length).toBe(0);
    expect(fs.readFileSync(join(dir, 'x/ünïcode'), 'utf8')).toBe('u');
    // And it reads back to the same headers.
    const back = await readAll(tar);
    expect(back.map((e) => e.header.name)).toEqual(entries().map(([h]) => h.name));
    expect(back[1].header.mtime).toEqual({ sec: 1_600_000_001, nsec: 500_000_000 });
    expect(back[9].header.uname).toBe('üser');
  });

  it('writes GNU archives (long names, base-256 numbers) that tar reads', async () => {
    const tar = await buildTar(entries().filter(([h]) => h.xattrs === undefined).map(([h, b]) => [{ ...h, mtime: { sec: h.mtime?.sec ?? 0, nsec: 0 } }, b]), 'gnu');
    fs.writeFileSync(join(dir, 'g.tar'), tar);
    const list = sh('tar -tvf g.tar', dir);
    expect(list).toContain(NAME_300);
    expect(list).toContain('x'.repeat(200));
    const big = await buildTar([[{ name: 'big', uid: 3_000_000, gid: 4_294_967_294, mtime: { sec: -86400, nsec: 0 } }, 'b']], 'gnu');
    fs.writeFileSync(join(dir, 'big.tar'), big);
    expect(sh('tar --numeric-owner -tvf big.tar', dir)).toMatch(/3000000\/4294967294 .* 1969-12-31/);
    const [e] = await readAll(big);
    expect(e.header).toMatchObject({ uid: 3_000_000, gid: 4_294_967_294, mtime: { sec: -86400, nsec: 0 } });
  });

  it('applies PAX global headers to the entries after them', async () => {
    const records = Buffer.from('20 uname=globaluser\n');
    const tar = await buildTar([[{ name: 'g', type: TarType.PaxGlobal }, records.toString()], [{ name: 'a' }, 'a'], [{ name: 'b', uname: 'own' }, 'b']]);
    const got = await readAll(tar);
    expect(got.map((e) => [e.header.name, e.header.uname])).toEqual([['a', 'globaluser'], ['b', 'globaluser']]);
  });
});

describe('tar reader errors', () => {
  it('rejects a bad checksum and a truncated archive as invalid arguments', async () => {
    const tar = await buildTar([[{ name: 'a' }, 'x'.repeat(2000)]]);
    const bad = Buffer.from(tar);
    bad[10] ^= 1;
    await expect(readAll(bad)).rejects.toThrow(/checksum/);
    const err = await readAll(tar.subarray(0, 1200)).catch((e) => e);
    expect(isInvalidArgument(err)).toBe(true);
    expect(err.message).toMatch(/unexpected end of archive/);
  });

  it('skips unread bodies and refuses oversized metadata', async () => {
    const tar = await buildTar([[{ name: 'a' }, 'A'.repeat(3000)], [{ name: 'b' }, 'B']]);
    const { readTar } = await import('./reader');
    const names: string[] = [];
    for await (const e of readTar([tar])) names.push(e.header.name);
    expect(names).toEqual(['a', 'b']);
    const huge = encodeHeader(makeHeader({ name: 'x', type: TarType.GnuLongName, size: 10 * 2 ** 30 }));
    await expect(readAll(Buffer.concat([huge, Buffer.alloc(1024)]))).rejects.toThrow(/exceeds/);
  });

  it.each([
    ['0', { sec: 0, nsec: 0 }],
    ['1.5', { sec: 1, nsec: 500_000_000 }],
    ['-1.25', { sec: -2, nsec: 750_000_000 }],
    ['1234567890.123456789', { sec: 1234567890, nsec: 123456789 }],
  ])('PAX time %s', (text, t) => {
    expect(parsePaxTime(text)).toEqual(t);
    expect(formatPaxTime(t)).toBe(text);
  });
});

describe('tar reader: owner ids', () => {
  it('refuses a uid or gid beyond 32 bits (a damaged header) with InvalidArgument, not a RangeError at chown', async () => {
    const tar = await buildTar([[{ name: 'a', gid: 2 ** 40 }, 'x']]);
    const err = await readAll(tar).then(() => undefined, (e: Error) => e);
    expect(isInvalidArgument(err)).toBe(true);
    expect(err?.message).toMatch(/gid 1099511627776 is out of range/);
  });
});
