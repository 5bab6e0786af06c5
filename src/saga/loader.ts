import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { LineCounter, parseAllDocuments } from 'yaml';
import { ERRORS, SagameshError } from '../errors';
import type { ErrorSpec } from '../errors';
import type {
  CallDefinition,
  ResponseDefinition,
  RetryPolicy,
  SagaDefinition,
  StepDefinition,
  Template,
} from './definition';
import { formatDuration, parseDuration } from './duration';
import { ProblemCollector } from './problems';
import type { DefinitionProblem, Path } from './problems';
import {
  DEFAULTS,
  compileInputSchema,
  isRawCall,
  isRawEnvelope,
  isRawRequest,
  isRawResponse,
  isRawStep,
  isRawUpstream,
  isRecord,
  schemaProblems,
} from './schema';
import type { RawCall, RawHeaders, RawResponse, RawUpstream } from './schema';
import { NOT_JSON, compileHeaderTemplate, compileTemplate, compileUrlTemplate } from './template';
import type { Compiled, StepRead, TemplateProblem } from './template';

export { formatProblem, isDefinitionProblem } from './problems';
export type { DefinitionProblem } from './problems';

export interface LoadOptions {
  /** No saga may have a longer deadline; default 60000. */
  readonly maxDeadlineMs?: number;
}

/**
 * Reads every `*.yaml` / `*.yml` in `dir` (not sub-directories; dotfiles and the `..data` entries
 * of a Kubernetes ConfigMap mount are skipped, the symlinks to the files are followed), checks all
 * of them and returns the definitions sorted by name. It never half-loads: if anything in any file
 * is wrong it throws SagameshError(DEFINITIONS_INVALID) whose details list every problem of every
 * file. A directory or file that cannot be read is SagameshError(SAGAS_DIR_UNREADABLE).
 */
