import type { FieldPath } from '../redaction';

/**
 * What a definition's templates read of the incoming request besides its method and path, found at
 * load (expression.ts). It decides what a saga keeps of its request — in the scope it runs with
 * and in its `saga.started` record, which recovery runs from — and nothing more is kept.
 */
export interface RequestReads {
  /** Header names read by a literal name (`request.headers.\`x-tenant\``); `all` when read any other way. */
  readonly headers: readonly string[] | 'all';
  /** Query parameter names, likewise. */
  readonly query: readonly string[] | 'all';
  /** Body field paths read, each the literal fields before anything dynamic (`[]`: the whole body). None: unread. */
  readonly body: readonly FieldPath[];
}

export const NO_REQUEST_READS: RequestReads = Object.freeze({ headers: [], query: [], body: [] });

/** Collects reads from expressions, then templates, then a whole definition. */
export class RequestReadsCollector {
  private readonly headers = new Set<string>();
  private readonly query = new Set<string>();
  private allHeaders = false;
  private allQuery = false;
  private readonly body: FieldPath[] = [];

  header(name: string | undefined): void {
    if (name === undefined) this.allHeaders = true;
    else this.headers.add(name);
  }

  queryParam(name: string | undefined): void {
    if (name === undefined) this.allQuery = true;
    else this.query.add(name);
  }

  bodyPath(path: FieldPath): void {
    this.body.push(path);
  }

  /** `request` itself (or `$`): everything. */
  everything(): void {
    this.allHeaders = true;
    this.allQuery = true;
    this.body.push([]);
  }

  add(reads: RequestReads): void {
    if (reads.headers === 'all') this.allHeaders = true;
    else for (const h of reads.headers) this.headers.add(h);
    if (reads.query === 'all') this.allQuery = true;
    else for (const q of reads.query) this.query.add(q);
    this.body.push(...reads.body);
  }

  read(): RequestReads {
    return Object.freeze({
      headers: this.allHeaders ? 'all' : Object.freeze([...this.headers].sort()),
      query: this.allQuery ? 'all' : Object.freeze([...this.query].sort()),
      body: Object.freeze(dedupe(this.body)),
    });
  }
}

/** A path read whole makes any path below it redundant: [guest] covers [guest, name]. Sorted. */
function dedupe(paths: readonly FieldPath[]): FieldPath[] {
  const out: FieldPath[] = [];
  for (const p of [...paths].sort((a, b) => a.length - b.length)) {
    if (!out.some((q) => q.length <= p.length && q.every((f, i) => f === p[i])))
      out.push(Object.freeze([...p]));
  }
  const key = (p: FieldPath): string => p.join('\u0000');
  return out.sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));
}

/**
 * Whether a template reading `read` may need the field at `redacted` (`*` any field): when one is
 * a prefix of the other. Then the saga log must keep that field as it came.
 */
export function overlaps(read: FieldPath, redacted: FieldPath): boolean {
  const n = Math.min(read.length, redacted.length);
  for (let i = 0; i < n; i++) if (redacted[i] !== '*' && redacted[i] !== read[i]) return false;
  return true;
}
