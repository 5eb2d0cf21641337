import { BerthError, DataLossError, ResourceExhaustedError } from '@berth/errdefs';
import { type HeaderField, HpackDecoder, encodeHeaderBlock } from './hpack';
import { EOS, huffmanCode, huffmanDecode } from './huffman';

/*
 * HPACK against RFC 7541's own examples (Appendix C: the bytes, the decoded lists, and the
 * dynamic table after each block), the Huffman code against Appendix B, and the decoder against
 * malformed and random input: only errdefs errors, never anything else.
 */
const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');

/** A Huffman encoder for tests, from the same table (round trips check the decoder's walk). */
function huffmanEncode(octets: Buffer): Buffer {
  const out: number[] = [];
  let acc = 0;
  let bits = 0;
  for (const o of octets) {
    const { code, length } = huffmanCode(o);
    for (let i = length - 1; i >= 0; i--) {
      acc = (acc << 1) | (Math.floor(code / 2 ** i) & 1);
      if (++bits === 8) {
        out.push(acc);
        acc = 0;
        bits = 0;
      }
    }
  }
  if (bits > 0) out.push((acc << (8 - bits)) | ((1 << (8 - bits)) - 1));
  return Buffer.from(out);
}

describe('HPACK Huffman code (RFC 7541 Appendix B)', () => {
  it.each([
    // symbol, code, bits: a few rows of Appendix B, short and long, and EOS.
    [0x00, 0x1ff8, 13],
    [0x01, 0x7fffd8, 23],
    [0x0a, 0x3ffffffc, 30],
    [0x20, 0x14, 6],
    [0x30, 0x0, 5],
    [0x61, 0x3, 5],
    [0x7f, 0xffffffc, 28],
    [0x80, 0xfffe6, 20],
    [0xc8, 0x3ffffe2, 26],
    [0xff, 0x3ffffee, 26],
    [EOS, 0x3fffffff, 30],
  ])('gives symbol %i the code %i in %i bits', (symbol, code, length) => {
    expect(huffmanCode(symbol)).toEqual({ code, length });
  });

  it('is a complete prefix code (Kraft sum 1) and decodes every octet back', () => {
    let kraft = 0;
    for (let s = 0; s <= EOS; s++) kraft += 2 ** -huffmanCode(s).length;
    expect(kraft).toBe(1);
    const all = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
    expect(huffmanDecode(huffmanEncode(all))).toEqual(all);
    for (let i = 0; i < 200; i++) {
      const random = Buffer.from(Array.from({ length: i % 40 }, () => Math.floor(Math.random() * 256)));
      expect(huffmanDecode(huffmanEncode(random))).toEqual(random);
    }
  });

  it('refuses EOS in the data, padding over 7 bits, and padding that is not EOS', () => {
    // EOS (30 ones) then two bits of padding.
    expect(() => huffmanDecode(hex('ffffffff'))).toThrow(/EOS symbol/);
    // "0" is 00000, then a whole byte of ones: 11 bits of padding.
    expect(() => huffmanDecode(hex('07ff'))).toThrow(/11 bits of padding/);
    // "0" then 000 as padding.
    expect(() => huffmanDecode(hex('00'))).toThrow(/other than EOS/);
    expect(huffmanDecode(hex('07'))).toEqual(Buffer.from('0'));
    expect(huffmanDecode(Buffer.alloc(0))).toEqual(Buffer.alloc(0));
  });
});

/** A block, the header list it decodes to, and the dynamic table after it (newest first) with its size. */
type Step = [block: string, list: HeaderField[], table: HeaderField[], size: number];

const REQUEST_LISTS: Array<[HeaderField[], HeaderField[], number]> = [
  [
    [[':method', 'GET'], [':scheme', 'http'], [':path', '/'], [':authority', 'www.example.com']],
    [[':authority', 'www.example.com']],
    57,
  ],
  [
    [[':method', 'GET'], [':scheme', 'http'], [':path', '/'], [':authority', 'www.example.com'], ['cache-control', 'no-cache']],
    [['cache-control', 'no-cache'], [':authority', 'www.example.com']],
    110,
  ],
  [
    [[':method', 'GET'], [':scheme', 'https'], [':path', '/index.html'], [':authority', 'www.example.com'], ['custom-key', 'custom-value']],
    [['custom-key', 'custom-value'], ['cache-control', 'no-cache'], [':authority', 'www.example.com']],
    164,
  ],
];
const DATE_21 = 'Mon, 21 Oct 2013 20:13:21 GMT';
const DATE_22 = 'Mon, 21 Oct 2013 20:13:22 GMT';
const LOCATION = 'https://www.example.com';
const COOKIE = 'foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1';
const RESPONSE_LISTS: Array<[HeaderField[], HeaderField[], number]> = [
  [
    [[':status', '302'], ['cache-control', 'private'], ['date', DATE_21], ['location', LOCATION]],
    [['location', LOCATION], ['date', DATE_21], ['cache-control', 'private'], [':status', '302']],
    222,
  ],
  [
    [[':status', '307'], ['cache-control', 'private'], ['date', DATE_21], ['location', LOCATION]],
    [[':status', '307'], ['location', LOCATION], ['date', DATE_21], ['cache-control', 'private']],
    222,
  ],
  [
    [[':status', '200'], ['cache-control', 'private'], ['date', DATE_22], ['location', LOCATION], ['content-encoding', 'gzip'], ['set-cookie', COOKIE]],
    [['set-cookie', COOKIE], ['content-encoding', 'gzip'], ['date', DATE_22]],
    215,
  ],
];
const steps = (blocks: string[], lists: typeof REQUEST_LISTS): Step[] => blocks.map((b, i) => [b, ...lists[i]!]);

