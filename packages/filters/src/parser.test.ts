import { isInvalidArgument } from '@berth/errdefs';
import { ALWAYS, AllOf, AnyOf, Filter, FilterParseError, Selector, parse, parseAll } from './index';

/** Renders a parsed filter compactly: selectors as `path|path op value`, AND as `&`, OR as `;`. */
function show(f: Filter): string {
  if (f === ALWAYS) return '*';
  if (f instanceof AnyOf) return f.filters.map(show).join(' ; ');
  if (f instanceof AllOf) return f.filters.map(show).join(' & ');
  const s = f as Selector;
  const path = s.path.join('|');
  return s.operator === 'present' ? path : `${path} ${s.operator} ${JSON.stringify(s.value)}`;
}

function parseError(run: () => unknown): FilterParseError {
  try {
    run();
  } catch (err) {
    expect(err).toBeInstanceOf(FilterParseError);
    return err as FilterParseError;
  }
  throw new Error('expected a parse error');
}

describe('parse', () => {
  it.each<[string, string]>([
    ['', '*'],
    ['name==docker.io/library/busybox:latest', 'name equal "docker.io/library/busybox:latest"'],
    ['labels.foo==bar', 'labels|foo equal "bar"'],
    ['labels."a.b/c"', 'labels|a.b/c'],
    ['labels."io.k8s/x"==y', 'labels|io.k8s/x equal "y"'],
    ['ref~=^tar-', 'ref matches "^tar-"'],
    ['type==io.containerd.snapshotter.v1', 'type equal "io.containerd.snapshotter.v1"'],
    ['id==overlayfs', 'id equal "overlayfs"'],
    ['digest==sha256:5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03', 'digest equal "sha256:5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03"'],
    ['size==123', 'size equal "123"'],
    ['kind==active', 'kind equal "active"'],
    ['topic=="/tasks/exit"', 'topic equal "/tasks/exit"'],
    ['namespace==default', 'namespace equal "default"'],
    ['event.id==abc', 'event|id equal "abc"'],
    ['target.mediatype!=application/json', 'target|mediatype not-equal "application/json"'],
    ['id!=x,labels.a', 'id not-equal "x" & labels|a'],
    ['a==1,b==2,c', 'a equal "1" & b equal "2" & c'],
    // Spaces before a token are skipped; spaces before `,` or the end are not (see the errors).
    ['id ==overlayfs', 'id equal "overlayfs"'],
    ['id== overlayfs', 'id equal "overlayfs"'],
    ['  id', 'id'],
    ['id\u0085==x', 'id equal "x"'],
    // A bare value runs to the next space or comma, whatever punctuation it holds.
    ['id==a=b', 'id equal "a=b"'],
    ['id==overlayfs"x', 'id equal "overlayfs\\"x"'],
    ['id==\'x\'', 'id equal "\'x\'"'],
    ['id==`x`', 'id equal "`x`"'],
    ['id==é', 'id equal "é"'],
    ['id==😀', 'id equal "😀"'],
    // Quoted fields and values, with Go escapes.
    ['"id"==overlayfs', 'id equal "overlayfs"'],
    ['labels."a".b==c', 'labels|a|b equal "c"'],
    ['id=="a,b c"', 'id equal "a,b c"'],
    ['id=="a\\"b"', 'id equal "a\\"b"'],
    ['id=="\\a\\b\\f\\n\\r\\t\\v\\\\"', 'id equal "\\u0007\\b\\f\\n\\r\\t\\u000b\\\\"'],
    ['id=="overlay\\x66s"', 'id equal "overlayfs"'],
    ['id=="overlay\\146s"', 'id equal "overlayfs"'],
    ['id=="\\u00e9\\U0001F600"', 'id equal "é😀"'],
    ['id=="\\xc3\\xa9"', 'id equal "é"'],
    ['id=="\\xff"', 'id equal "\uFFFD"'],
    ['id=="\\ud800"', 'id equal "\uFFFD"'],
    ['id==""', 'id equal ""'],
    // `/.../` and `|...|` quote regular expressions; the delimiter is escaped with a backslash.
    ['id~=/over/', 'id matches "over"'],
    ['id~=|ov\\|er|', 'id matches "ov|er"'],
    ['id~=/ov\\/er/', 'id matches "ov/er"'],
    ['id~="^over"', 'id matches "^over"'],
    // The field is part of a value only after an operator: `.x` here is more path.
    ['id.x==overlayfs', 'id|x equal "overlayfs"'],
  ])('%j', (input, expected) => {
    expect(show(parse(input))).toBe(expected);
  });

  // Every message here is what containerd 1.6.20 answered for the same input (`ctr plugins ls
  // <filter>`), minus the ": invalid argument" its introspection service adds a second time.
  it.each<[string, string]>([
    ['name==', '[name==]: expected value or quoted'],
    ['id!=', '[id!=]: expected value or quoted'],
    ['id== ', '[id== ]: expected value or quoted'],
    [' ', '[ ]: expected field or quoted'],
    ['id  ', '[id  ]: expected an operator ("=="|"!="|"~=")'],
    ['id=overlayfs', '[id >|=|< overlayfs]: unsupported operator "="'],
    ['id===x', '[id >|=|< ==x]: unsupported operator "==="'],
    ['id-x==y', '[id >|-|< x==y]: expected an operator ("=="|"!="|"~=")'],
    ['id==/over/', '[id== >|/|< over/]: invalid quote encountered'],
    ['id==|a|', '[id== >|||< a|]: invalid quote encountered'],
    ['labels./a/', '[labels. >|/|< a/]: invalid quote encountered'],
    ["labels.'a'", "[labels. >|'|< a']: expected field or quoted"],
    ['id=="a\\/b"', '[id== >|"|< a\\/b"]: illegal escape sequence'],
    ['id~=/ov\\|er/', '[id~= >|/|< ov\\|er/]: illegal escape sequence'],
    ['id~=/^over\\.x/', '[id~= >|/|< ^over\\.x/]: illegal escape sequence'],
    ['id=="\\q"', '[id== >|"|< \\q"]: illegal escape sequence'],
    ['id=="\\x4"', '[id== >|"|< \\x4"]: illegal numeric escape sequence'],
    ['id=="\\400"', '[id== >|"|< \\400"]: unquoting failed: quote syntax error'],
    ['id=="\\U00110000"', '[id== >|"|< \\U00110000"]: unquoting failed: quote syntax error'],
    ['id=="abc', '[id== >|"|< abc]: quoted literal not terminated'],
    ['id=="a\nb"', '[id== >|"|< a\nb"]: quoted literal not terminated'],
    ['labels.io.k8s/x', '[labels.io.k8s >|/|< x]: quoted literal not terminated'],
    ['id==overlayfs ,type==x', '[id==overlayfs >| |< ,type==x]: unexpected input:  '],
    ['id == overlayfs , type==x', '[id == overlayfs >| |< , type==x]: unexpected input:  '],
    ['id==over fs', '[id==over >| |< fs]: unexpected input:  '],
    ['id==x\t', '[id==x >|\t|< ]: unexpected input: \t'],
    ['id=="overlayfs"x', '[id=="overlayfs" >|x|< ]: unexpected input: x'],
    ['id==x\x01', '[id==x >|\x01|< ]: unexpected input: \x01'],
    ['.id', '[ >|.|< id]: expected field or quoted'],
    [',id', '[ >|,|< id]: expected field or quoted'],
    ['id.', '[id.]: expected field or quoted'],
    ['id,', '[id,]: expected field or quoted'],
    ['id==x,', '[id==x,]: expected field or quoted'],
    ['id==x\0', '[id==x >|\0|< ]: unexpected input: \uFFFD'],
    ['"a\0"', '[ >|"|< a\0"]: unexpected null'],
    // containerd marks one byte; the rest of a split UTF-8 sequence arrives as U+FFFD per byte.
    ['idé==x', '[id >|\uFFFD|< \uFFFD==x]: expected an operator ("=="|"!="|"~=")'],
    ['id😀==x', '[id >|\uFFFD|< \uFFFD\uFFFD\uFFFD==x]: expected an operator ("=="|"!="|"~=")'],
    ['id==x\uFFFD', '[id==x >|\uFFFD|< \uFFFD\uFFFD]: unexpected input: \uFFFD'],
  ])('rejects %j', (input, message) => {
    const err = parseError(() => parse(input));
    expect(isInvalidArgument(err)).toBe(true);
    expect(err.message).toBe(`filters: parse error: ${message}: invalid argument`);
    expect(err.input).toBe(input);
  });

  it('reports the position and reason separately', () => {
    const err = parseError(() => parse('id=overlayfs'));
    expect(err.position).toBe(2);
    expect(err.reason).toBe('unsupported operator "="');
  });

  it('accepts an invalid regular expression and warns, as containerd 1.6 does', () => {
    const f = parse('id~=[');
    expect(f.warnings).toHaveLength(1);
    expect(f.warnings[0]).toMatch(/^error compiling regexp "\[": /);
    expect(parse('id~=x').warnings).toEqual([]);
  });
});

describe('parseAll', () => {
  it.each<[readonly string[], string]>([
    [[], '*'],
    [[''], '*'],
    [['id==a'], 'id equal "a"'],
    [['id==a', 'id==b'], 'id equal "a" ; id equal "b"'],
    [['', 'id==b'], '* ; id equal "b"'],
    [['id==a,type==t', 'labels.x'], 'id equal "a" & type equal "t" ; labels|x'],
  ])('%j', (input, expected) => {
    expect(show(parseAll(input))).toBe(expected);
  });

  it('fails on any bad string, even next to an empty one', () => {
    const err = parseError(() => parseAll(['', 'name==']));
    expect(err.message).toBe('filters: parse error: [name==]: expected value or quoted: invalid argument');
  });

  it('gives the wire message images answer with once the service adds its suffix', () => {
    const err = parseError(() => parseAll(['name==']));
    expect(`${err.message}: invalid argument`).toBe(
      'filters: parse error: [name==]: expected value or quoted: invalid argument: invalid argument',
    );
  });

  it('collects warnings from every filter', () => {
    expect(parseAll(['id~=(', 'id~=[']).warnings).toHaveLength(2);
  });
});
