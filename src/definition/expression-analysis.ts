// What a JSONata syntax tree reads and uses, for the checks at load (expression.ts).
import { RequestReadsCollector } from './request-reads';

export interface ExpressionReads {
  readonly steps: Set<string>;
  dynamicSteps: boolean;
  readsBody: boolean;
  usesEval: boolean;
  /** What of the request beyond method and path: headers, query parameters, body fields. */
  readonly request: RequestReadsCollector;
  /** Regex literals, to compile for the linear engine at load. */
  readonly regexes: RegExp[];
  /** `$toMillis(x, picture)` or `x ~> $toMillis(picture)`; see TO_MILLIS_PICTURE. */
  toMillisPicture: boolean;
  /** The order-by operator `^(…)`; see ORDER_BY in expression.ts. */
  orderBy: boolean;
  /**
   * `headers.x-custom`, which JSONata reads as `headers.x` minus `custom`: the path as it was
   * meant, with the hyphenated name in backticks (`` request.headers.`x-custom` ``).
   */
  readonly hyphenatedNames: string[];
}

/**
 * Finds the `steps.<name>` and `request.*` reads in a JSONata syntax tree. A name is a scope
 * field only at the head of a path evaluated against the root (`steps.x`, `$.steps.x`,
 * `$$.steps.x`); `items[steps > 1]` reads the items' own field. Whatever cannot be pinned to a
 * literal step name (`steps.*`, `$lookup(steps, n)`, a bare `$`) counts as a dynamic read, and
 * anything that may touch the request body counts as reading it. Likewise for the request: a
 * header or query parameter read other than by a literal name (`request.headers.*`,
 * `$keys(request.query)`, `request` alone, `$`) reads them all, and a body path reads the subtree
 * under its literal fields (`request.body.items[0].price` reads `items`).
 */
export function analyseExpression(ast: unknown): ExpressionReads {
  const reads: ExpressionReads = {
    steps: new Set(),
    dynamicSteps: false,
    readsBody: false,
    usesEval: false,
    request: new RequestReadsCollector(),
    regexes: [],
    toMillisPicture: false,
    orderBy: false,
    hyphenatedNames: [],
  };
  visit(ast, true, reads);
  return reads;
}

function visit(node: unknown, atRoot: boolean, r: ExpressionReads): void {
  if (Array.isArray(node)) {
    for (const n of node) visit(n, atRoot, r);
    return;
  }
  if (!isRecord(node)) return;
  if (node.type === 'regex' && node.value instanceof RegExp) r.regexes.push(node.value);
  const hyphenated = hyphenatedName(node);
  if (hyphenated !== undefined) {
    r.hyphenatedNames.push(hyphenated);
    return; // `request.headers.x` would count as a read of header `x`
  }
  if (callsToMillis(node, 2) || (node.type === 'apply' && callsToMillis(node.rhs, 1)))
    r.toMillisPicture = true;
  if (node.type === 'path' && Array.isArray(node.steps)) {
    visitPath(node.steps, atRoot, r);
    for (const [k, v] of Object.entries(node)) if (k !== 'steps') visit(v, false, r);
    return;
  }
  if (node.type === 'sort') r.orderBy = true;
  if (node.type === 'variable') {
    if (node.value === 'eval') r.usesEval = true;
    if (node.value === '$' || (node.value === '' && atRoot)) readsEverything(r);
  }
  if (node.type === 'name' || node.type === 'variable') {
    if (node.type === 'name' && atRoot) readRootField(node, [], r);
    visitChildren(node, r);
    return;
  }
  for (const v of Object.values(node)) visit(v, atRoot, r);
}

function visitPath(steps: readonly unknown[], atRoot: boolean, r: ExpressionReads): void {
  const [head, second] = steps;
  let rest = 1;
  if (isRecord(head) && head.type === 'name' && atRoot) {
    readRootField(head, steps.slice(1), r);
    visitChildren(head, r);
  } else if (
    isRecord(head) &&
    head.type === 'variable' &&
    (head.value === '$' || (head.value === '' && atRoot))
  ) {
    // `$.x` / `$$.x`: the root object itself, then its field.
    if (isRecord(second) && second.type === 'name') {
      readRootField(second, steps.slice(2), r);
      visitChildren(second, r);
      rest = 2;
    } else readsEverything(r);
    visitChildren(head, r);
  } else visit(head, atRoot, r);
  for (const step of steps.slice(rest)) visit(step, false, r);
}

/** A path step's own filters and sort terms see the step's value, not the root. */
function visitChildren(node: Record<string, unknown>, r: ExpressionReads): void {
  for (const v of Object.values(node)) visit(v, false, r);
}

