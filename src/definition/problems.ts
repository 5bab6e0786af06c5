import { isAlias, isMap, isPair, isScalar, isSeq } from 'yaml';
import type { Document, LineCounter, Pair } from 'yaml';
import type { ErrorSpec } from '../errors';

/**
 * What is wrong with a saga definition and exactly where: the loader collects every one of these
 * before it gives up, so an operator fixes a file in one round instead of one error per restart.
 */
export interface DefinitionProblem {
  readonly file: string;
  /** 1-based, like an editor. */
  readonly line: number;
  readonly column: number;
  /** The field, e.g. `spec.steps[1].action.timeout`; empty for the document itself. */
  readonly path: string;
  /** A SAGAMESH_ERR_DEF_* code from the registry in errors.ts. */
  readonly code: string;
  readonly message: string;
}

/** `sagas/x.yaml:12:5 spec.steps[1].action.timeout SAGAMESH_ERR_DEF_SCHEMA must match ...` */
export function formatProblem(p: DefinitionProblem): string {
  const where = p.path === '' ? '' : ` ${p.path}`;
  return `${p.file}:${p.line}:${p.column}${where} ${p.code} ${p.message}`;
}

/** For code that receives a SagameshError's details (which are `unknown[]`), e.g. main.ts. */
export function isDefinitionProblem(value: unknown): value is DefinitionProblem {
  if (typeof value !== 'object' || value === null) return false;
  const v: Partial<Record<keyof DefinitionProblem, unknown>> = value;
  return (
    typeof v.file === 'string' &&
    typeof v.line === 'number' &&
    typeof v.column === 'number' &&
    typeof v.path === 'string' &&
    typeof v.code === 'string' &&
    typeof v.message === 'string'
  );
}

/** A field address inside a document: object keys and array indexes. */
export type PathSegment = string | number;
export type Path = readonly PathSegment[];

const PLAIN_KEY = /^[A-Za-z_][A-Za-z0-9_-]*$/;

/** `['spec', 'steps', 1, 'action']` → `spec.steps[1].action`; odd keys are quoted: `headers["a.b"]`. */
export function formatPath(path: Path): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else if (PLAIN_KEY.test(seg)) out += out === '' ? seg : `.${seg}`;
    else out += `[${JSON.stringify(seg)}]`;
  }
  return out;
}

/**
 * Collects the problems of one file and turns field paths into lines and columns of the YAML
 * source. A path that does not exist in the file (a missing required field) points at its nearest
 * existing parent, which is where the field has to be added.
 */
export class ProblemCollector {
  private readonly found: DefinitionProblem[] = [];
  /** Problems already reported, so a repeat is dropped in constant time (a big file has many). */
  private readonly seen = new Set<string>();

  constructor(
    readonly file: string,
    private readonly doc?: Document,
    private readonly lines?: LineCounter,
  ) {}

  /** `onKey` points at the key rather than the value: right for unknown or duplicate fields. */
  add(spec: ErrorSpec, path: Path, message: string, onKey = false): void {
    this.addAt(spec, formatPath(path), this.offsetOf(path, onKey), message);
  }

  /** For problems that come with their own source offset (YAML syntax errors). */
  addAt(spec: ErrorSpec, path: string, offset: number, message: string): void {
    const pos = this.lines?.linePos(offset) ?? { line: 1, col: 1 };
    const problem = { file: this.file, line: pos.line, column: pos.col, path, code: spec.code, message };
    const key = JSON.stringify([problem.line, path, spec.code, message]);
    if (this.seen.has(key)) return;
    this.seen.add(key);
    this.found.push(problem);
  }

  get size(): number {
    return this.found.length;
  }

  /** In file order, the way an operator reads them. */
  get problems(): readonly DefinitionProblem[] {
    return [...this.found].sort((a, b) => a.line - b.line || a.column - b.column);
  }

  private offsetOf(path: Path, onKey: boolean): number {
    const doc = this.doc;
    if (!doc) return 0;
    let node: unknown = doc.contents;
    let offset = rangeStart(node) ?? 0;
    for (const [i, seg] of path.entries()) {
      if (isAlias(node)) node = node.resolve(doc);
      let next: unknown;
      if (isMap(node)) {
        const pair = node.items.find((p: Pair) => isScalar(p.key) && String(p.key.value) === String(seg));
        if (!pair) break;
        const keyStart = rangeStart(pair.key);
        if (i === path.length - 1 && onKey && keyStart !== undefined) return keyStart;
        next = pair.value;
        // `key:` with no value has no node of its own; its key is the closest place.
        offset = rangeStart(next) ?? keyStart ?? offset;
      } else if (isSeq(node) && typeof seg === 'number') {
        next = node.items[seg];
        offset = rangeStart(next) ?? offset;
      } else break;
      if (next === undefined || next === null) break;
      node = next;
    }
    return offset;
  }
}

function rangeStart(node: unknown): number | undefined {
  if (isPair(node)) return rangeStart(node.key);
  if (isScalar(node) || isMap(node) || isSeq(node) || isAlias(node)) return node.range?.[0];
  return undefined;
}
