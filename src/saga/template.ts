import jsonata from 'jsonata';
import { ERRORS, SagameshError } from '../errors';
import type { Template, TemplateScope, UrlTemplate } from './definition';
import { formatPath } from './problems';
import type { Path } from './problems';

/**
 * Templates: JSON values whose strings hold `${ <JSONata> }` expressions, compiled once at load and
 * rendered per saga. Compilation never throws; it reports problems with the field path of the
 * string that holds them. Rendering throws SagameshError(STEP_TEMPLATE) only.
 */

export const NOT_JSON = 'must be a JSON value (YAML-only values like !!binary or .inf are not)';

/** A compile-time problem; the loader turns `kind` into a DEF_* code and `path` into a line. */
export interface TemplateProblem {
  readonly path: Path;
  readonly kind: 'expression' | 'url' | 'value';
  readonly message: string;
}

/** A `steps.<name>` read and the field that holds it, for the loader's reference checks. */
export interface StepRead {
  readonly step: string;
  readonly path: Path;
}

export interface Compiled<T> {
  /** Undefined when there are problems. */
  readonly template: T | undefined;
  readonly problems: readonly TemplateProblem[];
  readonly reads: readonly StepRead[];
  /** Fields that read `steps` other than by a literal name (`steps.*`, `$lookup(steps, x)`, `$`). */
  readonly dynamicStepReads: readonly Path[];
}

/**
 * Guardrails for one evaluation. Definitions are written by operators, but a runaway recursion or a
 * `[1..1e9]` must fail one saga, not stall the process.
 */
const JSONATA_LIMITS = { timeout: 1000, stack: 500, sequence: 100_000 };

interface Expression {
  readonly source: string;
  readonly run: jsonata.Expression;
  /** Set when the expression is a plain field path (`steps.hotel.response.body.id`). */
  readonly fields: readonly string[] | undefined;
  /** Field path for render errors. */
  readonly where: string;
}

type Piece = string | Expression;

type Node =
  | { readonly kind: 'const'; readonly value: unknown }
  | { readonly kind: 'expr'; readonly expr: Expression }
  | { readonly kind: 'text'; readonly pieces: readonly Piece[] }
  | { readonly kind: 'array'; readonly items: readonly Node[] }
  | { readonly kind: 'object'; readonly entries: readonly (readonly [string, Node])[] };

/** What one compile call finds: problems, step reads and whether the request body is read. */
class Compilation {
  readonly problems: TemplateProblem[] = [];
  readonly reads: StepRead[] = [];
  readonly dynamicStepReads: Path[] = [];
  readsBody = false;

  result<T>(build: () => T | undefined): Compiled<T> {
    const template = this.problems.length === 0 ? build() : undefined;
    return { template, problems: this.problems, reads: this.reads, dynamicStepReads: this.dynamicStepReads };
  }

  get stepRefs(): readonly string[] {
    return Object.freeze([...new Set(this.reads.map((r) => r.step))]);
  }
}

// --- splitting `${...}` out of strings

/**
 * Splits `text` into literal text and expression sources. The end of an expression is the `}` that
 * closes its `${`, skipping braces inside JSONata strings, backquoted names and comments, so
 * `${ {'a': '}'}.a }` is one expression. `$${` stands for a literal `${`.
 */
export function splitInterpolation(
  text: string,
): { pieces: (string | { source: string })[] } | { error: string } {
  const pieces: (string | { source: string })[] = [];
  let literal = '';
  let i = 0;
  while (i < text.length) {
    if (text.startsWith('$${', i)) {
      literal += '${';
      i += 3;
    } else if (text.startsWith('${', i)) {
      const end = closingBrace(text, i + 2);
      if (end < 0) return { error: `unterminated \${ at character ${i + 1}` };
      const source = text.slice(i + 2, end);
      if (source.trim() === '') return { error: `empty \${} at character ${i + 1}` };
      if (literal !== '') pieces.push(literal);
      literal = '';
      pieces.push({ source });
      i = end + 1;
    } else {
      literal += text[i];
      i += 1;
    }
  }
  if (literal !== '' || pieces.length === 0) pieces.push(literal);
  return { pieces };
}

