import { collectLines } from '../examples/collect-lines';

describe('README example: logging into an array', () => {
  it('writes logfmt lines above the level, with the derived fields', () => {
    expect(collectLines('text', 'info')).toEqual([
      'time="1970-01-01T00:00:00.000Z" level=info msg="pulled" module=pull layers=1 ms=812',
      'time="1970-01-01T00:00:00.000Z" level=warn msg="slow registry" module=pull host=registry-1.docker.io',
    ]);
  });

  it('writes JSON lines, and takes containerd level aliases', () => {
    const lines = collectLines('json', 'warning');
    expect(lines.map((l) => JSON.parse(l))).toEqual([{ time: '1970-01-01T00:00:00.000Z', level: 'warn', msg: 'slow registry', module: 'pull', host: 'registry-1.docker.io' }]);
  });
});
