import jsonata from 'jsonata';
import { ERRORS, SagameshError } from '../errors';
import type { TemplateScope } from './definition';
import { TO_MILLIS_PICTURE, installGuards } from './expression-guards';
import {
  ExpressionLimitError,
  JSONATA_GUARDRAILS,
  JSONATA_LIMIT_CODES,
  evaluationBindings,
} from './expression-limits';
import { LinearRegExp, compileLinearRegExp } from './linear-regexp';
import { formatPath } from './problems';
import type { Path } from './problems';
import type { Compilation } from './template-compilation';

/**
 * One `${ <JSONata> }` expression of a template: compiled once at load (problems and step reads go
 * to the Compilation, never thrown), evaluated per saga into plain JSON, within EXPRESSION_LIMITS
 * and with linear-time regular expressions. Evaluation throws SagameshError(EXPRESSION_LIMIT) past
 * a limit and SagameshError(STEP_TEMPLATE) for anything else.
 */

/**
 * jsonata.d.ts types RegexEngine as RegExpConstructor; jsonata.js only ever does
 * `new RegexEngine(literal)`, then `exec` and `lastIndex` (see linear-regexp.ts).
 */
const JSONATA_OPTIONS = {
  ...JSONATA_GUARDRAILS,
  RegexEngine: LinearRegExp as unknown as RegExpConstructor,
};

export interface Expression {
  readonly source: string;
  readonly run: jsonata.Expression;
  /** Set when the expression is a plain field path (`steps.hotel.response.body.id`). */
  readonly fields: readonly string[] | undefined;
  /** Field path for render errors. */
  readonly where: string;
}

// --- what an expression reads

interface ExpressionReads {
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
function analyseExpression(ast: unknown): ExpressionReads {
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

// --- compiling

export function compileExpression(source: string, path: Path, c: Compilation): Expression | undefined {
  let run: jsonata.Expression;
  try {
    run = jsonata(source, JSONATA_OPTIONS);
  } catch (err) {
    const at = isRecord(err) && typeof err.position === 'number' ? ` (at character ${err.position})` : '';
    c.problems.push({ path, kind: 'expression', message: `\${${source}}: ${messageOf(err)}${at}` });
    return undefined;
  }
  const found = analyseExpression(run.ast());
  if (found.usesEval) {
    c.problems.push({
      path,
      kind: 'expression',
      message: `\${${source}}: $eval is not allowed (it would run data as an expression)`,
    });
  }
  for (const regex of found.regexes) {
    try {
      compileLinearRegExp(regex);
    } catch (err) {
      const message = `\${${source}}: /${regex.source}/ cannot run in linear time (RE2 syntax: no backreferences or lookaround): ${messageOf(err)}`;
      c.problems.push({ path, kind: 'expression', message });
    }
  }
  if (found.toMillisPicture)
    c.problems.push({ path, kind: 'expression', message: `\${${source}}: ${TO_MILLIS_PICTURE}` });
  installGuards(run);
  for (const step of found.steps) c.reads.push({ step, path });
  if (found.dynamicSteps) c.dynamicStepReads.push(path);
  if (found.readsBody) c.readsBody = true;
  return { source, run, fields: plainFieldPath(run.ast()), where: formatPath(path) };
}

/** `a.b.c` with nothing else (no filters, wildcards, functions): the fields, else undefined. */
function plainFieldPath(ast: unknown): string[] | undefined {
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

const NEEDS_JSONATA = Symbol('needs JSONata');

/**
 * Plain field paths are most expressions in practice and take microseconds this way instead of a
 * JSONata evaluation. An array before the last field means JSONata's mapping semantics apply, so
 * that case goes to JSONata.
 */
function lookupFields(scope: TemplateScope, fields: readonly string[]): unknown {
  let value: unknown = scope;
  for (const field of fields) {
    if (Array.isArray(value)) return NEEDS_JSONATA;
    if (!isRecord(value) || !Object.hasOwn(value, field)) return undefined;
    value = value[field];
  }
  return value;
}

// --- evaluating

export async function evaluate(expr: Expression, scope: TemplateScope): Promise<unknown> {
  if (expr.fields) {
    const found = lookupFields(scope, expr.fields);
    if (found !== NEEDS_JSONATA) return toJson(found, expr);
  }
  let value: unknown;
  try {
    value = await expr.run.evaluate(scope, evaluationBindings());
  } catch (err) {
    const detail = `\${${expr.source}}: ${messageOf(err)}`;
    if (err instanceof ExpressionLimitError || (isRecord(err) && JSONATA_LIMIT_CODES.has(String(err.code)))) {
      throw new SagameshError(ERRORS.EXPRESSION_LIMIT, `${expr.where}: ${detail}`, [], { cause: err });
    }
    throw renderError(expr.where, detail, err);
  }
  return toJson(value, expr);
}

/**
 * JSONata answers with its own shapes (sequences flagged with extra properties, null-prototype
 * objects, functions); what leaves a template is plain JSON.
 */
function toJson(value: unknown, expr: Expression): unknown {
  if (value === undefined || value === null || typeof value === 'string' || typeof value === 'boolean')
    return value;
  if (typeof value === 'number') {
    if (Number.isFinite(value)) return value;
    throw renderError(expr.where, `\${${expr.source}} yielded ${value}, which JSON cannot hold`);
  }
  if (Array.isArray(value)) {
    const out: unknown[] = [];
    for (const item of value) {
      const v = toJson(item, expr);
      if (v !== undefined) out.push(v);
    }
    return out;
  }
  if (typeof value === 'object') {
    // fromEntries, not assignment: a `__proto__` key from data must stay a plain key.
    const out: [string, unknown][] = [];
    for (const [k, v] of Object.entries(value)) {
      const j = toJson(v, expr);
      if (j !== undefined) out.push([k, j]);
    }
    return Object.fromEntries(out);
  }
  throw renderError(expr.where, `\${${expr.source}} yielded a ${typeof value}, not a JSON value`);
}

// --- helpers

export function renderError(where: string, detail: string, cause?: unknown): SagameshError {
  return new SagameshError(
    ERRORS.STEP_TEMPLATE,
    `${where}: ${detail}`,
    [],
    cause === undefined ? undefined : { cause },
  );
}

function messageOf(err: unknown): string {
  if (typeof err === 'object' && err !== null && 'message' in err && typeof err.message === 'string') {
    return err.message;
  }
  return String(err);
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
