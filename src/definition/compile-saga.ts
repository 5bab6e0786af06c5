import { ERRORS } from '../errors';
import { Reads, compileCall, compileHeaders } from './compile-call';
import { DEFINITION_LIMITS } from './definition-limits';
import type { CallDefinition, ResponseDefinition, SagaDefinition, StepDefinition } from './definition';
import type { KnownExpressions } from './expression';
import { formatDuration, parseDuration } from './duration';
import type { Path, ProblemCollector } from './problems';
import {
  DEFAULTS,
  compileInputSchema,
  isRawEnvelope,
  isRawResponse,
  isRawStep,
  isRawUpstream,
  isRecord,
  schemaProblems,
} from './schema';
import type { RawResponse, RawUpstream } from './schema';
import { ancestors, checkStepReads, stepGraph } from './step-graph';
import type { StepGraph } from './step-graph';
import { NOT_JSON, compileTemplate } from './template';
import { canonicalPath } from './path-match';
import { RequestReadsCollector } from './request-reads';

/**
 * One saga file's parsed data → SagaDefinition: schema, templates, step graph. Every problem goes
 * to the file's ProblemCollector; a definition comes back (deep-frozen) only when there are none.
 */

export interface SagaContext {
  readonly file: string;
  readonly version: string;
  readonly source: string;
  readonly maxDeadlineMs: number | undefined;
  /** The load's precompiled expressions, if it has them. */
  readonly known?: KnownExpressions;
}

export interface SagaCompileResult {
  readonly definition?: SagaDefinition;
  /** Name and match, known even when other parts of the file are wrong. */
  readonly identity?: { readonly name: string; readonly match: string } | undefined;
}

/** The segment of an undo route's path that holds the saga's id. */
export const UNDO_PARAM = '{sagaId}';

export function compileSaga(data: unknown, ctx: SagaContext, out: ProblemCollector): SagaCompileResult {
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

  const rawSteps = tooManySteps(spec.steps, out) ? [] : Array.isArray(spec.steps) ? spec.steps : [];
  const graph = stepGraph(rawSteps, out);
  const steps = new Map<string, StepDefinition>();
  const stepReads: Reads[] = [];
  rawSteps.forEach((raw: unknown, i) => {
    if (!isRecord(raw) || typeof raw.name !== 'string' || graph.firstIndex.get(raw.name) !== i) return;
    const step = compileStep(raw, raw.name, ['spec', 'steps', i], graph, out, ctx.known);
    stepReads.push(...step.reads);
    if (step.definition) steps.set(raw.name, step.definition);
  });

  if (isRecord(spec.undo) && respond === 'upstream') {
    // The upstream's own effect is not a step: undoing the steps alone would leave it half-done.
    out.add(ERRORS.DEF_SCHEMA, ['spec', 'undo'], 'is only allowed with respond: aggregate', true);
  }
  const undoPath = isRecord(spec.undo) && isRecord(spec.undo.match) ? spec.undo.match.path : undefined;
  const undoSegments = typeof undoPath === 'string' ? undoPath.split('/') : [];
  // Braces elsewhere are the schema's problem already.
  const plainBraces = undoSegments.every((s) => s === UNDO_PARAM || !/[{}]/.test(s));
  if (plainBraces && undoSegments.length > 0 && undoSegments.filter((s) => s === UNDO_PARAM).length !== 1) {
    out.add(
      ERRORS.DEF_SCHEMA,
      ['spec', 'undo', 'match', 'path'],
      `must hold ${UNDO_PARAM} as one whole segment, once`,
    );
  }

  const shared = new Reads(out, ctx.known);
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
    // As requests match it (any case): two files that differ in case only clash.
    match: `${envelope.spec.match.method} ${canonicalPath(envelope.spec.match.path) ?? envelope.spec.match.path}`,
  };
  if (out.size > 0 || !envelope || !response || deadlineMs === undefined) return { identity };
  if (input && 'error' in input) return { identity };
  if (spec.upstream !== undefined && !upstream) return { identity };
  const ordered = graph.order?.map((name) => steps.get(name));
  if (!ordered || !allDefined(ordered)) return { identity };

  const readsBody = shared.readsBody || stepReads.some((r) => r.readsBody);
  const requestReads = new RequestReadsCollector();
  for (const r of [shared, ...stepReads]) requestReads.add(r.request.read());
  const definition: SagaDefinition = {
    name: envelope.metadata.name,
    file: ctx.file,
    version: ctx.version,
    source: ctx.source,
    match: envelope.spec.match,
    ...(envelope.spec.undo ? { undo: { match: envelope.spec.undo.match } } : {}),
    deadlineMs,
    respond,
    input: { json: input !== undefined || readsBody, ...(input ? { validate: input.validate } : {}) },
    requestReads: requestReads.read(),
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

/** More steps than DEFINITION_LIMITS allows are reported, and then not checked one by one. */
function tooManySteps(steps: unknown, out: ProblemCollector): boolean {
  if (!Array.isArray(steps) || steps.length <= DEFINITION_LIMITS.steps) return false;
  const message = `${steps.length} steps; a saga may have at most ${DEFINITION_LIMITS.steps}`;
  out.add(ERRORS.DEF_TOO_LARGE, ['spec', 'steps'], message);
  return true;
}

function compileStep(
  raw: Record<string, unknown>,
  name: string,
  path: Path,
  graph: StepGraph,
  out: ProblemCollector,
  known: KnownExpressions | undefined,
): { definition?: StepDefinition; reads: Reads[] } {
  const upstreamSteps = ancestors(name, graph.deps);
  const actionReads = new Reads(out, known);
  const action = compileCall(raw.action, [...path, 'action'], 'action', actionReads, out);
  checkStepReads(name, actionReads, upstreamSteps, graph, 'action', out);
  const reads = [actionReads];
  let compensation: CallDefinition | undefined;
  if (raw.compensation !== undefined) {
    const compReads = new Reads(out, known);
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
    success.body === undefined
      ? undefined
      : reads.take(compileTemplate(success.body, [...path, 'body'], reads.known));
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
  const body =
    raw.body === undefined
      ? undefined
      : reads.take(compileTemplate(raw.body, [...path, 'body'], reads.known));
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
