import { explainTarget } from './gc-admin';
import { childrenFirst } from './namespace-admin';

const snap = (name: string, parent = '') => ({ name, parent, kind: 'committed' as const, labels: {}, created: new Date(0), updated: new Date(0) });

describe('childrenFirst', () => {
  it('puts every snapshot before its parent, whatever order they are listed in', () => {
    const infos = [snap('base'), snap('mid', 'base'), snap('top', 'mid'), snap('side', 'mid'), snap('alone'), snap('orphan', 'not-listed')];
    for (const order of [infos, [...infos].reverse()]) {
      const names = childrenFirst(order).map((i) => i.name);
      expect(names.sort()).toEqual(infos.map((i) => i.name).sort());
      const at = (n: string) => childrenFirst(order).findIndex((i) => i.name === n);
      expect(at('top')).toBeLessThan(at('mid'));
      expect(at('side')).toBeLessThan(at('mid'));
      expect(at('mid')).toBeLessThan(at('base'));
    }
  });
});

describe('explainTarget', () => {
  it.each([
    [{ digest: 'sha256:ab', snapshotter: '', key: '' }, { digest: 'sha256:ab' }],
    [{ digest: '', snapshotter: 'overlayfs', key: 'k' }, { snapshotter: 'overlayfs', key: 'k' }],
  ])('%j names %j', (req, target) => {
    expect(explainTarget(req)).toEqual(target);
  });

  it.each([
    [{ digest: 'sha256:ab', snapshotter: 'overlayfs', key: 'k' }, 'name either a digest or a snapshotter and key, not both: invalid argument'],
    [{ digest: '', snapshotter: '', key: '' }, 'name a digest, or a snapshotter and key: invalid argument'],
    [{ digest: '', snapshotter: '', key: 'k' }, 'snapshotter argument missing: invalid argument'],
  ])('%j is refused: %s', (req, message) => {
    expect(() => explainTarget(req)).toThrow(message);
  });
});
