import { goQuote } from './go-quote';

describe('goQuote (Go %q)', () => {
  it.each([
    ['plain', '"plain"'],
    ['a"b\\c', '"a\\"b\\\\c"'],
    ['tab\there\nnl', '"tab\\there\\nnl"'],
    ['\x00\x1f\x7f', '"\\x00\\x1f\\x7f"'],
    ['é中😀', '"é中😀"'],
    ['\u200b', '"\\u200b"'],
    ['a b', '"a b"'],
  ])('%p -> %s', (s, want) => expect(goQuote(s)).toBe(want));
});
