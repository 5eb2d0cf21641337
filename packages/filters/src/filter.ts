import type { Adaptor } from './adaptor';

/** A parsed filter: parse once, then match against as many objects as needed. */
export interface Filter {
  /** Reports whether the object behind the adaptor passes the filter. */
  match(adaptor: Adaptor): boolean;
  /**
   * Problems that do not fail the parse but make part of the filter match nothing: `~=` patterns
   * that do not compile. containerd 1.6 logs these ("error compiling regexp") and carries on, so a
   * service may log them too.
   */
  readonly warnings: readonly string[];
}

/** The filter that matches everything: the empty filter string, or no filters at all. */
export const ALWAYS: Filter = Object.freeze({ match: () => true, warnings: Object.freeze([]) });

/** The comparison a selector makes. */
export type Operator = 'present' | 'equal' | 'not-equal' | 'matches';

/** One `fieldpath[op value]` term. */
export class Selector implements Filter {
  readonly warnings: readonly string[];

  /**
   * @param re the compiled pattern for `matches`; `undefined` when it did not compile, which makes
   *   the selector match nothing.
   */
  constructor(
    readonly path: readonly string[],
    readonly operator: Operator,
    readonly value: string,
    private readonly re?: RegExp,
    warning?: string,
  ) {
    this.warnings = warning === undefined ? [] : [warning];
  }

  match(adaptor: Adaptor): boolean {
    const found = adaptor.field(this.path);
    switch (this.operator) {
      case 'present':
        return found !== undefined;
      case 'equal':
        return found !== undefined && found === this.value;
      // containerd compares an absent field as "": `labels.x!=y` and `labels.x~=^$` hold when
      // there is no label x.
      case 'not-equal':
        return (found ?? '') !== this.value;
      case 'matches':
        return this.re !== undefined && this.re.test(found ?? '');
    }
  }
}

/** Selectors joined by `,`: all must match. */
export class AllOf implements Filter {
  readonly warnings: readonly string[];

  constructor(readonly filters: readonly Filter[]) {
    this.warnings = filters.flatMap((f) => f.warnings);
  }

  match(adaptor: Adaptor): boolean {
    for (const f of this.filters) if (!f.match(adaptor)) return false;
    return true;
  }
}

/** A request's repeated filters: any may match. */
export class AnyOf implements Filter {
  readonly warnings: readonly string[];

  constructor(readonly filters: readonly Filter[]) {
    this.warnings = filters.flatMap((f) => f.warnings);
  }

  match(adaptor: Adaptor): boolean {
    for (const f of this.filters) if (f.match(adaptor)) return true;
    return false;
  }
}
