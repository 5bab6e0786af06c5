import { ERRORS, SagameshError } from '../errors';
import { UNDO_PARAM } from './compile-saga';
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
  /** Undo routes (`spec.undo`): few, matched segment by segment; `{sagaId}` takes one segment. */
  private readonly undoRoutes: {
    readonly method: string;
    readonly segments: readonly string[];
    readonly definition: SagaDefinition;
  }[] = [];
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
      if (def.undo) {
        const method = def.undo.match.method.toUpperCase();
        const segments = segmentsOf(def.undo.match.path);
        const clash = this.undoRoutes.find((r) => r.method === method && sameShape(r.segments, segments));
        if (clash) {
          throw new SagameshError(
            ERRORS.DEF_DUPLICATE,
            `${def.name} (${def.file}): its undo route clashes with ${clash.definition.name}'s (${clash.definition.file})`,
          );
        }
        this.undoRoutes.push({ method, segments, definition: def });
      }
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

  /**
   * The undo a request asks for (`spec.undo`), read as `match` reads a path: its canonical reading
   * (so a saga id, like any path, is matched lower-cased). A saga's own match wins over an undo route.
   */
  matchUndo(method: string, path: string): { definition: SagaDefinition; sagaId: string } | undefined {
    if (this.undoRoutes.length === 0) return undefined;
    const canonical = canonicalPath(withoutQuery(path));
    return canonical === undefined ? undefined : this.undoOf(method.toUpperCase(), canonical);
  }

  /** The undo route a path names only in its lenient reading: refused, as `ambiguous` does. */
  ambiguousUndo(method: string, path: string): SagaDefinition | undefined {
    const p = withoutQuery(path);
    if (this.undoRoutes.length === 0 || !mayBeAmbiguous(p) || this.matchUndo(method, p)) return undefined;
    return this.undoOf(method.toUpperCase(), lenientPath(p))?.definition;
  }

  private undoOf(method: string, path: string): { definition: SagaDefinition; sagaId: string } | undefined {
    const segments = segmentsOf(path);
    for (const route of this.undoRoutes) {
      if (route.method !== method || route.segments.length !== segments.length) continue;
      let sagaId: string | undefined;
      const fits = route.segments.every((want, i) => {
        if (want !== UNDO_PARAM) return want === segments[i];
        sagaId = segments[i];
        return true;
      });
      if (fits && sagaId) return { definition: route.definition, sagaId };
    }
    return undefined;
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

/** A route's or a path's segments, lower-cased as canonical paths are (the parameter stays as written). */
function segmentsOf(path: string): string[] {
  return path
    .split('/')
    .filter((segment) => segment !== '')
    .map((segment) => (segment === UNDO_PARAM ? segment : segment.toLowerCase()));
}

/** Two undo routes that some path would match both. */
function sameShape(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((s, i) => s === b[i] || s === UNDO_PARAM || b[i] === UNDO_PARAM);
}
