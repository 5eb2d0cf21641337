/**
 * A typed dependency-injection token. Its name starts with the plugin type that provides it
 * (`io.containerd.content.v1/store`), which is how an init context checks that a plugin declared
 * what it looks up.
 */
export type Token<T> = symbol & { readonly __berthToken?: T };

const names = new Map<symbol, string>();

/**
 * Creates (or returns the existing) token for a name of the form `<plugin type>/<what>`.
 * Tokens are global by name so that two copies of a package still meet.
 */
export function token<T>(name: string): Token<T> {
  const slash = name.indexOf('/');
  if (slash <= 0 || slash === name.length - 1) {
    throw new Error(`token name "${name}" must have the form "<plugin type>/<name>"`);
  }
  const sym = Symbol.for(`berth:${name}`);
  names.set(sym, name);
  return sym as Token<T>;
}

/** Returns the name a token was created with. */
export function tokenName(t: Token<unknown>): string {
  return names.get(t) ?? t.description?.replace(/^berth:/, '') ?? String(t);
}

/** Returns the plugin type that provides a token. */
export function tokenType(t: Token<unknown>): string {
  const name = tokenName(t);
  return name.slice(0, name.indexOf('/'));
}
