import { type GlobalFlags, type GlobalOptions, resolveGlobals } from './globals';
import { runVersion } from './version';

/**
 * The CLI's quick path, which bin/berth tries before main(): `berth version` runs from a small
 * bundle of its own (dist/berth-quick.js) without commander, the command tree or the gRPC stack.
 * Anything else, including a version line it does not fully understand, returns undefined and
 * goes to main(), which gives the same output for what both accept.
 */
export function quickMain(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): Promise<number> | undefined {
  const parsed = parseQuickVersion(argv);
  if (!parsed) return undefined;
  let g: GlobalOptions;
  try {
    g = resolveGlobals(parsed.globals, env);
  } catch {
    return undefined; // main() reports it
  }
  return runVersion({ address: g.address, connectTimeout: g.connectTimeout, json: parsed.json });
}

const GLOBAL_FLAGS: Readonly<Record<string, keyof GlobalFlags>> = {
  '-a': 'address',
  '--address': 'address',
  '-n': 'namespace',
  '--namespace': 'namespace',
  '--connect-timeout': 'connectTimeout',
};

/**
 * Reads `[global options] version [--json]` in the forms commander takes (`-a X`, `-aX`,
 * `--address X`, `--address=X`; the last one given wins); undefined for any other line.
 */
export function parseQuickVersion(argv: readonly string[]): { globals: GlobalFlags; json: boolean } | undefined {
  const globals: GlobalFlags = {};
  let i = 0;
  for (; i < argv.length && argv[i] !== 'version'; i++) {
    const arg = argv[i]!;
    const eq = arg.startsWith('--') ? arg.indexOf('=') : -1;
    const flag = eq > 0 ? arg.slice(0, eq) : /^-[an]./.test(arg) ? arg.slice(0, 2) : arg;
    const key = GLOBAL_FLAGS[flag];
    if (!key) return undefined;
    let value: string | undefined;
    if (eq > 0) value = arg.slice(eq + 1);
    else if (flag !== arg) value = arg.slice(2);
    else value = argv[++i];
    if (value === undefined) return undefined;
    globals[key] = value;
  }
  if (argv[i] !== 'version') return undefined;
  const rest = argv.slice(i + 1);
  if (!rest.every((a) => a === '--json')) return undefined;
  return { globals, json: rest.length > 0 };
}
