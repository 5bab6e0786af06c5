import { ERRORS, SagameshError } from '../errors';
import type { SagaDefinition } from './definition';

/**
 * The loaded definitions, looked up per request. Matching is exact: method (any case) and path
 * without its query string; one map lookup per request.
 */
export class DefinitionSet {
  private readonly byMatch = new Map<string, SagaDefinition>();
  private readonly byName = new Map<string, SagaDefinition>();
  private readonly all: readonly SagaDefinition[];
  /** Every pivot definition's `upstream.headers` names: sagamesh's alone, never a client's. */
  readonly ownedHeaders: ReadonlySet<string>;

  /** Throws SagameshError(DEF_DUPLICATE) for a repeated name or match; the loader never yields one. */
  constructor(defs: readonly SagaDefinition[]) {
    for (const def of defs) {
      const key = matchKey(def.match.method, def.match.path);
      const other = this.byMatch.get(key) ?? this.byName.get(def.name);
      if (other) {
        throw new SagameshError(
          ERRORS.DEF_DUPLICATE,
          `${def.name} (${def.file}) clashes with ${other.name} (${other.file})`,
        );
      }
      this.byMatch.set(key, def);
      this.byName.set(def.name, def);
    }
    this.all = Object.freeze([...defs]);
    this.ownedHeaders = new Set(defs.flatMap((d) => Object.keys(d.upstream?.headers ?? {})));
  }

  get size(): number {
    return this.all.length;
  }

  /** `path` may carry a query string (`/trips?x=1`); it is ignored. */
  match(method: string, path: string): SagaDefinition | undefined {
    const q = path.indexOf('?');
    return this.byMatch.get(matchKey(method, q < 0 ? path : path.slice(0, q)));
  }

  get(name: string): SagaDefinition | undefined {
    return this.byName.get(name);
  }

  list(): readonly SagaDefinition[] {
    return this.all;
  }
}

function matchKey(method: string, path: string): string {
  return `${method.toUpperCase()} ${path}`;
}