function closingBrace(text: string, from: number): number {
  let depth = 0;
  let i = from;
  while (i < text.length) {
    const c = text[i];
    if (c === '"' || c === "'") {
      i += 1;
      while (i < text.length && text[i] !== c) i += text[i] === '\\' ? 2 : 1;
    } else if (c === '`') {
      i = text.indexOf('`', i + 1);
      if (i < 0) return -1;
    } else if (c === '/' && text[i + 1] === '*') {
      i = text.indexOf('*/', i + 2);
      if (i < 0) return -1;
      i += 1;
    } else if (c === '{') depth += 1;
    else if (c === '}') {
      if (depth === 0) return i;
      depth -= 1;
    }
    i += 1;
  }
  return -1;
}

// --- what an expression reads

interface ExpressionReads {
  readonly steps: Set<string>;
  dynamicSteps: boolean;
  readsBody: boolean;
  usesEval: boolean;
}

/**
 * Finds the `steps.<name>` and `request.body` reads in a JSONata syntax tree. A name is a scope
 * field only at the head of a path evaluated against the root (`steps.x`, `$.steps.x`,
 * `$$.steps.x`); `items[steps > 1]` reads the items' own field. Whatever cannot be pinned to a
 * literal step name (`steps.*`, `$lookup(steps, n)`, a bare `$`) counts as a dynamic read, and
 * anything that may touch the request body counts as reading it.
 */
function analyseExpression(ast: unknown): ExpressionReads {
  const reads: ExpressionReads = { steps: new Set(), dynamicSteps: false, readsBody: false, usesEval: false };
  visit(ast, true, reads);
  return reads;
}

