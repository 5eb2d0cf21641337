import { InvalidArgumentError } from '@berth/errdefs';

/** An OCI platform. */
export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
  'os.version'?: string;
  'os.features'?: string[];
}

/** Chooses platforms: `match` says whether one is acceptable, `rank` orders acceptable ones (lower is better). */
export interface PlatformMatcher {
  match(p: Platform): boolean;
  rank(p: Platform): number;
}

/** The platform this process runs on, normalized (`linux/amd64`, `linux/arm64/v8`, ...). */
export function hostPlatform(): Platform {
  const arch = process.arch === 'x64' ? 'amd64' : process.arch === 'ia32' ? '386' : process.arch;
  return normalizePlatform({ os: process.platform === 'win32' ? 'windows' : process.platform, architecture: arch });
}

/** Normalizes os/architecture/variant as containerd does (`x86_64` -> `amd64`, `aarch64` -> `arm64/v8`, ...). */
export function normalizePlatform(p: Platform): Platform {
  const os = p.os.toLowerCase() === 'macos' ? 'darwin' : p.os.toLowerCase();
  let arch = p.architecture.toLowerCase();
  let variant = (p.variant ?? '').toLowerCase();
  switch (arch) {
    case 'i386':
      arch = '386';
      variant = '';
      break;
    case 'x86_64':
    case 'x86-64':
    case 'amd64':
      arch = 'amd64';
      if (variant === 'v1') variant = '';
      break;
    case 'aarch64':
    case 'arm64':
      arch = 'arm64';
      if (variant === '8' || variant === 'v8' || variant === '') variant = 'v8';
      break;
    case 'armhf':
      arch = 'arm';
      variant = 'v7';
      break;
    case 'armel':
      arch = 'arm';
      variant = 'v6';
      break;
    case 'arm':
      if (variant === '' || variant === '7') variant = 'v7';
      else if (/^[5-8]$/.test(variant)) variant = `v${variant}`;
      break;
  }
  const out: Platform = { os, architecture: arch };
  if (variant) out.variant = variant;
  if (p['os.version']) out['os.version'] = p['os.version'];
  return out;
}

/** Parses `os[/arch[/variant]]` or `arch` (os = linux); InvalidArgument when malformed. */
export function parsePlatform(spec: string): Platform {
  const parts = spec.split('/');
  if (parts.length > 3 || parts.some((x) => x === '' || !/^[A-Za-z0-9_.-]+$/.test(x))) {
    throw new InvalidArgumentError(`"${spec}": invalid platform specifier`, { bare: true });
  }
  const knownOs = new Set(['linux', 'windows', 'darwin', 'freebsd', 'netbsd', 'openbsd', 'solaris', 'illumos', 'aix', 'android', 'plan9']);
  if (parts.length === 1 && !knownOs.has(parts[0].toLowerCase())) return normalizePlatform({ os: 'linux', architecture: parts[0] });
  if (parts.length === 1) return normalizePlatform({ os: parts[0], architecture: hostPlatform().architecture });
  return normalizePlatform({ os: parts[0], architecture: parts[1], variant: parts[2] });
}

/** Formats a platform as `os/arch[/variant]`. */
export function formatPlatform(p: Platform): string {
  return [p.os, p.architecture, p.variant].filter((x) => x).join('/');
}

/**
 * The platforms a platform can run, best first (containerd's "only" vector): amd64/vN runs
 * vN..v1; arm64 runs arm64 and arm v8..v5; arm/vN runs vN..v5.
 */
function platformVector(p: Platform): Platform[] {
  const v: Platform[] = [p];
  const base = { os: p.os, ...(p['os.version'] ? { 'os.version': p['os.version'] } : {}) };
  const level = Number((p.variant ?? '').replace(/^v/, ''));
  if (p.architecture === 'amd64' && level > 1) {
    for (let i = level - 1; i >= 1; i--) v.push({ ...base, architecture: 'amd64', ...(i > 1 ? { variant: `v${i}` } : {}) });
  } else if (p.architecture === 'arm64') {
    for (let i = 8; i >= 5; i--) v.push({ ...base, architecture: 'arm', variant: `v${i}` });
  } else if (p.architecture === 'arm' && level > 5) {
    for (let i = level - 1; i >= 5; i--) v.push({ ...base, architecture: 'arm', variant: `v${i}` });
  }
  return v;
}

function same(a: Platform, b: Platform): boolean {
  return a.os === b.os && a.architecture === b.architecture && (a.variant ?? '') === (b.variant ?? '');
}

/**
 * A matcher for the given platforms (strings or values), each with the platforms it can run;
 * earlier platforms rank better. `platformMatcher()` is the host platform.
 */
export function platformMatcher(platforms: ReadonlyArray<Platform | string> = [hostPlatform()]): PlatformMatcher {
  const vector = platforms.flatMap((p) => platformVector(typeof p === 'string' ? parsePlatform(p) : normalizePlatform(p)));
  const rank = (p: Platform) => {
    const n = normalizePlatform(p);
    const i = vector.findIndex((x) => same(x, n));
    return i < 0 ? Number.MAX_SAFE_INTEGER : i;
  };
  return { match: (p) => rank(p) !== Number.MAX_SAFE_INTEGER, rank };
}

/**
 * A matcher that takes exactly the given platforms once normalized (containerd's `Ordered` and
 * `OnlyStrict`): `linux/arm64` does not also take `linux/arm/v8`, nor `linux/amd64/v3` take
 * `linux/amd64`. Earlier platforms rank better. What exports and transfers filter with.
 */
export function strictPlatformMatcher(platforms: ReadonlyArray<Platform | string>): PlatformMatcher {
  const wanted = platforms.map((p) => (typeof p === 'string' ? parsePlatform(p) : normalizePlatform(p)));
  const rank = (p: Platform) => {
    const n = normalizePlatform(p);
    const i = wanted.findIndex((x) => same(x, n));
    return i < 0 ? Number.MAX_SAFE_INTEGER : i;
  };
  return { match: (p) => rank(p) !== Number.MAX_SAFE_INTEGER, rank };
}

/** Matches every platform (`--all-platforms`). */
export const allPlatforms: PlatformMatcher = { match: () => true, rank: () => 0 };
