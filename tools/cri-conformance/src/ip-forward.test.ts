import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '@berth/testing';
import { holdIpForward } from './ip-forward';

/** A stand-in sysctl file and state dir in a temp dir (the machine's are never touched here). */
function setup(value: string) {
  const t = tempDir('berth-ip-forward-test-');
  const sysctl = join(t.path, 'ip_forward');
  writeFileSync(sysctl, `${value}\n`);
  const stateDir = join(t.path, 'state');
  const read = () => readFileSync(sysctl, 'utf8').trim();
  const set = (v: string) => writeFileSync(sysctl, `${v}\n`);
  return { sysctl, stateDir, read, set, remove: t.remove };
}

describe('holdIpForward', () => {
  it('puts the value back when its run is over', () => {
    const m = setup('0');
    try {
      const hold = holdIpForward({ sysctl: m.sysctl, stateDir: m.stateDir });
      m.set('1'); // the bridge plugin
      hold.release();
      expect(m.read()).toBe('0');
      expect(existsSync(m.stateDir)).toBe(false);
    } finally {
      m.remove();
    }
  });

  it('with overlapping runs, puts back the value from before the first when the last is over', () => {
    const m = setup('0');
    try {
      const a = holdIpForward({ sysctl: m.sysctl, stateDir: m.stateDir });
      m.set('1');
      // b starts while a has it on: restoring b's own start value would leave it on.
      const b = holdIpForward({ sysctl: m.sysctl, stateDir: m.stateDir });
      a.release();
      expect(m.read()).toBe('1'); // b's pods still need it
      b.release();
      expect(m.read()).toBe('0');
    } finally {
      m.remove();
    }
  });

  it('does not wait for a holder whose process is gone', () => {
    const m = setup('0');
    try {
      const dead = spawnSync('true').pid!;
      holdIpForward({ sysctl: m.sysctl, stateDir: m.stateDir, pid: dead }); // killed before it released
      m.set('1');
      holdIpForward({ sysctl: m.sysctl, stateDir: m.stateDir }).release();
      expect(m.read()).toBe('0');
    } finally {
      m.remove();
    }
  });

  it('leaves a value it was not the cause of alone when it was already on', () => {
    const m = setup('1');
    try {
      holdIpForward({ sysctl: m.sysctl, stateDir: m.stateDir }).release();
      expect(m.read()).toBe('1');
    } finally {
      m.remove();
    }
  });
});
