import * as childProcess from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run } from './run';

describe('run', () => {
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'berth-exec-'))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('feeds stdin and collects stdout, stderr and the exit code', async () => {
    const r = await run('/bin/sh', ['-c', 'cat; echo oops >&2; exit 3'], { input: 'hello' });
    expect({ code: r.code, signal: r.signal, stdout: r.stdout.toString(), stderr: r.stderr.toString() }).toEqual({ code: 3, signal: null, stdout: 'hello', stderr: 'oops\n' });
  });

  it('reports the signal that ended the program', async () => {
    const r = await run('/bin/sh', ['-c', 'kill -9 $$']);
    expect({ code: r.code, signal: r.signal }).toEqual({ code: null, signal: 'SIGKILL' });
  });

  it('kills a program that runs past timeoutMs and says it timed out', async () => {
    const r = await run('/bin/sleep', ['30'], { timeoutMs: 200 });
    expect({ code: r.code, signal: r.signal, timedOut: r.timedOut }).toEqual({ code: null, signal: 'SIGKILL', timedOut: true });
    expect((await run('/bin/true', [], { timeoutMs: 10_000 })).timedOut).toBe(false);
  });

  it('honours cwd and env, and hands over fds from 3 on', async () => {
    const path = join(dir, 'out');
    const fd = openSync(path, 'w');
    try {
      const r = await run('/bin/sh', ['-c', 'pwd; echo "$X"; echo to-fd3 >&3'], { cwd: dir, env: { X: 'y', PATH: '/bin:/usr/bin' }, fds: [fd] });
      expect(r.stdout.toString()).toBe(`${dir}\ny\n`);
    } finally {
      closeSync(fd);
    }
    expect(readFileSync(path, 'utf8')).toBe('to-fd3\n');
  });

  it('drops stdout when asked', async () => {
    expect((await run('/bin/echo', ['x'], { stdout: false })).stdout.length).toBe(0);
  });

  it('rejects a program that cannot start as spawn does (ENOENT)', async () => {
    await expect(run(join(dir, 'missing'), [])).rejects.toMatchObject({ code: 'ENOENT', syscall: expect.stringContaining('spawn') });
  });

  it('runs many at once, each answered with its own output', async () => {
    const rs = await Promise.all(Array.from({ length: 40 }, (_, i) => run('/bin/echo', [String(i)])));
    expect(rs.map((r) => r.stdout.toString())).toEqual(Array.from({ length: 40 }, (_, i) => `${i}\n`));
  });

  it('never forks on the calling thread', async () => {
    const spy = jest.spyOn(childProcess, 'spawn');
    try {
      await run('/bin/true', []);
      expect(spy).not.toHaveBeenCalled();
    } finally {
      spy.mockRestore();
    }
  });

  it('keeps a process alive while a program runs, and not after', () => {
    // A script whose only pending work is one run: it must print the output, then exit.
    const script = `require(${JSON.stringify(join(__dirname, '..', 'dist', 'index.js'))}).run('/bin/sh', ['-c', 'sleep 0.2; echo done']).then((r) => process.stdout.write(r.stdout));`;
    const res = childProcess.spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 10_000 });
    expect({ status: res.status, stdout: res.stdout }).toEqual({ status: 0, stdout: 'done\n' });
  });
});
