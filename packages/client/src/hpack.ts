/**
 * HPACK (RFC 7541) for the client side of one HTTP/2 connection: a complete decoder (static and
 * dynamic tables, size updates and eviction, integers, plain and Huffman string literals) for
 * what servers send, and an encoder for the request that uses only the static table and literals
 * without indexing, so that the server's decoder never has to hold anything of ours.
 *
 * Names and values are read as latin1: one character per octet, so a string's length is its
 * size in octets (what the table sizes count) and no byte is lost.
 */
import { DataLossError, ResourceExhaustedError } from '@berth/errdefs';
import { huffmanDecode } from './huffman';

/** A header field, name then value. */
export type HeaderField = [name: string, value: string];

/** RFC 7541 Appendix A: the static table, index 1 first. */
// prettier-ignore
const STATIC_TABLE: readonly HeaderField[] = [
  [':authority', ''], [':method', 'GET'], [':method', 'POST'], [':path', '/'], [':path', '/index.html'],
  [':scheme', 'http'], [':scheme', 'https'], [':status', '200'], [':status', '204'], [':status', '206'],
  [':status', '304'], [':status', '400'], [':status', '404'], [':status', '500'], ['accept-charset', ''],
  ['accept-encoding', 'gzip, deflate'], ['accept-language', ''], ['accept-ranges', ''], ['accept', ''],
  ['access-control-allow-origin', ''], ['age', ''], ['allow', ''], ['authorization', ''], ['cache-control', ''],
  ['content-disposition', ''], ['content-encoding', ''], ['content-language', ''], ['content-length', ''],
  ['content-location', ''], ['content-range', ''], ['content-type', ''], ['cookie', ''], ['date', ''], ['etag', ''],
  ['expect', ''], ['expires', ''], ['from', ''], ['host', ''], ['if-match', ''], ['if-modified-since', ''],
  ['if-none-match', ''], ['if-range', ''], ['if-unmodified-since', ''], ['last-modified', ''], ['link', ''],
  ['location', ''], ['max-forwards', ''], ['proxy-authenticate', ''], ['proxy-authorization', ''], ['range', ''],
  ['referer', ''], ['refresh', ''], ['retry-after', ''], ['server', ''], ['set-cookie', ''],
  ['strict-transport-security', ''], ['transfer-encoding', ''], ['user-agent', ''], ['vary', ''], ['via', ''],
  ['www-authenticate', ''],
];

/** The size an entry counts for in a dynamic table (RFC 7541 4.1). */
const entrySize = ([name, value]: HeaderField): number => name.length + value.length + 32;

/** Integers past this are refused: no header block of ours comes near, and it keeps arithmetic exact. */
const MAX_INTEGER = 2 ** 31 - 1;

export interface HpackDecoderOptions {
  /**
   * The most a size update may set the dynamic table to: the SETTINGS_HEADER_TABLE_SIZE this end
   * announced (default 4096, HTTP/2's initial value).
   */
  maxTableSize?: number;
  /**
   * The most octets one decoded header list may hold, counted as HTTP/2's
   * SETTINGS_MAX_HEADER_LIST_SIZE does (name + value + 32 per field); default 64 KiB.
   */
  maxHeaderListSize?: number;
}

/**
 * Decodes the header blocks of one connection, in the order they arrive: the dynamic table
 * carries over from block to block. After an error the table is in an unknown state, and HTTP/2
 * makes that a connection error (COMPRESSION_ERROR): drop the decoder with the connection.
 */
export class HpackDecoder {
  private readonly entries: HeaderField[] = []; // newest first
  private size = 0;
  private capacity: number;
  private readonly limit: number;
  private readonly maxListSize: number;
  private block: Uint8Array = new Uint8Array(0);
  private pos = 0;

  constructor(options: HpackDecoderOptions = {}) {
    this.limit = options.maxTableSize ?? 4096;
    this.capacity = this.limit;
    this.maxListSize = options.maxHeaderListSize ?? 64 * 1024;
  }

  /** The dynamic table, newest entry first (index 62 is the first). */
  get table(): readonly HeaderField[] {
    return this.entries;
  }

  /** The dynamic table's size in octets, as RFC 7541 counts it. */
  get tableSize(): number {
    return this.size;
  }

  /** The dynamic table's current maximum size (the last size update's, or the announced one). */
  get maxTableSize(): number {
    return this.capacity;
  }

