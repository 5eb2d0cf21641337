import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Options of {@link holdIpForward}; the defaults are the machine's. */
export interface IpForwardOptions {
  /** The sysctl file; default /proc/sys/net/ipv4/ip_forward. */
  sysctl?: string;
  /** Where the runs of the machine note the value from before them; default `<tmp>/berth-ip-forward`. */
  stateDir?: string;
  /** This run's pid; default process.pid. */
  pid?: number;
}

/** A run's hold on net.ipv4.ip_forward; {@link IpForwardHold.release} once the run is over. */
export interface IpForwardHold {
  release(): void;
}

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
};

/**
 * Takes note of net.ipv4.ip_forward before a run's CNI bridge (isGateway) turns it on, and puts
 * it back when the last run of the machine that holds it releases, so that runs that overlap (in
 * other work trees too) do not leave it on: a run that starts while another has it on sees 1,
 * and restoring its own start value would keep it on. The first holder writes the value into
 * `<stateDir>/value` (created exclusively); every holder has `<stateDir>/holders/<pid>-<random>`;
 * holders whose process is gone (a run that was killed) do not count.
 */
export function holdIpForward(options: IpForwardOptions = {}): IpForwardHold {
  const sysctl = options.sysctl ?? '/proc/sys/net/ipv4/ip_forward';
  const stateDir = options.stateDir ?? join(tmpdir(), 'berth-ip-forward');
  const pid = options.pid ?? process.pid;
  const holders = join(stateDir, 'holders');
  const valueFile = join(stateDir, 'value');
  mkdirSync(holders, { recursive: true });
  try {
    writeFileSync(valueFile, readFileSync(sysctl, 'utf8').trim(), { flag: 'wx' });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  const holder = join(holders, `${pid}-${randomBytes(4).toString('hex')}`);
  writeFileSync(holder, '');
  return {
    release() {
      rmSync(holder, { force: true });
      const others = readdirSync(holders).filter((h) => alive(Number(h.split('-')[0])));
      if (others.length > 0) return;
      let value: string;
      try {
        value = readFileSync(valueFile, 'utf8').trim();
      } catch {
        return; // another run restored it just now
      }
      try {
        if (readFileSync(sysctl, 'utf8').trim() !== value) writeFileSync(sysctl, `${value}\n`);
      } catch {
        /* not writable here: no run could have changed it either */
      }
      rmSync(stateDir, { recursive: true, force: true });
    },
  };
}
