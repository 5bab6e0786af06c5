import type { Template, TemplateScope } from './definition';
import { compileExpression, evaluate, renderError } from './expression';
import type { Expression, KnownExpressions } from './expression';
import { splitInterpolation } from './interpolation';
import { formatPath } from './problems';
import type { Path } from './problems';
import { Compilation } from './template-compilation';
import type { Compiled } from './template-compilation';

/**
 * Templates: JSON values whose strings hold `${ <JSONata> }` expressions, compiled once at load and
 * rendered per saga. Compilation never throws; it reports problems with the field path of the
 * string that holds them. Rendering throws SagameshError(STEP_TEMPLATE) only.
 */

export const NOT_JSON = 'must be a JSON value (YAML-only values like !!binary or .inf are not)';

export { splitInterpolation } from './interpolation';
export type { Compiled, StepRead, TemplateProblem } from './template-compilation';
export { compileUrlTemplate } from './url-template';

type Piece = string | Expression;

type Node =
  | { readonly kind: 'const'; readonly value: unknown }
  | { readonly kind: 'expr'; readonly expr: Expression }
  | { readonly kind: 'text'; readonly pieces: readonly Piece[] }
  | { readonly kind: 'array'; readonly items: readonly Node[] }
  | { readonly kind: 'object'; readonly entries: readonly (readonly [string, Node])[] };

// --- compiling

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
export function compileTemplate(value: unknown, path: Path, known?: KnownExpressions): Compiled<Template> {
  const c = new Compilation(known);
  const node = compileNode(value, path, c);
  return c.result(() =>
    makeTemplate(c, node.kind === 'const' ? constRender(node.value) : (s) => renderNode(node, s)),
  );
}

/**
 * A header value template: renders to a string (numbers, booleans and JSON are stringified) or
 * undefined, which leaves the header out. The value must be printable US-ASCII, space or tab
 * (RFC 9110's advice for field values). CR and LF would let data add headers; the HTTP client
 * refuses other control characters, DEL and anything above U+00FF only once the call counts as sent
 * (so it was in doubt and retried), and sends é as a Latin-1 byte nobody agreed on. Checked here,
 * any of them is the saga's template error, and nothing is sent.
 */
export function compileHeaderTemplate(
  value: string | number | boolean,
  path: Path,
  known?: KnownExpressions,
): Compiled<Template> {
  const c = new Compilation(known);
  const node = compileNode(typeof value === 'string' ? value : String(value), path, c);
  if (node.kind === 'const' && typeof node.value === 'string' && UNSAFE_HEADER.test(node.value)) {
    c.problems.push({ path, kind: 'value', message: UNSAFE_HEADER_MESSAGE });
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

const UNSAFE_HEADER = /[^\t\x20-\x7e]/;
const UNSAFE_HEADER_MESSAGE = 'a header value must be printable US-ASCII, space or tab';

function headerValue(value: unknown, where: string): string | undefined {
  if (value === undefined) return undefined;
  const text = typeof value === 'string' ? value : JSON.stringify(value);
  if (UNSAFE_HEADER.test(text)) throw renderError(where, UNSAFE_HEADER_MESSAGE);
  return text;
}

function makeTemplate(c: Compilation, render: (scope: TemplateScope) => Promise<unknown>): Template {
  return Object.freeze({
    render,
    stepRefs: c.stepRefs,
    readsBody: c.readsBody,
    requestReads: c.request.read(),
  });
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

// --- helpers

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
