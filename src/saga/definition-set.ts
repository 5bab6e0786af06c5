import { ERRORS, SagameshError } from '../errors';
import type { SagaDefinition } from './definition';
import { canonicalPath, lenientPath, mayBeAmbiguous } from './path-match';

/**
 * The loaded definitions, looked up per request: method (any case) and path without its query
 * string, in the readings of path-match.ts; one map lookup per request, two for an odd path.
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
      const key = matchKey(def.match.method, canonicalPath(def.match.path) ?? def.match.path);
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

  /** The saga a request runs: its path's canonical reading matches. A query string is ignored. */
  match(method: string, path: string): SagaDefinition | undefined {
    const canonical = canonicalPath(withoutQuery(path));
    return canonical === undefined ? undefined : this.byMatch.get(matchKey(method, canonical));
  }

  /**
   * The saga a request's path names only in its lenient reading (`/itineraries;x`, `%2F`): such a
   * request must be refused, not passed on. Undefined when `match` finds the saga, or none does.
   */
  ambiguous(method: string, path: string): SagaDefinition | undefined {
    const p = withoutQuery(path);
    if (!mayBeAmbiguous(p) || this.match(method, p)) return undefined;
    return this.byMatch.get(matchKey(method, lenientPath(p)));
  }

  get(name: string): SagaDefinition | undefined {
    return this.byName.get(name);
  }

  list(): readonly SagaDefinition[] {
    return this.all;
  }
}

function withoutQuery(path: string): string {
  const q = path.indexOf('?');
  return q < 0 ? path : path.slice(0, q);
}

function matchKey(method: string, path: string): string {
  return `${method.toUpperCase()} ${path}`;
}
