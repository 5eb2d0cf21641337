import { closeSync, fstatSync, mkdirSync, openSync, readFileSync, readSync, renameSync, statSync, writeSync } from 'node:fs';
import Module from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Script } from 'node:vm';
import { threadId } from 'node:worker_threads';

/*
 * A V8 code cache for the CommonJS modules a program loads, kept in one file across runs. Node 22
 * has one built in (module.enableCompileCache); Node 20, which Berth runs on, does not.
 *
 * Unlike a cache made as each module is compiled, this one is written from the modules' scripts
 * after they ran (`save`), so it also holds the functions compiled since: the next run starts
 * with the code its predecessor needed, for its start and for its first calls.
 *
 * The file: a 4-byte length, a JSON index (per module file: its mtime and size when cached, and
 * where its data is), then the data. It is replaced whole (written aside, then renamed), so
 * processes that save at once leave one of their files, never a mix. A module whose file changed
 * is compiled again; data V8 rejects (another V8, other flags) is ignored.
 */

interface Entry {
  mtimeMs: number;
  size: number;
  offset: number;
  length: number;
}

/** What a cache did in this process. */
export interface CompileCacheStats {
  /** Modules compiled from cached data. */
  hits: number;
  /** Modules compiled without (none cached, or their file changed). */
  misses: number;
  /** Modules whose cached data V8 refused. */
  rejected: number;
}

