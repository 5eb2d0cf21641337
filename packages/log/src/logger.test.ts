import { createLogger, parseLevel } from './index';

describe('logger', () => {
  const lines: string[] = [];
  const log = createLogger({ level: 'info', write: (l) => lines.push(l), now: () => new Date(0) });
  beforeEach(() => (lines.length = 0));

  it('writes logfmt lines with fields, quoting where needed', () => {
    log.with({ type: 'io.containerd.content.v1' }).info('loading plugin', { id: 'content', note: 'a b' });
    expect(lines).toEqual([
      'time="1970-01-01T00:00:00.000Z" level=info msg="loading plugin" type=io.containerd.content.v1 id=content note="a b"\n',
    ]);
  });

  it('drops lines below its level', () => {
    log.debug('hidden');
    expect(lines).toEqual([]);
    expect(log.enabled('debug')).toBe(false);
  });

  it.each([
    ['info', 'info'],
    ['WARNING', 'warn'],
    ['panic', 'fatal'],
  ])('parses level %s', (s, want) => expect(parseLevel(s)).toBe(want));

  it('rejects unknown levels', () => expect(() => parseLevel('loud')).toThrow(/unknown log level "loud"/));
});
