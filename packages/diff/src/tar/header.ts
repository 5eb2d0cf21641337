/**
 * The tar entry model shared by the reader and the writer: one header per archive member, with
 * the PAX and GNU extensions already folded in (long names, big numbers, fractional times,
 * extended attributes).
 */

/** Typeflags of the entries Berth reads and writes (POSIX ustar values). */
export const TarType = {
  File: '0',
  HardLink: '1',
  Symlink: '2',
  Char: '3',
  Block: '4',
  Directory: '5',
  Fifo: '6',
  /** Contiguous file: read as a regular file. */
  Contiguous: '7',
  PaxHeader: 'x',
  PaxGlobal: 'g',
  GnuLongName: 'L',
  GnuLongLink: 'K',
} as const;

/** A point in time with nanosecond precision: whole seconds since the epoch (may be negative) and 0..999999999 ns. */
export interface TarTime {
  sec: number;
  nsec: number;
}

/** One archive member as the reader yields it and the writer takes it. */
export interface TarHeader {
  /** Path inside the archive, as stored (directories usually end in '/'). */
  name: string;
  /** Typeflag, one of {@link TarType}; the old '\0' is normalised to '0'. */
  type: string;
  /** Permission bits including setuid (0o4000), setgid (0o2000) and sticky (0o1000). */
  mode: number;
  uid: number;
  gid: number;
  /** Data bytes that follow the header; always 0 for links, directories and devices. */
  size: number;
  mtime: TarTime;
  /** Access and change times, present only when a PAX header carried them. */
  atime?: TarTime;
  ctime?: TarTime;
  /** Target of a hard link (an archive path) or of a symlink (taken verbatim). */
  linkname: string;
  uname: string;
  gname: string;
  devmajor: number;
  devminor: number;
  /** Extended attributes (`SCHILY.xattr.<name>` PAX records), name to raw value. */
  xattrs: Map<string, Buffer>;
  /** PAX records this model does not interpret, kept verbatim. */
  pax: Map<string, string>;
}

/** A header with only the fields that matter given; the rest default (mode 0o644, owner 0, time 0). */
export type TarHeaderInit = Partial<TarHeader> & { name: string; type?: string };

/** Fills the defaults of a partial header. */
export function makeHeader(init: TarHeaderInit): TarHeader {
  const type = init.type ?? TarType.File;
  return {
    name: init.name,
    type,
    mode: init.mode ?? (type === TarType.Directory ? 0o755 : 0o644),
    uid: init.uid ?? 0,
    gid: init.gid ?? 0,
    size: init.size ?? 0,
    mtime: init.mtime ?? { sec: 0, nsec: 0 },
    atime: init.atime,
    ctime: init.ctime,
    linkname: init.linkname ?? '',
    uname: init.uname ?? '',
    gname: init.gname ?? '',
    devmajor: init.devmajor ?? 0,
    devminor: init.devminor ?? 0,
    xattrs: init.xattrs ?? new Map(),
    pax: init.pax ?? new Map(),
  };
}

/** Types whose header is never followed by data, whatever the size field says. */
export function isHeaderOnly(type: string): boolean {
  return type === TarType.HardLink || type === TarType.Symlink || type === TarType.Char ||
    type === TarType.Block || type === TarType.Directory || type === TarType.Fifo;
}

/** Size of a tar block. */
export const BLOCK = 512;

/** Bytes of padding after `size` data bytes. */
export function padding(size: number): number {
  const r = size % BLOCK;
  return r === 0 ? 0 : BLOCK - r;
}

/** Formats a time as a PAX decimal ("123", "123.5", "-1.25"). */
export function formatPaxTime(t: TarTime): string {
  if (t.nsec === 0) return String(t.sec);
  // sec + nsec/1e9 where nsec is always positive: a negative time -0.5s is sec=-1, nsec=5e8.
  let sec = t.sec;
  let nsec = t.nsec;
  let sign = '';
  if (sec < 0) {
    sign = '-';
    sec = -sec - 1;
    nsec = 1_000_000_000 - nsec;
  }
  const frac = String(nsec).padStart(9, '0').replace(/0+$/, '');
  return `${sign}${sec}.${frac}`;
}

/** Parses a PAX decimal time; returns undefined when malformed. */
export function parsePaxTime(s: string): TarTime | undefined {
  const m = /^(-?)(\d+)(?:\.(\d*))?$/.exec(s);
  if (!m) return undefined;
  const whole = Number(m[2]);
  const frac = (m[3] ?? '').slice(0, 9).padEnd(9, '0');
  const ns = Number(frac);
  if (m[1] !== '-') return { sec: whole, nsec: ns };
  return ns === 0 ? { sec: -whole, nsec: 0 } : { sec: -whole - 1, nsec: 1_000_000_000 - ns };
}