/** A source that may call `import()` (a mention in a comment or string only costs its caching). */
const DYNAMIC_IMPORT = /\bimport\s*\(/;

/** The wrapper parameters Node gives a CommonJS module. */
type ModuleWrapper = (exports: unknown, require: NodeJS.Require, module: Module, filename: string, dirname: string) => unknown;

/** Node's CommonJS internals this cache hooks (stable across Node 12 to 22). */
interface ModuleInternals {
  prototype: { _compile(this: Module, content: string, filename: string, format?: string): unknown };
  _resolveFilename(request: string, parent: Module, isMain: boolean, options?: unknown): string;
  _resolveLookupPaths(request: string, parent: Module): string[] | null;
  _extensions: NodeJS.RequireExtensions;
  _cache: NodeJS.Dict<NodeModule>;
  wrap(content: string): string;
}

const internals = Module as unknown as ModuleInternals;

/**
 * The cache file for this Node and architecture. V8 checks the rest itself (its version and the
 * flags that matter) and refuses data made under others, which then counts as `rejected`.
 */
function cacheFileName(): string {
  return `v1-node${process.version}-${process.arch}.bin`;
}

export class CompileCache {
  readonly file: string;
  readonly stats: CompileCacheStats = { hits: 0, misses: 0, rejected: 0 };
  private entries: Record<string, Entry> = {};
  /**
   * The cache file as it was at install, open for reading each module's data when it loads (the
   * file is not held in memory; a file renamed over it meanwhile leaves this one readable).
   */
  private fd: number | undefined;
  private dataStart = 0;
  private dataLength = 0;
  /** The scripts of this process, to write the cache from. */
  private readonly scripts = new Map<string, { script: Script; mtimeMs: number; size: number }>();
  private original: ModuleInternals['prototype']['_compile'] | undefined;

  constructor(readonly dir: string) {
    this.file = join(dir, cacheFileName());
    this.load();
  }

  private load(): void {
    let fd: number | undefined;
    try {
      fd = openSync(this.file, 'r');
      const head = Buffer.alloc(4);
      readExactly(fd, head, 0);
      const index = Buffer.alloc(head.readUInt32LE(0));
      readExactly(fd, index, 4);
      this.entries = JSON.parse(index.toString('utf8')) as Record<string, Entry>;
      this.dataStart = 4 + index.length;
      this.dataLength = fstatSync(fd).size - this.dataStart;
      this.fd = fd;
    } catch {
      // None yet, or damaged: started over at the next save.
      if (fd !== undefined) closeSync(fd);
      this.entries = {};
    }
  }

  /** A module's cached data, read from the file; undefined when it cannot be read. */
  private dataOf(entry: Entry): Buffer | undefined {
    if (this.fd === undefined || entry.offset + entry.length > this.dataLength) return undefined;
    try {
      const data = Buffer.allocUnsafe(entry.length);
      readExactly(this.fd, data, this.dataStart + entry.offset);
      return data;
    } catch {
      return undefined;
    }
  }

  /** Compiles a module's source into its wrapper function, from cached data where it fits. */
  compile(content: string, filename: string): ModuleWrapper {
    let mtimeMs = 0;
    let size = -1;
    try {
      const st = statSync(filename);
      mtimeMs = st.mtimeMs;
      size = st.size;
    } catch {
      // Not a file on disk: compiled without the cache.
    }
    const entry = this.entries[filename];
    const cachedData = entry !== undefined && entry.mtimeMs === mtimeMs && entry.size === size ? this.dataOf(entry) : undefined;
    const script = new Script(internals.wrap(content), { filename, cachedData });
    if (!cachedData) this.stats.misses++;
    else if (script.cachedDataRejected) this.stats.rejected++;
    else this.stats.hits++;
    if (size >= 0) this.scripts.set(filename, { script, mtimeMs, size });
    return script.runInThisContext({ displayErrors: true }) as ModuleWrapper;
  }

  /**
   * Hooks Node's CommonJS loader so that modules loaded from now on go through this cache (files
   * under `node_modules` and the program's own alike). Around it go a source with a `#!` line,
   * one that may use `import()` (a script compiled from cached data loses its dynamic import
   * callback on Node 20: ERR_VM_DYNAMIC_IMPORT_CALLBACK_MISSING), an ES module that require()
   * loads, and a source that does not compile as a script: Node compiles those itself.
   */
  install(): this {
    if (this.original) return this;
    const original = internals.prototype._compile;
    this.original = original;
    const cache = this;
    internals.prototype._compile = function (this: Module, content: string, filename: string, format?: string): unknown {
      // An ES module that require() loads (Node 20.19 and later pass its format), or a source
      // that is not a plain CommonJS script: Node's own path.
      const plain = (format === undefined || format === 'commonjs') && !content.startsWith('#!') && !DYNAMIC_IMPORT.test(content);
      if (!plain) return original.call(this, content, filename, format);
      let wrapper: ModuleWrapper;
      try {
        wrapper = cache.compile(content, filename);
      } catch (err) {
        // ES module syntax in a .js file Node may load as a module after all (syntax detection),
        // or a real syntax error: Node's path decides, and says so in its own words.
        if (err instanceof SyntaxError) return original.call(this, content, filename, format);
        throw err;
      }
      return wrapper.call(this.exports, this.exports, requireFor(this), this, filename, dirname(filename));
    };
    return this;
  }

  /** Unhooks the loader (modules already loaded keep their code) and closes the file. */
  uninstall(): void {
    if (this.original) internals.prototype._compile = this.original;
    this.original = undefined;
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }

  /**
   * Writes the cache: every script this process compiled, with what V8 compiled of them so far,
   * merged with the file as it is now (another thread or process may have written it since this
   * one started); of two versions of a module's data, the larger, which holds more compiled
   * functions, is kept. Never throws: a cache that cannot be written is only slower.
   */
  save(): boolean {
    const parts: Buffer[] = [];
    const entries: Record<string, Entry> = {};
    let offset = 0;
    const add = (filename: string, mtimeMs: number, size: number, data: Buffer) => {
      entries[filename] = { mtimeMs, size, offset, length: data.length };
      parts.push(data);
      offset += data.length;
    };
    try {
      const now = readCacheFile(this.file);
      const onDisk = (filename: string, mtimeMs?: number, size?: number): Buffer | undefined => {
        const e = now.entries[filename];
        if (!e || e.offset + e.length > now.data.length) return undefined;
        if (mtimeMs !== undefined && (e.mtimeMs !== mtimeMs || e.size !== size)) return undefined;
        return now.data.subarray(e.offset, e.offset + e.length);
      };
      for (const [filename, { script, mtimeMs, size }] of this.scripts) {
        const mine = script.createCachedData();
        const theirs = onDisk(filename, mtimeMs, size);
        add(filename, mtimeMs, size, theirs && theirs.length > mine.length ? theirs : mine);
      }
      for (const [filename, e] of Object.entries(now.entries)) {
        // Another program's modules (another checkout, another version) stay while their files
        // do, unchanged; the others go, so the file holds live code only.
        if (this.scripts.has(filename) || !unchanged(filename, e)) continue;
        const data = onDisk(filename);
        if (data) add(filename, e.mtimeMs, e.size, data);
      }
      const index = Buffer.from(JSON.stringify(entries));
      const head = Buffer.alloc(4);
      head.writeUInt32LE(index.length, 0);
      mkdirSync(this.dir, { recursive: true, mode: 0o700 });
      const temp = `${this.file}.${process.pid}.${threadId}.tmp`;
      const fd = openSync(temp, 'w', 0o600);
      try {
        for (const b of [head, index, ...parts]) writeSync(fd, b);
        if (fstatSync(fd).size !== 4 + index.length + offset) throw new Error('short write');
      } finally {
        closeSync(fd);
      }
      renameSync(temp, this.file);
      return true;
    } catch {
      return false;
    }
  }

  /**
   * {@link save}s when this process missed the cache (a module compiled without data, or its data
   * refused) or the file is older than `maxAgeMs` (default a minute), so that programs started
   * in a row, all served by the cache, do not each write it again. Returns whether it wrote.
   */
  saveIfStale(maxAgeMs = 60_000): boolean {
    let age = Infinity;
    try {
      age = Date.now() - statSync(this.file).mtimeMs;
    } catch {
      // none yet
    }
    if (this.stats.misses + this.stats.rejected === 0 && age < maxAgeMs) return false;
    return this.save();
  }
}

/** Whether a module file is still the one an entry was made from. */
function unchanged(filename: string, e: Entry): boolean {
  try {
    const st = statSync(filename);
    return st.mtimeMs === e.mtimeMs && st.size === e.size;
  } catch {
    return false;
  }
}

/** Fills `buffer` from `fd` at `position`; throws when the file is shorter. */
function readExactly(fd: number, buffer: Buffer, position: number): void {
  let done = 0;
  while (done < buffer.length) {
    const n = readSync(fd, buffer, done, buffer.length - done, position + done);
    if (n === 0) throw new Error('cache file is shorter than its index says');
    done += n;
  }
}

/** A cache file's index and data; empty when it is missing or damaged. */
function readCacheFile(file: string): { entries: Record<string, Entry>; data: Buffer } {
  try {
    const raw = readFileSync(file);
    const indexLength = raw.readUInt32LE(0);
    const entries = JSON.parse(raw.toString('utf8', 4, 4 + indexLength)) as Record<string, Entry>;
    return { entries, data: raw.subarray(4 + indexLength) };
  } catch {
    return { entries: {}, data: Buffer.alloc(0) };
  }
}

/** The `require` a module gets (what Node's own loader builds for it). */
function requireFor(mod: Module): NodeJS.Require {
  const require = ((id: string) => mod.require(id)) as NodeJS.Require;
  const resolve = ((request: string, options?: { paths?: string[] }) => internals._resolveFilename(request, mod, false, options)) as NodeJS.RequireResolve;
  resolve.paths = (request: string) => internals._resolveLookupPaths(request, mod);
  require.resolve = resolve;
  require.main = process.mainModule;
  require.extensions = internals._extensions;
  require.cache = internals._cache;
  return require;
}

/** Where berthd keeps its cache unless told otherwise: a directory of the system's temp dir. */
export function defaultCompileCacheDir(): string {
  return join(tmpdir(), 'berth-compile-cache');
}

let active: CompileCache | undefined;

/**
 * Installs a cache in this thread's loader, once: in `dir`, by default `BERTH_COMPILE_CACHE`, else
 * {@link defaultCompileCacheDir}; `BERTH_COMPILE_CACHE=off` (or 0) leaves the loader alone, and so
 * does a process run with `--enable-source-maps`: Node maps stack traces only for the modules it
 * compiles itself.
 */
export function installCompileCache(dir?: string): CompileCache | undefined {
  if (active) return active;
  const setting = dir ?? process.env.BERTH_COMPILE_CACHE;
  if (setting === 'off' || setting === '0' || process.sourceMapsEnabled) return undefined;
  active = new CompileCache(setting || defaultCompileCacheDir()).install();
  return active;
}

/** The cache installed in this thread, if any. */
export function activeCompileCache(): CompileCache | undefined {
  return active;
}