  /** Decodes one complete header block (all of a HEADERS frame's fragments and its CONTINUATIONs). */
  decode(block: Uint8Array): HeaderField[] {
    this.block = block;
    this.pos = 0;
    const fields: HeaderField[] = [];
    let listSize = 0;
    let sawField = false;
    while (this.pos < block.length) {
      const b = block[this.pos]!;
      let field: HeaderField;
      if (b & 0x80) {
        // Indexed header field (6.1).
        field = this.lookup(this.integer(7));
      } else if (b & 0x40) {
        // Literal with incremental indexing (6.2.1).
        field = this.literal(6);
        this.insert(field);
      } else if (b & 0x20) {
        // Dynamic table size update (6.3): only before the block's first field (4.2).
        if (sawField) throw new DataLossError('hpack: a dynamic table size update after a header field');
        const size = this.integer(5);
        if (size > this.limit) throw new DataLossError(`hpack: a dynamic table size update to ${size}, over the ${this.limit} allowed`);
        this.capacity = size;
        this.evict(0);
        continue;
      } else {
        // Literal without indexing (0000) or never indexed (0001) (6.2.2, 6.2.3): 4-bit prefix.
        field = this.literal(4);
      }
      sawField = true;
      listSize += entrySize(field);
      if (listSize > this.maxListSize) throw new ResourceExhaustedError(`hpack: a header list over ${this.maxListSize} octets`);
      fields.push(field);
    }
    this.block = new Uint8Array(0);
    return fields;
  }

  private lookup(index: number): HeaderField {
    if (index === 0) throw new DataLossError('hpack: header index 0');
    if (index <= STATIC_TABLE.length) return STATIC_TABLE[index - 1]!;
    const entry = this.entries[index - STATIC_TABLE.length - 1];
    if (!entry) throw new DataLossError(`hpack: header index ${index} is past the table (${STATIC_TABLE.length + this.entries.length} entries)`);
    return entry;
  }

  /** A literal field whose name is an index in a `prefix`-bit integer, or a literal when that is 0. */
  private literal(prefix: number): HeaderField {
    const nameIndex = this.integer(prefix);
    const name = nameIndex === 0 ? this.string() : this.lookup(nameIndex)[0];
    return [name, this.string()];
  }

  private insert(field: HeaderField): void {
    const size = entrySize(field);
    // An entry larger than the whole table empties it and is not added (4.4).
    this.evict(size);
    if (size <= this.capacity) {
      this.entries.unshift(field);
      this.size += size;
    }
  }

  /** Evicts the oldest entries until `room` more octets fit (or the table is empty). */
  private evict(room: number): void {
    while (this.entries.length > 0 && this.size + room > this.capacity) {
      this.size -= entrySize(this.entries.pop()!);
    }
  }

  /** Reads an integer with an N-bit prefix (5.1) at the cursor. */
  private integer(prefix: number): number {
    const max = (1 << prefix) - 1;
    let value = this.block[this.pos++]! & max;
    if (value < max) return value;
    for (let shift = 0; ; shift += 7) {
      if (this.pos >= this.block.length) throw new DataLossError('hpack: a truncated integer');
      const b = this.block[this.pos++]!;
      value += (b & 0x7f) * 2 ** shift;
      if (value > MAX_INTEGER) throw new DataLossError('hpack: an integer over 2^31-1');
      if ((b & 0x80) === 0) return value;
    }
  }

  /** Reads a string literal (5.2) at the cursor: Huffman flag, length, octets. */
  private string(): string {
    if (this.pos >= this.block.length) throw new DataLossError('hpack: a field ends before its string');
    const huffman = (this.block[this.pos]! & 0x80) !== 0;
    const length = this.integer(7);
    if (length > this.block.length - this.pos) throw new DataLossError(`hpack: a ${length}-octet string runs past the header block`);
    const raw = this.block.subarray(this.pos, this.pos + length);
    this.pos += length;
    const octets = huffman ? huffmanDecode(raw) : Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength);
    return octets.toString('latin1');
  }
}

/** Static-table indexes the request uses (RFC 7541 Appendix A). */
export const STATIC = {
  authority: 1,
  methodPost: 3,
  path: 4,
  schemeHttp: 6,
  contentType: 31,
  userAgent: 58,
} as const;

/** One field of a request, as {@link encodeHeaderBlock} writes it. */
export type RequestField =
  /** A whole field from the static table. */
  | { index: number }
  /** A literal value with a static-table name (a number) or a literal name, not indexed. */
  | { name: number | string; value: string };

/**
 * Encodes a header block from static-table references and literals without indexing (6.1,
 * 6.2.2), no Huffman coding: the encoder keeps no state, and a server needs none for us.
 */
export function encodeHeaderBlock(fields: readonly RequestField[]): Buffer {
  const out: number[] = [];
  const integer = (value: number, prefix: number, flags: number) => {
    const max = (1 << prefix) - 1;
    if (value < max) return void out.push(flags | value);
    out.push(flags | max);
    for (value -= max; value >= 0x80; value = Math.floor(value / 0x80)) out.push((value % 0x80) | 0x80);
    out.push(value);
  };
  const string = (s: string) => {
    const octets = Buffer.from(s, 'latin1');
    integer(octets.length, 7, 0);
    for (const o of octets) out.push(o);
  };
  for (const f of fields) {
    if ('index' in f) {
      integer(f.index, 7, 0x80);
    } else if (typeof f.name === 'number') {
      integer(f.name, 4, 0);
      string(f.value);
    } else {
      out.push(0);
      string(f.name);
      string(f.value);
    }
  }
  return Buffer.from(out);
}