describe('HpackDecoder against RFC 7541 Appendix C', () => {
  it.each<[string, number, Step[]]>([
    [
      'C.3: requests without Huffman coding',
      4096,
      steps(['828684410f7777772e6578616d706c652e636f6d', '828684be58086e6f2d6361636865', '828785bf400a637573746f6d2d6b65790c637573746f6d2d76616c7565'], REQUEST_LISTS),
    ],
    [
      'C.4: requests with Huffman coding',
      4096,
      steps(['828684418cf1e3c2e5f23a6ba0ab90f4ff', '828684be5886a8eb10649cbf', '828785bf408825a849e95ba97d7f8925a849e95bb8e8b4bf'], REQUEST_LISTS),
    ],
    [
      'C.5: responses without Huffman coding, a 256-octet table (evictions)',
      256,
      steps(
        [
          `4803 3330 3258 0770 7269 7661 7465 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3120 474d 546e 1768
           7474 7073 3a2f 2f77 7777 2e65 7861 6d70 6c65 2e63 6f6d`,
          '4803 3330 37c1 c0bf',
          `88c1 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3220 474d 54c0 5a04 677a 6970 7738 666f 6f3d 4153
           444a 4b48 514b 425a 584f 5157 454f 5049 5541 5851 5745 4f49 553b 206d 6178 2d61 6765 3d33 3630 303b 2076 6572 7369 6f6e
           3d31`,
        ],
        RESPONSE_LISTS,
      ),
    ],
    [
      'C.6: responses with Huffman coding, a 256-octet table (evictions)',
      256,
      steps(
        [
          `4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6 2d1b ff6e 919d 29ad 1718 63c7 8f0b 97c8
           e9ae 82ae 43d3`,
          '4883 640e ffc1 c0bf',
          `88c1 6196 d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff c05a 839b d9ab 77ad 94e7 821d d7f2 e6c7 b335 dfdf cd5b
           3960 d5af 2708 7f36 72c1 ab27 0fb5 291f 9587 3160 65c0 03ed 4ee5 b106 3d50 07`,
        ],
        RESPONSE_LISTS,
      ),
    ],
  ])('%s', (_title, tableSize, series) => {
    const decoder = new HpackDecoder({ maxTableSize: tableSize });
    for (const [block, list, table, size] of series) {
      expect(decoder.decode(hex(block))).toEqual(list);
      expect(decoder.table).toEqual(table);
      expect(decoder.tableSize).toBe(size);
    }
  });

  it.each<[string, string, HeaderField[], HeaderField[], number]>([
    ['C.2.1: literal with indexing', '400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572', [['custom-key', 'custom-header']], [['custom-key', 'custom-header']], 55],
    ['C.2.2: literal without indexing', '040c 2f73 616d 706c 652f 7061 7468', [[':path', '/sample/path']], [], 0],
    ['C.2.3: literal never indexed', '1008 7061 7373 776f 7264 0673 6563 7265 74', [['password', 'secret']], [], 0],
    ['C.2.4: indexed field', '82', [[':method', 'GET']], [], 0],
  ])('%s', (_title, block, list, table, size) => {
    const decoder = new HpackDecoder();
    expect(decoder.decode(hex(block))).toEqual(list);
    expect(decoder.table).toEqual(table);
    expect(decoder.tableSize).toBe(size);
  });

  it("reads C.1's integers: 10 and 1337 in a 5-bit prefix, and 42", () => {
    // As size updates (001 + 5-bit prefix) on a decoder allowed 2000 octets.
    const decoder = new HpackDecoder({ maxTableSize: 2000 });
    decoder.decode(hex('2a'));
    expect(decoder.maxTableSize).toBe(10);
    decoder.decode(hex('3f9a0a'));
    expect(decoder.maxTableSize).toBe(1337);
    // 42 as an index (C.1.3 has it in a whole octet; here in an indexed field's 7 bits: if-range).
    expect(decoder.decode(hex('aa'))).toEqual([['if-range', '']]);
  });
});

