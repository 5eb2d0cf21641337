import { randomUUID } from 'node:crypto';
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { parseListFilters } from '@berth/filters';
import { PluginSetView, token } from '@berth/plugin';

type Report = PluginSetView['reports'][number];

/** The in-process introspection service: what loaded, and this server's identity. */
export class IntrospectionService {
  private cachedUuid?: string;

  constructor(private readonly plugins: PluginSetView, private readonly root: string) {}

  /** Returns the plugin reports in load order, filtered on `type` and `id`. */
  listPlugins(filters: readonly string[]): Report[] {
    const filter = parseListFilters(filters);
    return this.plugins.reports.filter((r) =>
      filter.match({
        field: (path) => {
          if (path.length !== 1) return undefined;
          if (path[0] === 'type') return r.type;
          if (path[0] === 'id') return r.id;
          return undefined;
        },
      }),
    );
  }

  /** Returns the server's UUID, created once and kept in `<root>/uuid` across restarts. */
  uuid(): string {
    if (this.cachedUuid) return this.cachedUuid;
    const file = join(this.root, 'uuid');
    try {
      const existing = readFileSync(file, 'utf8').trim();
      if (/^[0-9a-f-]{36}$/.test(existing)) return (this.cachedUuid = existing);
    } catch {
      // No uuid yet: create one below.
    }
    mkdirSync(this.root, { recursive: true, mode: 0o711 });
    const id = randomUUID();
    const tmp = `${file}.${process.pid}.tmp`;
    const fd = openSync(tmp, 'w', 0o644);
    try {
      writeSync(fd, id);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, file);
    return (this.cachedUuid = id);
  }
}

export const IntrospectionServiceToken = token<IntrospectionService>('io.containerd.service.v1/introspection');
