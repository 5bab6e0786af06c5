// What a JSONata syntax tree reads and uses, for the checks at load (expression.ts).

export interface ExpressionReads {
  readonly steps: Set<string>;
  dynamicSteps: boolean;
  readsBody: boolean;
  usesEval: boolean;
  /** Regex literals, to compile for the linear engine at load. */
  readonly regexes: RegExp[];
  /** `$toMillis(x, picture)` or `x ~> $toMillis(picture)`; see TO_MILLIS_PICTURE. */
  toMillisPicture: boolean;
}

/**
 * Finds the `steps.<name>` and `request.body` reads in a JSONata syntax tree. A name is a scope
 * field only at the head of a path evaluated against the root (`steps.x`, `$.steps.x`,
 * `$$.steps.x`); `items[steps > 1]` reads the items' own field. Whatever cannot be pinned to a
 * literal step name (`steps.*`, `$lookup(steps, n)`, a bare `$`) counts as a dynamic read, and
 * anything that may touch the request body counts as reading it.
 */
export function analyseExpression(ast: unknown): ExpressionReads {
  const reads: ExpressionReads = {
    steps: new Set(),
    dynamicSteps: false,
    readsBody: false,
    usesEval: false,
    regexes: [],
    toMillisPicture: false,
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
  if (callsToMillis(node, 2) || (node.type === 'apply' && callsToMillis(node.rhs, 1)))
    r.toMillisPicture = true;
  if (node.type === 'path' && Array.isArray(node.steps)) {
    visitPath(node.steps, atRoot, r);
    for (const [k, v] of Object.entries(node)) if (k !== 'steps') visit(v, false, r);
    return;
  }
  if (node.type === 'variable') {
    if (node.value === 'eval') r.usesEval = true;
    if (node.value === '$' || (node.value === '' && atRoot)) readsEverything(r);
  }
  if (node.type === 'name' || node.type === 'variable') {
    if (node.type === 'name' && atRoot) readRootField(node, undefined, r);
    visitChildren(node, r);
    return;
  }
  for (const v of Object.values(node)) visit(v, atRoot, r);
}

function visitPath(steps: readonly unknown[], atRoot: boolean, r: ExpressionReads): void {
  const [head, second] = steps;
  let rest = 1;
  if (isRecord(head) && head.type === 'name' && atRoot) {
    readRootField(head, second, r);
    visitChildren(head, r);
  } else if (
    isRecord(head) &&
    head.type === 'variable' &&
    (head.value === '$' || (head.value === '' && atRoot))
  ) {
    // `$.x` / `$$.x`: the root object itself, then its field.
    if (isRecord(second) && second.type === 'name') {
      readRootField(second, steps[2], r);
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

function readRootField(field: Record<string, unknown>, next: unknown, r: ExpressionReads): void {
  const literalNext =
    isRecord(next) && next.type === 'name' && typeof next.value === 'string' && field.stages === undefined
      ? next.value
      : undefined;
  if (field.value === 'steps') {
    if (literalNext === undefined) r.dynamicSteps = true;
    else r.steps.add(literalNext);
  }
  if (field.value === 'request' && (literalNext === undefined || literalNext === 'body')) r.readsBody = true;
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