function visit(node: unknown, atRoot: boolean, r: ExpressionReads): void {
  if (Array.isArray(node)) {
    for (const n of node) visit(n, atRoot, r);
    return;
  }
  if (!isRecord(node)) return;
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

function readsEverything(r: ExpressionReads): void {
  r.dynamicSteps = true;
  r.readsBody = true;
}

// --- compiling

function compileExpression(source: string, path: Path, c: Compilation): Expression | undefined {
  let run: jsonata.Expression;
  try {
    run = jsonata(source, JSONATA_LIMITS);
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

function compileString(text: string, path: Path, c: Compilation): Node {
  const split = splitInterpolation(text);
  if ('error' in split) {
    c.problems.push({ path, kind: 'expression', message: split.error });
    return { kind: 'const', value: undefined };
  }
  const pieces: Piece[] = [];
  for (const p of split.pieces) {
    if (typeof p === 'string') pieces.push(p);
    else {
      const expr = compileExpression(p.source, path, c);
      if (expr) pieces.push(expr);
    }
  }
  const [first] = pieces;
  if (pieces.length === 1 && first !== undefined && typeof first !== 'string')
    return { kind: 'expr', expr: first };
  if (pieces.every((p) => typeof p === 'string')) return { kind: 'const', value: pieces.join('') };
  return { kind: 'text', pieces };
}

function compileNode(value: unknown, path: Path, c: Compilation): Node {
  if (typeof value === 'string') return compileString(value, path, c);
  if (Array.isArray(value)) {
    const items = value.map((v: unknown, i) => compileNode(v, [...path, i], c));
    const values = constValues(items);
    return values ? constNode(values) : { kind: 'array', items };
  }
  if (isPlainObject(value)) {
    const entries = Object.entries(value).map(([k, v]) => [k, compileNode(v, [...path, k], c)] as const);
    const values = constValues(entries.map(([, n]) => n));
    if (!values) return { kind: 'object', entries };
    return constNode(Object.fromEntries(entries.map(([k], i) => [k, values[i]])));
  }
  if (value === null || typeof value === 'boolean' || (typeof value === 'number' && Number.isFinite(value))) {
    return { kind: 'const', value };
  }
  c.problems.push({ path, kind: 'value', message: NOT_JSON });
  return { kind: 'const', value: undefined };
}

/** A value without expressions is built once, here; it is frozen because every saga shares it. */
function constNode(value: unknown): Node {
  return { kind: 'const', value: deepFreeze(value) };
}

/** The values of `nodes` when all are constant, else undefined. */
function constValues(nodes: readonly Node[]): unknown[] | undefined {
  const values: unknown[] = [];
  for (const n of nodes) {
    if (n.kind !== 'const') return undefined;
    values.push(n.value);
  }
  return values;
}

/** A JSON value template (request and response bodies). */
export function compileTemplate(value: unknown, path: Path): Compiled<Template> {
  const c = new Compilation();
  const node = compileNode(value, path, c);
  return c.result(() =>
    makeTemplate(c, node.kind === 'const' ? constRender(node.value) : (s) => renderNode(node, s)),
  );
}

/**
 * A header value template: renders to a string (numbers, booleans and JSON are stringified) or
 * undefined, which leaves the header out. CR, LF and NUL are refused so data cannot add headers.
 */
export function compileHeaderTemplate(value: string | number | boolean, path: Path): Compiled<Template> {
  const c = new Compilation();
  const node = compileNode(typeof value === 'string' ? value : String(value), path, c);
  if (node.kind === 'const' && typeof node.value === 'string' && UNSAFE_HEADER.test(node.value)) {
    c.problems.push({ path, kind: 'value', message: 'a header value must not contain CR, LF or NUL' });
  }
  const where = formatPath(path);
  return c.result(() =>
    makeTemplate(
      c,
      node.kind === 'const'
        ? constRender(node.value)
        : async (s) => headerValue(await renderNode(node, s), where),
    ),
  );
}

const UNSAFE_HEADER = /[\r\n\0]/;

function headerValue(value: unknown, where: string): string | undefined {
  if (value === undefined) return undefined;
  const text = typeof value === 'string' ? value : JSON.stringify(value);
  if (UNSAFE_HEADER.test(text)) throw renderError(where, 'a header value must not contain CR, LF or NUL');
  return text;
}

function makeTemplate(c: Compilation, render: (scope: TemplateScope) => Promise<unknown>): Template {
  return Object.freeze({ render, stepRefs: c.stepRefs, readsBody: c.readsBody });
}

function constRender(value: unknown): (scope: TemplateScope) => Promise<unknown> {
  const done = Promise.resolve(value);
  return () => done;
}

// --- rendering

async function renderNode(node: Node, scope: TemplateScope): Promise<unknown> {
  switch (node.kind) {
    case 'const':
      return node.value;
    case 'expr':
      return evaluate(node.expr, scope);
    case 'text': {
      let out = '';
      for (const p of node.pieces) {
        if (typeof p === 'string') out += p;
        else {
          const v = await evaluate(p, scope);
          // Text with a missing part would be a wrong value; missing makes the whole string missing.
          if (v === undefined) return undefined;
          out += typeof v === 'string' ? v : JSON.stringify(v);
        }
      }
      return out;
    }
    case 'array': {
      const out: unknown[] = [];
      for (const item of node.items) {
        const v = await renderNode(item, scope);
        if (v !== undefined) out.push(v);
      }
      return out;
    }
    case 'object': {
      const out: [string, unknown][] = [];
      for (const [key, child] of node.entries) {
        const v = await renderNode(child, scope);
        if (v !== undefined) out.push([key, v]);
      }
      return Object.fromEntries(out);
    }
  }
}

async function evaluate(expr: Expression, scope: TemplateScope): Promise<unknown> {
  if (expr.fields) {
    const found = lookupFields(scope, expr.fields);
    if (found !== NEEDS_JSONATA) return toJson(found, expr);
  }
  let value: unknown;
  try {
    value = await expr.run.evaluate(scope);
  } catch (err) {
    throw renderError(expr.where, `\${${expr.source}}: ${messageOf(err)}`, err);
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

// --- URLs

const URL_HEAD = /^([A-Za-z][A-Za-z0-9+.-]*):\/\/([^/?#]*)/;
const HOST =
  /^(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*|\[[0-9a-f:.]+\])$/;
/** Characters a path or query may hold as written (RFC 3986 pchar plus `/` and `?`). */
const URL_TEXT = /^(?:[A-Za-z0-9\-._~!$&'()*+,;=:@/?]|%[0-9A-Fa-f]{2})*$/;

interface UrlPart {
  readonly text?: string;
  readonly expr?: Expression;
  readonly inPath: boolean;
}

/**
 * A step URL. Scheme and authority must be written out in full, before any expression: that is
 * what keeps request data from choosing where a step call goes (no SSRF). Expression values are
 * percent-encoded one by one, so `a/b` stays one path segment (`a%2Fb`).
 */
export function compileUrlTemplate(text: string, path: Path): Compiled<UrlTemplate> {
  const c = new Compilation();
  const plan = planUrl(text, path, c);
  const where = formatPath(path);
  return c.result<UrlTemplate>(() => {
    if (!plan) return undefined;
    const { origin, parts } = plan;
    const fixed = parts.every((p) => p.expr === undefined)
      ? parts.map((p) => p.text ?? '').join('')
      : undefined;
    const done = Promise.resolve(fixed ?? '');
    return Object.freeze({
      origin,
      renderPath: fixed !== undefined ? () => done : (s: TemplateScope) => renderUrlPath(parts, s, where),
      stepRefs: c.stepRefs,
      readsBody: c.readsBody,
    });
  });
}

function planUrl(text: string, path: Path, c: Compilation): { origin: string; parts: UrlPart[] } | undefined {
  const bad = (message: string): undefined => {
    c.problems.push({ path, kind: 'url', message });
    return undefined;
  };
  const split = splitInterpolation(text);
  if ('error' in split) return bad(split.error);
  const [head, ...rest] = split.pieces;
  const m = typeof head === 'string' ? URL_HEAD.exec(head) : null;
  if (typeof head !== 'string' || !m) return bad('must start with http:// or https:// and a literal host');
  const scheme = (m[1] ?? '').toLowerCase();
  const authority = (m[2] ?? '').toLowerCase();
  const afterAuthority = head.slice(m[0].length);
  if (scheme !== 'http' && scheme !== 'https') return bad(`scheme must be http or https, not ${scheme}`);
  if (rest.length > 0 && afterAuthority === '') {
    return bad('the host must be literal: an expression may only follow the / or ? after the host');
  }
  if (authority.includes('@')) return bad('credentials are not allowed in a step URL');
  const [, host = '', port] = /^(.*?)(?::(\d{1,5}))?$/.exec(authority) ?? [];
  if (!HOST.test(host)) return bad(`"${host}" is not a host name`);
  if (port !== undefined && (Number(port) < 1 || Number(port) > 65535))
    return bad(`port ${port} is out of range`);

  const parts: UrlPart[] = [];
  let inPath = true;
  for (const p of [afterAuthority, ...rest]) {
    if (typeof p !== 'string') {
      const expr = compileExpression(p.source, path, c);
      if (expr) parts.push({ expr, inPath });
    } else if (p !== '') {
      if (p.includes('#')) return bad('a step URL cannot have a fragment (#)');
      if (!URL_TEXT.test(p)) return bad(`"${p}" has characters that must be percent-encoded`);
      parts.push({ text: p, inPath });
      if (p.includes('?')) inPath = false;
    }
  }
  if (parts[0] === undefined || parts[0].text?.startsWith('?')) parts.unshift({ text: '/', inPath: true });
  // Expressions stand in as `x`: a literal . or .. segment is wrong whatever the data.
  const skeleton = parts.map((p) => p.text ?? 'x').join('');
  if (hasDotSegment(skeleton)) return bad('the path must not hold . or .. segments');
  return { origin: `${scheme}://${authority}`, parts };
}

async function renderUrlPath(
  parts: readonly UrlPart[],
  scope: TemplateScope,
  where: string,
): Promise<string> {
  let out = '';
  let dynamicPath = false;
  for (const part of parts) {
    if (part.expr === undefined) {
      out += part.text ?? '';
      continue;
    }
    const v = await evaluate(part.expr, scope);
    if (typeof v !== 'string' && typeof v !== 'number' && typeof v !== 'boolean') {
      const what =
        v === undefined
          ? 'nothing'
          : v === null
            ? 'null'
            : 'a JSON ' + (Array.isArray(v) ? 'array' : 'object');
      throw renderError(
        where,
        `\${${part.expr.source}} yielded ${what}; a URL needs a string, number or boolean`,
      );
    }
    const text = String(v);
    if (part.inPath && text === '')
      throw renderError(where, `\${${part.expr.source}} yielded an empty path segment`);
    if (part.inPath) dynamicPath = true;
    out += encodeComponent(text, where);
  }
  // `.` and `..` survive encodeURIComponent and would move the call to another resource.
  if (dynamicPath && hasDotSegment(out)) {
    throw renderError(where, `the rendered path ${out} holds a . or .. segment`);
  }
  return out;
}

function encodeComponent(text: string, where: string): string {
  try {
    return encodeURIComponent(text);
  } catch (err) {
    throw renderError(where, 'a URL value holds a lone UTF-16 surrogate', err); // URIError
  }
}

function hasDotSegment(pathAndQuery: string): boolean {
  const [pathOnly = ''] = pathAndQuery.split('?');
  return pathOnly.split('/').some((s) => /^(?:\.|%2e){1,2}$/i.test(s));
}

// --- helpers

function renderError(where: string, detail: string, cause?: unknown): SagameshError {
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

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null) return false;
  const proto: unknown = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null) {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}
