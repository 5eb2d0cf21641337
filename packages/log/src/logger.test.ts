import { createLogger, parseLevel, withLogFields } from './index';

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

  it('writes JSON lines with format json', () => {
    const json = createLogger({ level: 'info', format: 'json', write: (l) => lines.push(l), now: () => new Date(0) });
    json.with({ type: 't' }).warn('slow "call"', { ms: 12, ok: false, gone: undefined });
    expect(lines).toEqual(['{"time":"1970-01-01T00:00:00.000Z","level":"warn","msg":"slow \\"call\\"","type":"t","ms":12,"ok":false}\n']);
  });

  it('adds the fields of the operation under way (across awaits) to a contextual logger only', async () => {
    const ctxLog = createLogger({ level: 'info', contextual: true, write: (l) => lines.push(l), now: () => new Date(0) });
    await withLogFields({ method: '/svc/M', namespace: 'ns' }, async () => {
      await new Promise((r) => setTimeout(r, 1));
      ctxLog.info('inside', { id: 'x' });
      log.info('plain');
    });
    ctxLog.info('outside');
    expect(lines).toEqual([
      'time="1970-01-01T00:00:00.000Z" level=info msg="inside" id=x method=/svc/M namespace=ns\n',
      'time="1970-01-01T00:00:00.000Z" level=info msg="plain"\n',
      'time="1970-01-01T00:00:00.000Z" level=info msg="outside"\n',
    ]);
    expect(ctxLog.with({ a: 1 }).contextual).toBe(true);
  });

  it('rejects unknown levels', () => expect(() => parseLevel('loud')).toThrow(/unknown log level "loud"/));
});