/** `field` heads a path from the root; `rest` are the path's steps after it. */
function readRootField(field: Record<string, unknown>, rest: readonly unknown[], r: ExpressionReads): void {
  const literalNext = field.stages === undefined ? nameOf(rest[0]) : undefined;
  if (field.value === 'steps') {
    if (literalNext === undefined) r.dynamicSteps = true;
    else r.steps.add(literalNext);
  }
  if (field.value !== 'request') return;
  if (literalNext === undefined) {
    r.readsBody = true;
    r.request.everything();
    return;
  }
  // `request.headers.x`: a literal name after a plain `headers` step; anything else reads them all.
  const named = isPlainName(rest[0]) ? nameOf(rest[1]) : undefined;
  if (literalNext === 'headers') r.request.header(named);
  else if (literalNext === 'query') r.request.queryParam(named);
  else if (literalNext === 'body') {
    r.readsBody = true;
    const path: string[] = [];
    // The fields up to the first step that is not a plain name: its subtree is what is read.
    for (let i = 0; isPlainName(rest[i]); i++) {
      const next = rest[i + 1];
      const name = nameOf(next);
      if (name === undefined) break;
      path.push(name);
      if (!isPlainName(next)) break;
    }
    r.request.bodyPath(path);
  }
}

/** A path step that is a field name: its name (filters and the like on it may follow). */
function nameOf(step: unknown): string | undefined {
  return isRecord(step) && step.type === 'name' && typeof step.value === 'string' ? step.value : undefined;
}

/** A field name step with nothing on it (no filter, sort, index or grouping). */
function isPlainName(step: unknown): boolean {
  return (
    isRecord(step) &&
    nameOf(step) !== undefined &&
    Object.keys(step).every((k) => k === 'type' || k === 'value' || k === 'position')
  );
}

/**
 * `a.headers.x-custom-id` parses as `(a.headers.x - custom) - id`. A chain of subtractions whose
 * first operand is a path ending in `headers.<name>` or `query.<name>` and whose others are bare
 * names is a header or parameter name written without backticks — subtracting strings would fail
 * anyway — so it is reported with the spelling that works. Undefined for anything else.
 */
function hyphenatedName(node: Record<string, unknown>): string | undefined {
  const parts: string[] = [];
  let at: unknown = node;
  while (isRecord(at) && at.type === 'binary' && at.value === '-') {
    const rhs = at.rhs;
    const name =
      isRecord(rhs) && rhs.type === 'path' && Array.isArray(rhs.steps) && rhs.steps.length === 1
        ? plainNameOf(rhs.steps[0])
        : undefined;
    if (name === undefined) return undefined;
    parts.unshift(name);
    at = at.lhs;
  }
  if (parts.length === 0 || !isRecord(at) || at.type !== 'path' || !Array.isArray(at.steps)) return undefined;
  const names = at.steps.map(plainNameOf);
  const [container, first] = names.slice(-2);
  if (names.some((n) => n === undefined) || (container !== 'headers' && container !== 'query'))
    return undefined;
  return `${names.slice(0, -1).join('.')}.\`${[first, ...parts].join('-')}\``;
}

function plainNameOf(step: unknown): string | undefined {
  return isPlainName(step) ? nameOf(step) : undefined;
}

function callsToMillis(node: unknown, minArgs: number): boolean {
  return (
    isRecord(node) &&
    node.type === 'function' &&
    isRecord(node.procedure) &&
    node.procedure.type === 'variable' &&
    node.procedure.value === 'toMillis' &&
    Array.isArray(node.arguments) &&
    node.arguments.length >= minArgs
  );
}

function readsEverything(r: ExpressionReads): void {
  r.dynamicSteps = true;
  r.readsBody = true;
  r.request.everything();
}

/** `a.b.c` with nothing else (no filters, wildcards, functions): the fields, else undefined. */
export function plainFieldPath(ast: unknown): string[] | undefined {
  if (!isRecord(ast) || ast.type !== 'path' || !Array.isArray(ast.steps)) return undefined;
  if (Object.keys(ast).some((k) => k !== 'type' && k !== 'steps')) return undefined;
  const fields: string[] = [];
  for (const step of ast.steps) {
    if (!isRecord(step) || step.type !== 'name' || typeof step.value !== 'string') return undefined;
    if (Object.keys(step).some((k) => k !== 'type' && k !== 'value' && k !== 'position')) return undefined;
    fields.push(step.value);
  }
  return fields;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
