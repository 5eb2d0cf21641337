import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

/*
 * A real terminal for tests: tmux, one server per session name (`-L <session>`), so that a test's
 * leftovers never type into the next. The test makes the session (`new-session -d -s <session>`)
 * and kills the server when done (`kill-server`).
 */

const run = promisify(execFile);

/** Runs `tmux -L <session> ARGS`. */
export function tmuxRun(session: string, ...args: string[]): Promise<{ stdout: string; stderr: string }> {
  return run('tmux', ['-L', session, ...args]);
}

/** The session's screen, as text. */
export async function tmuxScreen(session: string): Promise<string> {
  return (await tmuxRun(session, 'capture-pane', '-p', '-t', session)).stdout;
}

/** Waits until the screen matches `re` and returns it; throws with the last screen after `timeoutMs`. */
export async function waitForScreen(session: string, re: RegExp, timeoutMs = 30_000): Promise<string> {
  const until = Date.now() + timeoutMs;
  let text = '';
  while (Date.now() < until) {
    text = await tmuxScreen(session);
    if (re.test(text)) return text;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`screen never matched ${re}:\n${text}`);
}
