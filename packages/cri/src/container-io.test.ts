import { closeSync, constants, existsSync, openSync, readFileSync, readSync, renameSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { FifoPool } from '@berth/exec';
import { tempDir } from '@berth/testing';
import { ContainerIO } from './container-io';

/** What the shim does with the FIFOs: opens them by path and writes (or reads). */
const openWriter = (path: string) => openSync(path, constants.O_WRONLY | constants.O_NONBLOCK);

const collect = () => {
  const s = new PassThrough();
  let data = '';
  s.on('data', (b: Buffer) => (data += b.toString()));
  return { s, get: () => data };
};

const waitFor = async (what: string, fn: () => boolean) => {
  const end = Date.now() + 10_000;
  while (!fn()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
};

describe('a container\'s IO', () => {
  let dir: { path: string; remove: () => void };
  beforeEach(() => (dir = tempDir('berth-cri-io-')));
  afterEach(() => dir.remove());

  it('copies stdout and stderr into the CRI log and to attached clients; reopen switches files; close removes the FIFOs', async () => {
    const io = await ContainerIO.create(new FifoPool(join(dir.path, 'fifo-pool'), 4), join(dir.path, 'io'), 'c1', { stdin: false, tty: false, maxLineSize: 16384, stdinOnce: false, closeStdin: async () => undefined });
    expect(io.paths.stdin).toBe('');
    const log = join(dir.path, 'c1.log');
    io.connect(log);
    const out = collect();
    const err = collect();
    const attached = io.attach({ stdout: out.s, stderr: err.s });
    const o = openWriter(io.paths.stdout);
    const e = openWriter(io.paths.stderr);
    writeSync(o, 'one\ntw');
    writeSync(e, 'oops\n');
    writeSync(o, 'o\n');
    await waitFor('two stdout lines', () => existsSync(log) && readFileSync(log, 'utf8').split('\n').length >= 4);
    const records = readFileSync(log, 'utf8').split('\n').filter(Boolean).map((l) => l.split(' ').slice(1).join(' '));
    expect(records.sort()).toEqual(['stderr F oops', 'stdout F one', 'stdout F two']);
    expect(out.get()).toBe('one\ntwo\n');
    expect(err.get()).toBe('oops\n');

    renameSync(log, `${log}.1`);
    io.reopen();
    writeSync(o, 'after\n');
    await waitFor('a new file', () => existsSync(log) && readFileSync(log, 'utf8').includes('after'));
    expect(readFileSync(`${log}.1`, 'utf8')).not.toContain('after');

    // The shim closes its ends at the exit: an unterminated tail is written P, attached clients end.
    writeSync(o, 'tail');
    closeSync(o);
    closeSync(e);
    await io.drained();
    await attached;
    expect(readFileSync(log, 'utf8')).toMatch(/ stdout P tail\n$/);
    io.close(true);
    expect(existsSync(io.paths.stdout)).toBe(false);
  });

  it('a stdin container: an attached client\'s stdin reaches the FIFO; with stdin_once its end closes the container\'s stdin', async () => {
    let closed = 0;
    const io = await ContainerIO.create(new FifoPool(join(dir.path, 'fifo-pool'), 4), join(dir.path, 'io'), 'c2', { stdin: true, tty: true, maxLineSize: 16384, stdinOnce: true, closeStdin: async () => void (closed += 1) });
    expect(io.paths.stderr).toBe('');
    io.connect('');
    const reader = openSync(io.paths.stdin, constants.O_RDONLY | constants.O_NONBLOCK);
    await io.attach({ stdin: Readable.from([Buffer.from('echo hi\n')]) });
    await waitFor('stdin_once to close stdin', () => closed === 1);
    const buf = Buffer.alloc(64);
    const n = (await new Promise<number>((resolve) => setTimeout(() => resolve(readSync(reader, buf)), 50))) as number;
    expect(buf.subarray(0, n).toString()).toBe('echo hi\n');
    closeSync(reader);
    io.close(true);
  });
});
