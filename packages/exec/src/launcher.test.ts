import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { decodeStatus, shellWord } from './launcher';
import { run } from './run';

/** The launcher shells of this process (started from @berth/exec's thread): pid and directory. */
function launchers(pid = process.pid): Array<{ pid: number; dir: string }> {
  const out: Array<{ pid: number; dir: string }> = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      const argv = readFileSync(`/proc/${name}/cmdline`, 'utf8').split('\0');
      if (ppid === pid && argv[3] === 'berth-exec-launcher') out.push({ pid: Number(name), dir: argv[4] });
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

// Launchers of test files that ran earlier in this jest worker process are still there.
const earlier = new Set(launchers().map((l) => l.pid));
const ours = () => launchers().filter((l) => !earlier.has(l.pid));

describe('the launcher', () => {
  it('starts programs through one shell of its own, in a private directory it cleans as it goes', async () => {
    await run('/bin/true', []);
    const [launcher, ...more] = ours();
    expect(more).toEqual([]);
    expect(readFileSync(`/proc/${launcher.pid}/comm`, 'utf8').trim()).toMatch(/^(dash|sh|bash)$/);
    const r = await run('/bin/cat', [], { input: 'x' });
    expect(r.stdout.toString()).toBe('x');
    expect(readdirSync(launcher.dir)).toEqual([]);
  });

  it('hands over arguments and the environment exactly, nothing added', async () => {
    const args = ["it's", 'a "b" $HOME `id` \\', 'two\nlines', '', ' ', '-n', '*'];
    const r = await run('/usr/bin/printf', ['[%s]\\n', ...args]);
    expect(r.stdout.toString()).toBe(args.map((a) => `[${a}]\n`).join(''));
    const env = await run('/usr/bin/env', [], { env: { A: '1', 'B C': "q'uo\"te", EMPTY: '' } });
    expect(env.stdout.toString().split('\n').filter(Boolean).sort()).toEqual(['A=1', `B C=q'uo"te`, 'EMPTY=']);
  });

  it('starts every program with default signal handling and no signal blocked, as spawn does', async () => {
    const r = await run('/bin/grep', ['-E', '^Sig(Ign|Blk)', '/proc/self/status']);
    expect(r.stdout.toString()).toBe('SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\n');
  });

  it('tells a large exit status from a signal', async () => {
    expect(await run('/bin/sh', ['-c', 'exit 137'])).toMatchObject({ code: 137, signal: null });
    expect(await run('/bin/sh', ['-c', 'kill -TERM $$'])).toMatchObject({ code: null, signal: 'SIGTERM' });
    expect(await run('/bin/sh', ['-c', 'exit 255'])).toMatchObject({ code: 255, signal: null });
  });

  it('fails as spawn does for a missing program or working directory, and a file that is not executable', async () => {
    await expect(run('/bin/true', [], { cwd: '/nonexistent-berth' })).rejects.toMatchObject({ code: 'ENOENT', syscall: 'spawn /bin/true' });
    await expect(run('no-such-program-berth', [], { env: { PATH: '/usr/bin:/bin' } })).rejects.toMatchObject({ code: 'ENOENT' });
    expect((await run('true', [], { env: { PATH: '/nonexistent:/bin' } })).code).toBe(0);
    // Root may execute what has no x bit (access(2) says yes) and execve(2) then refuses: spawn
    // reports exit status 127, and so does the launcher.
    const direct = spawnSync('/etc/hostname', []);
    expect(direct.error).toBeUndefined();
    expect((await run('/etc/hostname', [])).code).toBe(direct.status);
  });

  it('keeps answering when its shell is killed: programs running report, the next one gets a new shell', async () => {
    await run('/bin/true', []);
    const [first] = ours();
    const running = run('/bin/sh', ['-c', 'sleep 0.3; echo done']);
    await new Promise((r) => setTimeout(r, 100));
    process.kill(first.pid, 'SIGKILL');
    expect((await running).stdout.toString()).toBe('done\n');
    expect((await run('/bin/echo', ['again'])).stdout.toString()).toBe('again\n');
    const now = ours();
    expect(now.map((l) => l.pid)).not.toContain(first.pid);
    expect(existsSync(first.dir)).toBe(false);
  });

  it('spawns a job its shell never read: the shell stopped, then killed', async () => {
    await run('/bin/true', []);
    const [shell] = ours();
    process.kill(shell.pid, 'SIGSTOP');
    const job = run('/bin/echo', ['spawned']);
    await new Promise((r) => setTimeout(r, 100));
    process.kill(shell.pid, 'SIGKILL');
    expect((await job).stdout.toString()).toBe('spawned\n');
    expect(existsSync(shell.dir)).toBe(false);
  });

  it('removes its directory when the daemon dies, once the programs it started end', () => {
    // A process killed with SIGKILL while a program runs: its launcher sees its stdin close.
    const script = `
      const { run } = require(${JSON.stringify(join(__dirname, '..', 'dist', 'index.js'))});
      const { readdirSync, readFileSync } = require('node:fs');
      (async () => {
        await run('/bin/true', []);
        const running = run('/bin/sleep', ['0.5']);
        for (const n of readdirSync('/proc')) {
          try {
            const stat = readFileSync('/proc/' + n + '/stat', 'utf8');
            const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
            const argv = readFileSync('/proc/' + n + '/cmdline', 'utf8').split('\\0');
            if (ppid === process.pid && argv[3] === 'berth-exec-launcher') console.log(argv[4]);
          } catch {}
        }
        void running;
        process.kill(process.pid, 'SIGKILL');
      })();`;
    const res = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 10_000 });
    const dir = res.stdout.trim();
    expect(dir).toMatch(/berth-exec-/);
    expect(existsSync(dir)).toBe(true);
    const deadline = Date.now() + 5_000;
    while (existsSync(dir) && Date.now() < deadline) spawnSync('/bin/sleep', ['0.05']);
    expect(existsSync(dir)).toBe(false);
  });
});

describe('shellWord', () => {
  it('quotes any string as one word', () => {
    for (const s of ["a'b", '', "''", 'a b\nc', '$x `y` "z" \\']) {
      const r = spawnSync('/bin/sh', ['-c', `printf %s ${shellWord(s)}`], { encoding: 'utf8' });
      expect(r.stdout).toBe(s);
    }
  });
});

describe('decodeStatus', () => {
  it("reads dash's jobs line for a status above 128", () => {
    expect(decodeStatus(0, undefined)).toEqual({ code: 0, signal: null });
    expect(decodeStatus(137, '[1] + Done(137)              x')).toEqual({ code: 137, signal: null });
    expect(decodeStatus(137, '[1] + Killed                 x')).toEqual({ code: null, signal: 'SIGKILL' });
    expect(decodeStatus(143, '[1] + Terminated             x')).toEqual({ code: null, signal: 'SIGTERM' });
  });
});