describe('HpackDecoder: the dynamic table', () => {
  const literalWithIndexing = (name: string, value: string) => Buffer.concat([Buffer.from([0x40, name.length]), Buffer.from(name), Buffer.from([value.length]), Buffer.from(value)]);

  it('evicts the oldest entries, empties itself for an entry larger than the table, and follows size updates', () => {
    const decoder = new HpackDecoder({ maxTableSize: 100 });
    decoder.decode(literalWithIndexing('a', '1')); // 34 octets
    decoder.decode(literalWithIndexing('b', '2'));
    decoder.decode(literalWithIndexing('c', '3')); // 102 > 100: "a" goes
    expect(decoder.table).toEqual([['c', '3'], ['b', '2']]);
    expect(decoder.decode(hex('be bf'))).toEqual([['c', '3'], ['b', '2']]);
    decoder.decode(literalWithIndexing('x', 'y'.repeat(70))); // 103 octets: the table empties, nothing is added
    expect(decoder.table).toEqual([]);
    expect(decoder.tableSize).toBe(0);
    decoder.decode(literalWithIndexing('d', '4'));
    decoder.decode(literalWithIndexing('e', '5'));
    // A size update to 40 keeps the newest entry only; to 0 empties the table; back to 100.
    decoder.decode(hex('3f09'));
    expect(decoder.table).toEqual([['e', '5']]);
    decoder.decode(Buffer.concat([hex('20 3f45'), literalWithIndexing('f', '6')]));
    expect(decoder.table).toEqual([['f', '6']]);
    expect(decoder.maxTableSize).toBe(100);
  });

  it.each<[string, string, RegExp]>([
    ['index 0', '80', /index 0/],
    ['an index past the tables', 'be', /index 62 is past the table \(61 entries\)/],
    ['a size update over the announced size', '3fe21f', /size update to 4097, over the 4096 allowed/],
    ['a size update after a field', '82 20', /size update after a header field/],
    ['a truncated integer', 'ff', /truncated integer/],
    ['an integer over 2^31-1', 'ff ff ff ff ff ff 0f', /integer over/],
    ['a string running past the block', '04 05 61 62', /5-octet string runs past/],
    ['a field cut before its value', '04', /ends before its string/],
    ['a literal name cut short', '00', /ends before its string/],
    ['a Huffman string with EOS', '04 84 ff ff ff ff', /EOS/],
  ])('refuses %s as data loss', (_title, block, message) => {
    const err = (() => {
      try {
        new HpackDecoder().decode(hex(block));
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(DataLossError);
    expect((err as Error).message).toMatch(message);
  });

  it('refuses a header list over its cap as resource exhausted', () => {
    const decoder = new HpackDecoder({ maxHeaderListSize: 100 });
    const big = encodeHeaderBlock([{ name: 'x', value: 'v'.repeat(70) }]);
    expect(() => decoder.decode(big)).toThrow(ResourceExhaustedError);
  });

  it('decodes what encodeHeaderBlock writes (the request side)', () => {
    const block = encodeHeaderBlock([
      { index: 3 },
      { index: 6 },
      { name: 4, value: '/containerd.services.version.v1.Version/Version' },
      { name: 1, value: 'localhost' },
      { name: 31, value: 'application/grpc' },
      { name: 'te', value: 'trailers' },
      { name: 'x-long', value: 'z'.repeat(300) },
    ]);
    expect(new HpackDecoder().decode(block)).toEqual([
      [':method', 'POST'],
      [':scheme', 'http'],
      [':path', '/containerd.services.version.v1.Version/Version'],
      [':authority', 'localhost'],
      ['content-type', 'application/grpc'],
      ['te', 'trailers'],
      ['x-long', 'z'.repeat(300)],
    ]);
  });

  it('throws nothing but errdefs errors on random input, and stays bounded', () => {
    let errors = 0;
    for (let i = 0; i < 5000; i++) {
      const decoder = new HpackDecoder({ maxTableSize: 256 });
      for (let j = 0; j < 3; j++) {
        const block = Buffer.from(Array.from({ length: 1 + Math.floor(Math.random() * 48) }, () => Math.floor(Math.random() * 256)));
        try {
          decoder.decode(block);
          expect(decoder.tableSize).toBeLessThanOrEqual(256);
        } catch (err) {
          if (!(err instanceof BerthError)) throw err;
          errors++;
          break;
        }
      }
    }
    expect(errors).toBeGreaterThan(0);
  });
});
