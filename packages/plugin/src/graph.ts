import { InvalidArgumentError } from '@berth/errdefs';
import { Registration, pluginKey } from './types';

/**
 * Returns the registrations a plugin depends on directly, in registration order. A plugin that
 * requires its own type depends on the plugins of that type registered before it: it wraps or
 * replaces them (a content store that counts reads over the local one), and two such plugins
 * stack in registration order instead of forming a cycle.
 */
export function dependenciesOf(reg: Registration, all: readonly Registration[]): Registration[] {
  const out: Registration[] = [];
  const self = all.indexOf(reg);
  for (const type of reg.requires ?? []) {
    all.forEach((r, i) => {
      if (r === reg || out.includes(r)) return;
      if (type === reg.type && type !== '*' && i > self) return;
      if (type === '*' ? r.type !== reg.type : r.type === type) out.push(r);
    });
  }
  return out;
}

/**
 * Orders plugins so every plugin comes after the plugins of the types it requires. The order is
 * deterministic: a depth-first walk in registration order, so unrelated plugins keep the order
 * they were registered in. A cycle is an error that names its path.
 */
export function orderPlugins(registrations: readonly Registration[]): Registration[] {
  const seen = new Set<string>();
  for (const r of registrations) {
    const key = pluginKey(r);
    if (seen.has(key)) throw new InvalidArgumentError(`plugin ${key} is registered twice`);
    seen.add(key);
  }

  const ordered: Registration[] = [];
  const done = new Set<Registration>();
  const path: Registration[] = [];

  const visit = (reg: Registration) => {
    if (done.has(reg)) return;
    const at = path.indexOf(reg);
    if (at >= 0) {
      const cycle = [...path.slice(at), reg].map(pluginKey).join(' -> ');
      throw new InvalidArgumentError(`plugin dependency cycle: ${cycle}`);
    }
    path.push(reg);
    for (const dep of dependenciesOf(reg, registrations)) visit(dep);
    path.pop();
    done.add(reg);
    ordered.push(reg);
  };

  for (const r of registrations) visit(r);
  return ordered;
}
