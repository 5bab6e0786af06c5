import jsonata from 'jsonata';
import { ERRORS, SagameshError } from '../errors';
import type { TemplateScope } from './definition';
import { TO_MILLIS_PICTURE, evaluationBindings, installGuards } from './expression-guards';
import {
  EXPRESSION_LIMITS,
  ExpressionLimitError,
  JSONATA_GUARDRAILS,
  JSONATA_LIMIT_CODES,
  jsonFits,
} from './expression-limits';
import { analyseExpression, plainFieldPath } from './expression-analysis';
import type { ExpressionReads } from './expression-analysis';
import { LinearRegExp, compileLinearRegExp, withRegexDeadline } from './linear-regexp';
import { formatPath } from './problems';
import type { Path } from './problems';
import type { Compilation } from './template-compilation';
import { isCredentialName } from '../redaction';

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

// --- compiling

/**
 * One source compiled, before it is tied to a field: what every field with that source shares.
 * `jsonata()` costs ~65 µs however short the expression (its parser rebuilds its tables on every
 * call), so a load compiles each distinct source once, and a reload does so ahead of time in small
 * slices (precompileExpressions) rather than in one block.
 */
export interface PrecompiledExpression {
  readonly run?: jsonata.Expression;
  readonly found?: ExpressionReads;
  readonly fields?: readonly string[] | undefined;
  readonly problems: readonly string[];
}

/** Precompiled expressions of one load, by source. */
export type KnownExpressions = ReadonlyMap<string, PrecompiledExpression>;

/**
 * JSONata sorts for `^(…)` with the merge sort that `$sort` replaces (expression-collections.ts),
 * beyond the reach of a binding: memory grows with the square of the length and no time check
 * runs between its steps (73,626 items: 4 GB, the process ended). `$sort` with a function does the
 * same job.
 */
const ORDER_BY =
  'the order-by operator ^(…) is not available (JSONata sorts for it in memory that grows with the square of the length); use $sort(array, function($l, $r) { $l.key > $r.key })';

export function precompileExpression(source: string): PrecompiledExpression {
  let run: jsonata.Expression;
  try {
    run = jsonata(source, JSONATA_OPTIONS);
  } catch (err) {
    const at = isRecord(err) && typeof err.position === 'number' ? ` (at character ${err.position})` : '';
    return { problems: [`\${${source}}: ${messageOf(err)}${at}`] };
  }
  let found: ExpressionReads;
  try {
    found = analyseExpression(run.ast());
  } catch (err) {
    // The analysis walks the syntax tree recursively: `${((((…1))))}` nested a few thousand deep
    // overflows the stack (a RangeError that escaped the loader uncoded, found by fuzzing).
    return { problems: [`\${${source}}: the expression cannot be analysed: ${messageOf(err)}`] };
  }
  const problems: string[] = [];
  if (found.usesEval)
    problems.push(`\${${source}}: $eval is not allowed (it would run data as an expression)`);
  for (const regex of found.regexes) {
    try {
      compileLinearRegExp(regex);
    } catch (err) {
      problems.push(
        `\${${source}}: /${regex.source}/ cannot run in linear time (RE2 syntax: no backreferences or lookaround): ${messageOf(err)}`,
      );
    }
  }
  if (found.toMillisPicture) problems.push(`\${${source}}: ${TO_MILLIS_PICTURE}`);
  if (found.orderBy) problems.push(`\${${source}}: ${ORDER_BY}`);
  for (const meant of found.hyphenatedNames) {
    problems.push(
      `\${${source}}: JSONata reads a '-' in a name as a minus; write a name with '-' in backticks: ${meant}`,
    );
  }
  const request = found.request.read();
  for (const [kind, names] of [
    ['headers', request.headers],
    ['query', request.query],
  ] as const) {
    for (const name of names === 'all' ? [] : names.filter(isCredentialName)) {
      problems.push(
        `\${${source}}: reads request.${kind}.${name}, a credential: the saga log would keep it for every recovery to replay; let the mesh authenticate step calls instead`,
      );
    }
  }
  installGuards(run);
  return { run, found, fields: plainFieldPath(run.ast()), problems };
}

export function compileExpression(source: string, path: Path, c: Compilation): Expression | undefined {
  const pre = c.known?.get(source) ?? precompileExpression(source);
  for (const message of pre.problems) c.problems.push({ path, kind: 'expression', message });
  if (!pre.run || !pre.found) return undefined;
  for (const step of pre.found.steps) c.reads.push({ step, path });
  if (pre.found.dynamicSteps) c.dynamicStepReads.push(path);
  if (pre.found.readsBody) c.readsBody = true;
  c.request.add(pre.found.request.read());
  return { source, run: pre.run, fields: pre.fields, where: formatPath(path) };
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
    const bindings = await evaluationBindings();
    // The same limit JSONata's guardrail counts from its start, for the matches of its regexes.
    const deadline = Date.now() + EXPRESSION_LIMITS.timeoutMs;
    value = await withRegexDeadline(deadline, () => expr.run.evaluate(scope, bindings));
  } catch (err) {
    const detail = `\${${expr.source}}: ${messageOf(err)}`;
    if (err instanceof ExpressionLimitError || (isRecord(err) && JSONATA_LIMIT_CODES.has(String(err.code)))) {
      throw new SagameshError(ERRORS.EXPRESSION_LIMIT, `${expr.where}: ${detail}`, [], { cause: err });
    }
    throw renderError(expr.where, detail, err);
  }
  // JSONata shares values: `$map(xs, function($v) { request.body })` is built in milliseconds and
  // within the budget, yet 10,000 copies of the body once written out (minutes of copying). A plain
  // field path above needs no such check: it yields part of the scope, a tree as parsed.
  if (!jsonFits(value, EXPRESSION_LIMITS.valueLength)) {
    throw new SagameshError(
      ERRORS.EXPRESSION_LIMIT,
      `${expr.where}: \${${expr.source}}: yielded more than ${EXPRESSION_LIMITS.valueLength / 1_048_576} Mi characters of JSON`,
    );
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