export async function loadDefinitions(dir: string, opts: LoadOptions = {}): Promise<SagaDefinition[]> {
  const files = await readSagaFiles(dir);
  const results = files.map(({ file, text }) => analyseFile(file, text, opts));
  checkAcrossFiles(results);
  const problems = results.flatMap((r) => r.out.problems);
  if (problems.length > 0) {
    throw new SagameshError(ERRORS.DEFINITIONS_INVALID, `${problems.length} problem(s)`, problems);
  }
  const definitions: SagaDefinition[] = [];
  for (const r of results) if (r.definition) definitions.push(r.definition);
  return definitions.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/** Checks one file's text on its own (no cross-file checks): for tests and `sagamesh validate`. */
export function loadDefinitionText(
  file: string,
  text: string,
  opts: LoadOptions = {},
): { definition?: SagaDefinition; problems: DefinitionProblem[] } {
  const { out, definition } = analyseFile(file, text, opts);
  return definition && out.size === 0 ? { definition, problems: [] } : { problems: [...out.problems] };
}

interface FileResult {
  readonly out: ProblemCollector;
  readonly definition?: SagaDefinition;
  /** Name and match, known even when other parts of the file are wrong. */
  readonly identity?: { readonly name: string; readonly match: string };
}

function analyseFile(file: string, text: string, opts: LoadOptions): FileResult {
  const lines = new LineCounter();
  const docs = parseAllDocuments(text, { lineCounter: lines, prettyErrors: false });
  const [doc, extra] = docs;
  const out = new ProblemCollector(file, doc, lines);
  if (!doc) {
    out.addAt(ERRORS.DEF_YAML_SYNTAX, '', 0, 'the file holds no YAML document');
    return { out };
  }
  for (const d of docs) for (const e of d.errors) out.addAt(ERRORS.DEF_YAML_SYNTAX, '', e.pos[0], e.message);
  if (extra) {
    out.addAt(
      ERRORS.DEF_YAML_SYNTAX,
      '',
      extra.range[0],
      'a saga file holds one YAML document; found a second',
    );
  }
  if (out.size > 0) return { out };
  let data: unknown;
  try {
    data = doc.toJS({ maxAliasCount: 100 });
  } catch (err) {
    out.addAt(ERRORS.DEF_YAML_SYNTAX, '', 0, err instanceof Error ? err.message : String(err));
    return { out };
  }
  const version = createHash('sha256').update(text).digest('hex').slice(0, 12);
  return {
    out,
    ...compileSaga(data, { file, version, source: text, maxDeadlineMs: opts.maxDeadlineMs }, out),
  };
}

/** Saga names and matches must be unique across files; the later file (by name) gets the problem. */
function checkAcrossFiles(results: readonly FileResult[]): void {
  const names = new Map<string, string>();
  const matches = new Map<string, string>();
  for (const { identity, out } of results) {
    if (!identity) continue;
    const sameName = names.get(identity.name);
    if (sameName !== undefined) {
      out.add(
        ERRORS.DEF_DUPLICATE,
        ['metadata', 'name'],
        `saga name "${identity.name}" is also used in ${sameName}`,
      );
    } else names.set(identity.name, out.file);
    const sameMatch = matches.get(identity.match);
    if (sameMatch !== undefined) {
      out.add(ERRORS.DEF_DUPLICATE, ['spec', 'match'], `${identity.match} is also matched by ${sameMatch}`);
    } else matches.set(identity.match, out.file);
  }
}

const SAGA_FILE = /\.ya?ml$/i;

async function readSagaFiles(dir: string): Promise<{ file: string; text: string }[]> {
  const unreadable = (what: string, err: unknown): SagameshError => {
    const reason = err instanceof Error ? err.message : String(err);
    return new SagameshError(ERRORS.SAGAS_DIR_UNREADABLE, `${what}: ${reason}`, [], { cause: err });
  };
  let names: string[];
  try {
    names = await fs.readdir(dir);
  } catch (err) {
    throw unreadable(dir, err);
  }
  const files: { file: string; text: string }[] = [];
  // Dot entries cover `..data` and `..2024_01_01_...` in ConfigMap mounts; sorted for stable messages.
  for (const name of names.filter((n) => !n.startsWith('.') && SAGA_FILE.test(n)).sort()) {
    const file = join(dir, name);
    try {
      if (!(await fs.stat(file)).isFile()) continue; // stat follows the ConfigMap's symlinks
      files.push({ file, text: await fs.readFile(file, 'utf8') });
    } catch (err) {
      throw unreadable(file, err);
    }
  }
  return files;
}

// --- one saga: schema, templates, step graph

interface SagaContext {
  readonly file: string;
  readonly version: string;
  readonly source: string;
  readonly maxDeadlineMs: number | undefined;
}

const TEMPLATE_CODES: Record<TemplateProblem['kind'], ErrorSpec> = {
  expression: ERRORS.DEF_EXPRESSION,
  url: ERRORS.DEF_URL,
  value: ERRORS.DEF_SCHEMA,
};

/**
 * What the templates of one reference scope read: a step's action, its compensation, or the
 * response and upstream blocks (which may read any step).
 */
class Reads {
  readonly steps: StepRead[] = [];
  readonly dynamic: Path[] = [];
  readsBody = false;

  constructor(private readonly out: ProblemCollector) {}

  take<T extends { readonly readsBody: boolean }>(c: Compiled<T>): T | undefined {
    for (const p of c.problems) this.out.add(TEMPLATE_CODES[p.kind], p.path, p.message);
    this.steps.push(...c.reads);
    this.dynamic.push(...c.dynamicStepReads);
    if (c.template?.readsBody) this.readsBody = true;
    return c.template;
  }
}

function compileSaga(
  data: unknown,
  ctx: SagaContext,
  out: ProblemCollector,
): Pick<FileResult, 'definition' | 'identity'> {
  const nonJson = findNonJson(data, []);
  if (nonJson) out.add(ERRORS.DEF_SCHEMA, nonJson, NOT_JSON);
  for (const p of schemaProblems(data)) out.add(ERRORS.DEF_SCHEMA, p.path, p.message, p.onKey);

  const envelope = isRawEnvelope(data) ? data : undefined;
  const spec = isRecord(data) && isRecord(data.spec) ? data.spec : {};
  const respond = spec.respond === 'upstream' ? 'upstream' : 'aggregate';
  const deadlineMs = checkDeadline(spec.deadline, ctx.maxDeadlineMs ?? DEFAULTS.maxDeadlineMs, out);

  const inputSchema = isRecord(spec.input) && isRecord(spec.input.schema) ? spec.input.schema : undefined;
  const input = inputSchema ? compileInputSchema(inputSchema) : undefined;
  if (input && 'error' in input) {
    out.add(ERRORS.DEF_SCHEMA, ['spec', 'input', 'schema'], `is not a valid JSON Schema: ${input.error}`);
  }

  const rawSteps = Array.isArray(spec.steps) ? spec.steps : [];
  const graph = stepGraph(rawSteps, out);
  const steps = new Map<string, StepDefinition>();
  const stepReads: Reads[] = [];
  rawSteps.forEach((raw: unknown, i) => {
    if (!isRecord(raw) || typeof raw.name !== 'string' || graph.firstIndex.get(raw.name) !== i) return;
    const step = compileStep(raw, raw.name, ['spec', 'steps', i], graph, out);
    stepReads.push(...step.reads);
    if (step.definition) steps.set(raw.name, step.definition);
  });

  const shared = new Reads(out);
  if (spec.upstream !== undefined && respond === 'aggregate') {
    out.add(ERRORS.DEF_SCHEMA, ['spec', 'upstream'], 'is only allowed with respond: upstream', true);
  }
  const upstream = isRawUpstream(spec.upstream) ? compileUpstream(spec.upstream, shared, out) : undefined;
  const response = compileResponse(isRawResponse(spec.response) ? spec.response : {}, respond, shared, out);
  for (const read of shared.steps) {
    if (!graph.firstIndex.has(read.step)) {
      out.add(
        ERRORS.DEF_STEP_REFERENCE,
        read.path,
        `reads steps.${read.step}, but there is no step ${read.step}`,
      );
    }
  }

  const identity = envelope && {
    name: envelope.metadata.name,
    match: `${envelope.spec.match.method} ${envelope.spec.match.path}`,
  };
  if (out.size > 0 || !envelope || !response || deadlineMs === undefined) return { identity };
  if (input && 'error' in input) return { identity };
  if (spec.upstream !== undefined && !upstream) return { identity };
  const ordered = graph.order?.map((name) => steps.get(name));
  if (!ordered || !allDefined(ordered)) return { identity };

  const readsBody = shared.readsBody || stepReads.some((r) => r.readsBody);
  const definition: SagaDefinition = {
    name: envelope.metadata.name,
    file: ctx.file,
    version: ctx.version,
    source: ctx.source,
    match: envelope.spec.match,
    deadlineMs,
    respond,
    input: { json: input !== undefined || readsBody, ...(input ? { validate: input.validate } : {}) },
    steps: ordered,
    response,
    ...(upstream ? { upstream } : {}),
  };
  return { identity, definition: deepFreeze(definition) };
}

function checkDeadline(raw: unknown, maxMs: number, out: ProblemCollector): number | undefined {
  if (raw === undefined) return Math.min(DEFAULTS.deadlineMs, maxMs);
  const ms = typeof raw === 'string' ? parseDuration(raw) : undefined;
  if (ms === undefined) return undefined; // a schema problem already
  if (ms === 0) out.add(ERRORS.DEF_DEADLINE, ['spec', 'deadline'], 'must be longer than 0ms');
  if (ms > maxMs) {
    out.add(
      ERRORS.DEF_DEADLINE,
      ['spec', 'deadline'],
      `${formatDuration(ms)} exceeds the maximum of ${formatDuration(maxMs)}`,
    );
  }
  return ms;
}

// --- steps

interface StepGraph {
  /** Index of the first step with each name; later duplicates are reported and ignored. */
  readonly firstIndex: ReadonlyMap<string, number>;
  readonly deps: ReadonlyMap<string, readonly string[]>;
  /** Topological order, or undefined when the graph is broken (unknown dependency or cycle). */
  readonly order: readonly string[] | undefined;
}

/**
 * Builds the dependency graph from whatever steps have a name, so its problems show up even when
 * a step has other problems too.
 */
function stepGraph(rawSteps: readonly unknown[], out: ProblemCollector): StepGraph {
  const firstIndex = new Map<string, number>();
  const deps = new Map<string, string[]>();
  rawSteps.forEach((raw, i) => {
    if (!isRecord(raw) || typeof raw.name !== 'string') return;
    if (firstIndex.has(raw.name)) {
      out.add(ERRORS.DEF_DUPLICATE, ['spec', 'steps', i, 'name'], `step name "${raw.name}" is used twice`);
      return;
    }
    firstIndex.set(raw.name, i);
    const list = Array.isArray(raw.dependsOn)
      ? raw.dependsOn.filter((d): d is string => typeof d === 'string')
      : [];
    deps.set(raw.name, list);
  });
  let broken = false;
  rawSteps.forEach((raw, i) => {
    if (!isRecord(raw) || typeof raw.name !== 'string' || firstIndex.get(raw.name) !== i) return;
    if (!Array.isArray(raw.dependsOn)) return;
    raw.dependsOn.forEach((dep: unknown, j) => {
      if (typeof dep !== 'string' || firstIndex.has(dep)) return;
      broken = true;
      const path = ['spec', 'steps', i, 'dependsOn', j];
      out.add(ERRORS.DEF_STEP_REFERENCE, path, `depends on "${dep}", but there is no such step`);
    });
  });
  const order = topologicalOrder(deps);
  if (order.length < deps.size) {
    reportCycles(deps, new Set(order), firstIndex, out);
    broken = true;
  }
  return { firstIndex, deps, order: broken ? undefined : order };
}

/** Kahn's algorithm; among the ready steps the earliest in the file goes first, so order is stable. */
function topologicalOrder(deps: ReadonlyMap<string, readonly string[]>): string[] {
  const done = new Set<string>();
  const order: string[] = [];
  for (;;) {
    const next = [...deps].find(([n, ds]) => !done.has(n) && ds.every((d) => done.has(d) || !deps.has(d)));
    if (!next) return order;
    done.add(next[0]);
    order.push(next[0]);
  }
}

/** Each step left unordered is on a cycle or waits for one; report each cycle once. */
function reportCycles(
  deps: ReadonlyMap<string, readonly string[]>,
  ordered: ReadonlySet<string>,
  firstIndex: ReadonlyMap<string, number>,
  out: ProblemCollector,
): void {
  const reported = new Set<string>();
  for (const start of deps.keys()) {
    if (ordered.has(start) || reported.has(start)) continue;
    const cycle = shortestCycle(start, deps);
    if (!cycle) continue;
    for (const n of cycle) reported.add(n);
    const path = ['spec', 'steps', firstIndex.get(start) ?? 0, 'dependsOn'];
    const message =
      cycle.length === 1
        ? `step "${start}" depends on itself`
        : `dependency cycle: ${[...cycle, start].join(' → ')}`;
    out.add(ERRORS.DEF_CYCLE, path, message);
  }
}

/** Breadth-first search from `start` along dependencies back to `start`. */
function shortestCycle(start: string, deps: ReadonlyMap<string, readonly string[]>): string[] | undefined {
  const parent = new Map<string, string>();
  const queue = [start];
  for (let i = 0; i < queue.length; i++) {
    const node = queue[i] ?? start;
    for (const dep of deps.get(node) ?? []) {
      if (dep === start) {
        const cycle = [node];
        for (let n = parent.get(node); n !== undefined; n = parent.get(n)) cycle.unshift(n);
        return cycle;
      }
      if (!parent.has(dep) && dep !== start && deps.has(dep)) {
        parent.set(dep, node);
        queue.push(dep);
      }
    }
  }
  return undefined;
}

/** Every step `name` waits for, directly or not. */
function ancestors(name: string, deps: ReadonlyMap<string, readonly string[]>): Set<string> {
  const seen = new Set<string>();
  const stack = [...(deps.get(name) ?? [])];
  for (let n = stack.pop(); n !== undefined; n = stack.pop()) {
    if (seen.has(n)) continue;
    seen.add(n);
    stack.push(...(deps.get(n) ?? []));
  }
  return seen;
}

function compileStep(
  raw: Record<string, unknown>,
  name: string,
  path: Path,
  graph: StepGraph,
  out: ProblemCollector,
): { definition?: StepDefinition; reads: Reads[] } {
  const upstreamSteps = ancestors(name, graph.deps);
  const actionReads = new Reads(out);
  const action = compileCall(raw.action, [...path, 'action'], 'action', actionReads, out);
  checkStepReads(name, actionReads, upstreamSteps, graph, 'action', out);
  const reads = [actionReads];
  let compensation: CallDefinition | undefined;
  if (raw.compensation !== undefined) {
    const compReads = new Reads(out);
    compensation = compileCall(raw.compensation, [...path, 'compensation'], 'compensation', compReads, out);
    checkStepReads(name, compReads, new Set([...upstreamSteps, name]), graph, 'compensation', out);
    reads.push(compReads);
  }
  if (!isRawStep(raw) || !action || (raw.compensation !== undefined && !compensation)) return { reads };
  const definition: StepDefinition = {
    name,
    dependsOn: raw.dependsOn ?? [],
    action,
    ...(compensation ? { compensation } : {}),
  };
  return { definition, reads };
}

/**
 * A step may read only what is certain to exist when it runs: the steps it waits for and, in its
 * compensation, its own response. Reads must name steps literally so this can be checked.
 */
function checkStepReads(
  step: string,
  reads: Reads,
  allowed: ReadonlySet<string>,
  graph: StepGraph,
  kind: 'action' | 'compensation',
  out: ProblemCollector,
): void {
  for (const read of reads.steps) {
    const code = ERRORS.DEF_STEP_REFERENCE;
    if (!graph.firstIndex.has(read.step)) {
      out.add(code, read.path, `reads steps.${read.step}, but there is no step ${read.step}`);
    } else if (read.step === step && kind === 'action') {
      out.add(code, read.path, `an action cannot read its own step's response (only its compensation can)`);
    } else if (!allowed.has(read.step)) {
      out.add(code, read.path, `reads steps.${read.step}, but step ${step} does not depend on ${read.step}`);
    }
  }
  for (const path of reads.dynamic) {
    out.add(ERRORS.DEF_STEP_REFERENCE, path, 'a step request must read steps by name (steps.<name>...)');
  }
}

// --- calls and headers

/** The request is compiled whenever it is well-formed, even if the call around it is not. */
function compileCall(
  raw: unknown,
  path: Path,
  kind: 'action' | 'compensation',
  reads: Reads,
  out: ProblemCollector,
): CallDefinition | undefined {
  if (!isRecord(raw) || !isRawRequest(raw.request)) return undefined;
  const req = raw.request;
  const url = reads.take(compileUrlTemplate(req.url, [...path, 'request', 'url']));
  const headers = compileHeaders(req.headers, [...path, 'request', 'headers'], reads, out);
  const body =
    req.body === undefined ? undefined : reads.take(compileTemplate(req.body, [...path, 'request', 'body']));
  if (!isRawCall(raw)) return undefined;
  const defaults = DEFAULTS[kind];
  const timeoutMs = raw.timeout === undefined ? defaults.timeoutMs : parseDuration(raw.timeout);
  if (timeoutMs === 0) out.add(ERRORS.DEF_SCHEMA, [...path, 'timeout'], 'must be longer than 0ms');
  const retry = compileRetry(raw.retry, defaults.retry, [...path, 'retry'], out);
  if (!url || !headers || !retry || !timeoutMs || (req.body !== undefined && !body)) return undefined;
  return {
    request: { method: req.method, url, headers, ...(body ? { body } : {}) },
    timeoutMs,
    retry,
    success: raw.success ?? defaults.success,
  };
}

function compileRetry(
  raw: RawCall['retry'],
  defaults: RetryPolicy,
  path: Path,
  out: ProblemCollector,
): RetryPolicy | undefined {
  const backoffMs = raw?.backoff === undefined ? defaults.backoffMs : parseDuration(raw.backoff);
  if (backoffMs === undefined) return undefined;
  // Without an explicit cap, a backoff above the default cap raises the cap rather than failing.
  const maxBackoffMs =
    raw?.maxBackoff === undefined
      ? Math.max(defaults.maxBackoffMs, backoffMs)
      : parseDuration(raw.maxBackoff);
  if (maxBackoffMs === undefined) return undefined;
  if (maxBackoffMs < backoffMs) {
    out.add(
      ERRORS.DEF_SCHEMA,
      [...path, 'maxBackoff'],
      `must not be shorter than backoff (${formatDuration(backoffMs)})`,
    );
    return undefined;
  }
  return { attempts: raw?.attempts ?? defaults.attempts, backoffMs, maxBackoffMs };
}

/** Set by the proxy or the step caller; letting a template set them would break framing or routing. */
const RESERVED_HEADERS = new Set([
  'content-length',
  'transfer-encoding',
  'connection',
  'keep-alive',
  'proxy-connection',
  'upgrade',
  'te',
  'trailer',
]);

/** Header names are lowercased; `host` is refused because the URL alone decides where a call goes. */
function compileHeaders(
  raw: RawHeaders | undefined,
  path: Path,
  reads: Reads,
  out: ProblemCollector,
): Readonly<Record<string, Template>> | undefined {
  const headers = new Map<string, Template>();
  let ok = true;
  for (const [name, value] of Object.entries(raw ?? {})) {
    const lower = name.toLowerCase();
    const at = [...path, name];
    if (lower === 'host') {
      out.add(ERRORS.DEF_URL, at, 'the host is fixed by the URL and cannot be set as a header', true);
    } else if (RESERVED_HEADERS.has(lower)) {
      out.add(ERRORS.DEF_SCHEMA, at, `${lower} is set by the proxy, not by a saga`, true);
    } else if (headers.has(lower)) {
      out.add(ERRORS.DEF_SCHEMA, at, `header ${lower} is given twice (names are case-insensitive)`, true);
    }
    const template = reads.take(compileHeaderTemplate(value, at));
    if (template) headers.set(lower, template);
    else ok = false;
  }
  return ok ? Object.fromEntries(headers) : undefined;
}

// --- response and upstream

function compileResponse(
  raw: RawResponse,
  respond: SagaDefinition['respond'],
  reads: Reads,
  out: ProblemCollector,
): SagaDefinition['response'] | undefined {
  const success = raw.success ?? {};
  const path = ['spec', 'response', 'success'];
  if (respond === 'upstream') {
    for (const field of ['status', 'body'] as const) {
      if (success[field] === undefined) continue;
      const message = `the upstream's answer is the success response with respond: upstream; only headers can be added`;
      out.add(ERRORS.DEF_SCHEMA, [...path, field], message, true);
    }
  }
  const headers = compileHeaders(success.headers, [...path, 'headers'], reads, out);
  const body =
    success.body === undefined ? undefined : reads.take(compileTemplate(success.body, [...path, 'body']));
  if (!headers || (success.body !== undefined && !body)) return undefined;
  const ok: ResponseDefinition = {
    status: success.status ?? DEFAULTS.successStatus,
    headers,
    ...(body ? { body } : {}),
  };
  return { success: ok, failure: { status: raw.failure?.status ?? DEFAULTS.failureStatus } };
}

function compileUpstream(raw: RawUpstream, reads: Reads, out: ProblemCollector): SagaDefinition['upstream'] {
  const path = ['spec', 'upstream'];
  const headers = compileHeaders(raw.headers, [...path, 'headers'], reads, out);
  const body = raw.body === undefined ? undefined : reads.take(compileTemplate(raw.body, [...path, 'body']));
  if (!headers || (raw.body !== undefined && !body)) return undefined;
  return { headers, ...(body ? { body } : {}) };
}

// --- helpers

/** YAML can hold what JSON cannot (binary, infinities); templates and schemas expect JSON. */
function findNonJson(value: unknown, path: Path): Path | undefined {
  if (value === null || typeof value === 'string' || typeof value === 'boolean') return undefined;
  if (typeof value === 'number') return Number.isFinite(value) ? undefined : path;
  if (Array.isArray(value)) {
    for (const [i, v] of value.entries()) {
      const found = findNonJson(v, [...path, i]);
      if (found) return found;
    }
    return undefined;
  }
  if (isRecord(value) && Object.getPrototypeOf(value) === Object.prototype) {
    for (const [k, v] of Object.entries(value)) {
      const found = findNonJson(v, [...path, k]);
      if (found) return found;
    }
    return undefined;
  }
  return path;
}

function allDefined<T>(items: readonly (T | undefined)[]): items is T[] {
  return items.every((i) => i !== undefined);
}

/** Freezes plain objects and arrays; compiled templates (functions inside) are frozen already. */
function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}
