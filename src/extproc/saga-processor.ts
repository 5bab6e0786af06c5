import { ERRORS, SagameshError, toSagameshError } from '../errors';
import type { Logger } from '../logger';
import type { Observer } from '../engine/observer';
import type { FieldPath } from '../redaction';
import type { SagaDefinition } from '../definition/definition';
import { MAX_PATH_LENGTH } from '../definition/path-match';
import { renderHeaders } from '../definition/render';
import type { SagaExecution, SagaRunner, UndoOutcome } from '../engine/runner';
import { createHash } from 'node:crypto';
import type { Clock } from '../clock';
import type { JsonLimits } from '../json-limits';
import { DEFAULT_BODY_LIMITS, jsonShapeProblem } from '../json-limits';
import type { KeyHolder, KeyRequest, SagaLog, StoredAnswer } from '../runtime/journal';
import { isFinal } from '../runtime/journal';
import type { Nesting } from './nesting';
import { nestingOf } from './nesting';
import {
  dynamicMetadata,
  errorAnswer,
  immediate,
  jsonResponse,
  SAGA_ID_HEADER,
  sagaAnswer,
  undoAnswer,
} from './answers';
import { headersToRecord, ownedHeaderNames, setHeaders, splitPath } from './headers';
import type { CommonResponse, HttpBody, HttpHeaders, ProcessingMode, ProcessingResponse } from './messages';
import type { Processor, StreamContext } from './processor';
import { CONTINUE, PassThroughProcessor } from './processor';
import { sagaRequest } from './saga-request';

/**
 * The Processor that runs sagas. Per stream (= per HTTP request):
 *   request headers: match a definition; no match → CONTINUE and switch the rest of the stream off
 *     (mode_override), so non-saga traffic costs one round trip; saga or not, the headers sagamesh
 *     owns are removed if the client sent them;
 *   request body (or headers with end_of_stream): validate the input, start the saga, and
 *     - respond: aggregate → answer with an ImmediateResponse once the saga has settled;
 *     - respond: upstream  → once the steps succeeded, let the request continue with the saga id
 *       and step results added; then the upstream's response headers decide commit or compensate.
 */

export interface DefinitionMatcher {
  match(method: string, path: string): SagaDefinition | undefined;
  /** The saga an odd spelling of a path might name (refused with PATH_AMBIGUOUS; absent: none). */
  ambiguous?(method: string, path: string): SagaDefinition | undefined;
  /** Request headers besides `x-sagamesh-*` that only sagamesh may set (absent: none). */
  readonly ownedHeaders?: ReadonlySet<string>;
  /** The undo a request asks for (a definition's `spec.undo`; absent: none). */
  matchUndo?(method: string, path: string): { definition: SagaDefinition; sagaId: string } | undefined;
  /** The undo route an odd spelling of a path might name (refused with PATH_AMBIGUOUS). */
  ambiguousUndo?(method: string, path: string): SagaDefinition | undefined;
}

export interface SagaProcessorDeps {
  /** Called per request, so a reloaded definition set applies to the next request. */
  readonly definitions: () => DefinitionMatcher;
  readonly runner: SagaRunner;
  /** Longest a stream waits for a saga before answering with what is known; below Envoy's message_timeout. */
  readonly answerBudgetMs: number;
  readonly observer?: Observer;
  /** Client Idempotency-Keys and their answers live in the saga log. */
  readonly sagaLog: SagaLog;
  readonly clock: Clock;
  readonly idempotencyRetentionMs: number;
  /** True once shutdown began: matched requests get 503 + Retry-After, nothing starts. */
  readonly isDraining: () => boolean;
  /**
   * Load shedding: with this many sagas in flight (`runner.inFlight`), a new saga request gets
   * 503 OVERLOADED + Retry-After the way draining answers, before anything is recorded or called.
   */
  readonly maxInFlight?: number;
  /** Largest saga request body taken (SAGAMESH_MAX_BODY_BYTES); larger → 413 before it is parsed. */
  readonly maxBodyBytes: number;
  /** SAGAMESH_LOG_REDACT, split: what the saga log keeps of a request body redacted when it can. */
  readonly redactFields?: readonly FieldPath[];
  /** A JSON body beyond these is refused with 400 BODY_TOO_COMPLEX before it is parsed. Default DEFAULT_BODY_LIMITS. */
  readonly bodyLimits?: JsonLimits;
}

/** Envoy's router honours it as the route timeout of this one request. */
const UPSTREAM_TIMEOUT_HEADER = 'x-envoy-upstream-rq-timeout-ms';

/** Longest client Idempotency-Key accepted. */
const MAX_KEY_LENGTH = 255;

interface Matched {
  readonly definition: SagaDefinition;
  /** Owned headers the client sent: removed from the request before it continues. */
  readonly strip: readonly string[];
  readonly headers: Record<string, string>;
  readonly method: string;
  readonly path: string;
  readonly query: Record<string, string>;
}

/**
 * A mode_override replaces Envoy's whole processing mode (proto3 enums have no "unset"), so every
 * override names every phase.
 */
const mode = (body: 'NONE' | 'BUFFERED', responseHeaders: 'SEND' | 'SKIP'): ProcessingMode => ({
  request_header_mode: 'SEND',
  request_body_mode: body,
  response_header_mode: responseHeaders,
  response_body_mode: 'NONE',
  request_trailer_mode: 'SKIP',
  response_trailer_mode: 'SKIP',
});
/** Not a saga: nothing more to see on this stream. */
const PASS_THROUGH_MODE = mode('NONE', 'SKIP');
/**
 * Not a saga, with a body that may not fit Envoy's buffer: the response headers stay on. Envoy
 * (1.40) buffers the body while it waits for the answer to the request headers; when the body
 * overflows its buffer (per_connection_buffer_limit_bytes, 64 KiB in envoy/envoy.yaml) and the
 * override leaves ext_proc nothing more to send, the stream stalled until message_timeout (65 s)
 * and ended in a 504 (found by fuzzing, test/integration/fuzz-envoy-requests.test.ts). With the
 * response headers still to come, Envoy answers the overflow at once with its 413.
 */
const PASS_THROUGH_LARGE_BODY_MODE = mode('NONE', 'SEND');
/** Bodies up to this many bytes (by content-length) fit the smallest buffer sagamesh's configs give Envoy. */
const SMALL_BODY_BYTES = 16 * 1024;
const NO_OWNED_HEADERS: ReadonlySet<string> = new Set();

/** CONTINUE, without the headers in `strip` (owned headers a client sent). */
const continueWithout = (strip: readonly string[]): CommonResponse =>
  strip.length === 0 ? CONTINUE : { ...CONTINUE, header_mutation: { remove_headers: [...strip] } };

/** Any request, saga or not: reading a longer path could stall the others (saga/path-match.ts). */
function pathTooLong(length: number): ProcessingResponse {
  const e = new SagameshError(ERRORS.PATH_TOO_LONG, `${length} characters`);
  return {
    immediate_response: jsonResponse(
      e.spec.httpStatus,
      { status: 'failed', error: e.toJSON() },
      {},
      e.code.toLowerCase(),
    ),
  };
}

/** Whether the request has a body that is not known to be small: no content-length, or a large one. */
function mayOverflow(message: HttpHeaders, headers: Readonly<Record<string, string>>): boolean {
  if (message.end_of_stream) return false;
  const length = headers['content-length'];
  return length === undefined || !/^\d+$/.test(length) || Number(length) > SMALL_BODY_BYTES;
}

const timeout = (ms: number): { promise: Promise<'timeout'>; cancel: () => void } => {
  let timer: NodeJS.Timeout | undefined;
  const promise = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), ms);
  });
  return { promise, cancel: () => clearTimeout(timer) };
};

async function within<T>(promise: Promise<T>, ms: number): Promise<T | 'timeout'> {
  const t = timeout(ms);
  try {
    return await Promise.race([promise, t.promise]);
  } finally {
    t.cancel();
  }
}

export class SagaProcessor extends PassThroughProcessor implements Processor {
  private matched?: Matched;
  private execution?: SagaExecution;
  private awaitingUpstream = false;
  /** The stream's logger; once known, with the request's id (Envoy's x-request-id), saga and saga id. */
  private logger: Logger;

  constructor(
    private readonly deps: SagaProcessorDeps,
    context: StreamContext,
  ) {
    super();
    this.logger = context.logger;
  }

  override async requestHeaders(message: HttpHeaders): Promise<ProcessingResponse> {
    const headers = headersToRecord(message);
    const method = (headers[':method'] ?? '').toUpperCase();
    const { path, query } = splitPath(headers[':path'] ?? '/');
    if (path.length > MAX_PATH_LENGTH) return pathTooLong(path.length);
    const definitions = this.deps.definitions();
    const definition = definitions.match(method, path);
    // Saga or not, a client's owned headers go no further (ARCHITECTURE §1, Isolation).
    const strip = ownedHeaderNames(message, definitions.ownedHeaders ?? NO_OWNED_HEADERS);
    const requestId = headers['x-request-id'];
    if (requestId) this.logger = this.logger.child({ request_id: requestId });
    this.logger.debug({ method, path, saga: definition?.name }, 'request headers');
    if (!definition) {
      const undo = definitions.matchUndo?.(method, path);
      if (undo) return this.undo(undo.definition, undo.sagaId);
      const shadowed = definitions.ambiguous?.(method, path) ?? definitions.ambiguousUndo?.(method, path);
      if (shadowed) return this.refuseAmbiguous(shadowed, path);
      // Not a saga: stop asking for this stream's body and response.
      return {
        request_headers: { response: continueWithout(strip) },
        mode_override: mayOverflow(message, headers) ? PASS_THROUGH_LARGE_BODY_MODE : PASS_THROUGH_MODE,
      };
    }
    this.matched = { definition, strip, headers, method, path, query };
    this.logger = this.logger.child({ saga: definition.name });
    const e = this.refusal();
    if (e) {
      this.deps.observer?.sagaRejected(definition.name, e.code);
      const answer = errorAnswer(e, definition.name);
      answer.immediate_response?.headers?.set_headers?.push(
        ...(setHeaders({ 'retry-after': '1' }).set_headers ?? []),
      );
      return answer;
    }
    if (message.end_of_stream) return this.run(Buffer.alloc(0), 'request_headers');
    return {
      request_headers: { response: continueWithout(strip) },
      // Aggregate sagas answer with an ImmediateResponse; only pivot mode reads the upstream's answer.
      mode_override: mode('BUFFERED', definition.respond === 'upstream' ? 'SEND' : 'SKIP'),
    };
  }

  /** A path that some server might read as this saga's: never passed on, never run (docs/saga-format.md). */
  private refuseAmbiguous(definition: SagaDefinition, path: string): ProcessingResponse {
    const e = new SagameshError(ERRORS.PATH_AMBIGUOUS, `${path} may mean ${definition.match.path}`);
    this.logger.info({ saga: definition.name, code: e.code, path }, 'saga request rejected');
    this.deps.observer?.sagaRejected(definition.name, e.code);
    return errorAnswer(e, definition.name);
  }

  /**
   * An undo request (`spec.undo`): undoes the saga and answers once its compensations are done, or
   * 202 if they outlast the answer budget (docs/nested-sagas.md). Answered at the headers: an
   * undo reads no body, and nothing of it goes upstream.
   */
  private async undo(definition: SagaDefinition, sagaId: string): Promise<ProcessingResponse> {
    this.logger = this.logger.child({ saga: definition.name, saga_id: sagaId });
    const refused = this.refusal();
    if (refused) {
      this.deps.observer?.sagaRejected(definition.name, refused.code);
      const answer = errorAnswer(refused, definition.name, sagaId);
      answer.immediate_response?.headers?.set_headers?.push(
        ...(setHeaders({ 'retry-after': '1' }).set_headers ?? []),
      );
      return answer;
    }
    let outcome: UndoOutcome;
    try {
      outcome = await this.deps.runner.undo(definition, sagaId);
    } catch (err) {
      const e = toSagameshError(err);
      this.logger.error({ err: e, code: e.code }, 'saga undo could not start');
      return errorAnswer(e, definition.name, sagaId);
    }
    if (outcome.kind === 'undoing' && outcome.execution) {
      const result = await within(outcome.execution.settled, this.deps.answerBudgetMs);
      if (result !== 'timeout' && (result.status === 'compensated' || result.status === 'stuck')) {
        outcome = { kind: 'undone', status: result.status };
      }
    }
    this.logger.info({ outcome: outcome.kind }, 'saga undo request');
    return undoAnswer(definition, sagaId, outcome);
  }

  /** Why no saga may start now (draining, or too many in flight), or undefined. */
  private refusal(): SagameshError | undefined {
    if (this.deps.isDraining()) return new SagameshError(ERRORS.DRAINING);
    const max = this.deps.maxInFlight;
    if (max !== undefined && this.deps.runner.inFlight >= max) {
      return new SagameshError(
        ERRORS.OVERLOADED,
        `${this.deps.runner.inFlight} sagas in flight, at most ${max}`,
      );
    }
    return undefined;
  }

  override async requestBody(message: HttpBody): Promise<ProcessingResponse> {
    if (!this.matched || this.execution) return super.requestBody(message);
    return this.run(message.body ?? Buffer.alloc(0), 'request_body');
  }

  override async responseHeaders(message: HttpHeaders): Promise<ProcessingResponse> {
    const execution = this.execution;
    if (!execution || !this.awaitingUpstream) return super.responseHeaders(message);
    this.awaitingUpstream = false;
    const status = Number(headersToRecord(message)[':status'] ?? 0);
    execution.upstreamResponded(status);
    if (status > 0 && status < 400) {
      // The upstream committed. Its 2xx goes on only once the saga's end is in the log: a crash
      // before that must not leave a client holding a success that recovery then undoes; and an
      // answer that came after the saga gave up on its upstream (its deadline) is not a success.
      const result = await within(execution.settled, this.deps.answerBudgetMs);
      if (result === 'timeout' || result.status !== 'succeeded') return this.settle(execution);
      return {
        response_headers: {
          response: { ...CONTINUE, header_mutation: setHeaders({ [SAGA_ID_HEADER]: execution.sagaId }) },
        },
        ...dynamicMetadata({
          sagaId: execution.sagaId,
          saga: execution.definition.name,
          outcome: 'succeeded',
        }),
      };
    }
    // The pivot failed: undo the steps, then replace the upstream's answer with the saga's.
    return this.settle(execution);
  }

  override close(reason: 'ended' | 'cancelled'): void {
    if (this.execution && this.awaitingUpstream) {
      this.awaitingUpstream = false;
      this.execution.upstreamFailed(`stream ${reason} before the upstream answered`);
    }
  }

  private async run(raw: Buffer, phase: 'request_headers' | 'request_body'): Promise<ProcessingResponse> {
    const matched = this.matched;
    if (!matched) throw new SagameshError(ERRORS.PROTOCOL, 'saga run without a matched request');
    const { definition } = matched;
    let body: unknown;
    try {
      if (raw.length > this.deps.maxBodyBytes) {
        throw new SagameshError(
          ERRORS.BODY_TOO_LARGE,
          `${raw.length} bytes, at most ${this.deps.maxBodyBytes}`,
        );
      }
      body = this.parseBody(definition, raw, matched.headers['content-type']);
    } catch (err) {
      return this.reject(definition, toSagameshError(err));
    }

    // What the saga runs with is what the saga log keeps: only what its templates read.
    const request = sagaRequest(definition, { ...matched, body }, this.deps.redactFields ?? []);
    const traceparent = matched.headers['traceparent'];
    const requestId = matched.headers['x-request-id'];
    // The logger redacts credentials and SAGAMESH_LOG_REDACT fields wherever they are.
    this.logger.debug({ request }, 'saga request');
    const key = matched.headers['idempotency-key']?.trim();
    let nesting: Nesting;
    try {
      nesting = nestingOf(matched.headers);
    } catch (err) {
      return this.reject(definition, toSagameshError(err));
    }
    const meta = {
      ...(traceparent ? { traceparent } : {}),
      ...(requestId ? { requestId } : {}),
      ...nesting,
    };
    try {
      // The key is reserved in the same write as the saga's start: never one without the other.
      const reservation = key === undefined ? undefined : this.keyRequest(definition, key, raw);
      const started = reservation
        ? await this.deps.runner.start(definition, request, { ...meta, key: reservation })
        : await this.deps.runner.start(definition, request, meta);
      if ('held' in started) return await this.replay(definition, started.held, reservation?.requestHash);
      this.execution = started;
      this.logger = this.logger.child({ saga_id: started.sagaId });
    } catch (err) {
      const e = toSagameshError(err);
      this.logger.error({ err: e, code: e.code }, 'saga could not start');
      this.deps.observer?.sagaRejected(definition.name, e.code);
      // Nothing was written, the key neither: a retry starts afresh.
      return errorAnswer(e, definition.name);
    }
    const execution = this.execution;
    if (definition.respond === 'aggregate') return this.settle(execution);

    const reached = await within(execution.stepsDone, this.deps.answerBudgetMs);
    if (reached !== 'pivot') return this.settle(execution);
    return this.continueToUpstream(execution, phase);
  }

  /** A saga request refused before anything was recorded: a coded 4xx, counted and logged. */
  private reject(definition: SagaDefinition, e: SagameshError): ProcessingResponse {
    this.logger.info({ code: e.code, details: e.details }, 'saga request rejected');
    this.deps.observer?.sagaRejected(definition.name, e.code);
    return errorAnswer(e, definition.name);
  }

  /** Parses and validates the request body the definition needs. Throws coded 400s. */
  private parseBody(definition: SagaDefinition, raw: Buffer, contentType: string | undefined): unknown {
    const text = raw.toString('utf8');
    if (definition.input.json || contentType?.includes('json')) {
      // Before JSON.parse builds it, and before anything records or logs it (one pass, no recursion).
      const problem = jsonShapeProblem(text, this.deps.bodyLimits ?? DEFAULT_BODY_LIMITS);
      if (problem) throw new SagameshError(ERRORS.BODY_TOO_COMPLEX, problem);
    }
    if (!definition.input.json) {
      if (text.length === 0) return null;
      if (contentType?.includes('json')) {
        try {
          return JSON.parse(text) as unknown;
        } catch {
          return text;
        }
      }
      return text;
    }
    let body: unknown;
    try {
      body = JSON.parse(text) as unknown;
    } catch (err) {
      const reason =
        text.length === 0 ? 'the body is empty' : err instanceof Error ? err.message : String(err);
      throw new SagameshError(ERRORS.BODY_NOT_JSON, reason);
    }
    const problems = definition.input.validate?.(body) ?? [];
    if (problems.length > 0) throw new SagameshError(ERRORS.INPUT_INVALID, problems.join('; '), problems);
    return body;
  }

  /** A client's Idempotency-Key, to be reserved with the saga's start. Throws a coded 400. */
  private keyRequest(definition: SagaDefinition, key: string, raw: Buffer): KeyRequest {
    if (key.length === 0 || key.length > MAX_KEY_LENGTH) {
      throw new SagameshError(
        ERRORS.INPUT_INVALID,
        `Idempotency-Key must be 1 to ${MAX_KEY_LENGTH} characters`,
      );
    }
    return {
      definition: definition.name,
      key,
      requestHash: createHash('sha256').update(raw).digest('hex'),
      expiredBefore: this.deps.clock.now() - this.deps.idempotencyRetentionMs,
    };
  }

  /**
   * Client idempotency: a request whose key another saga holds gets that saga's recorded answer
   * (the same body), or 202 while it still runs; the same key with a different body is a 422.
   */
  private async replay(
    definition: SagaDefinition,
    holder: KeyHolder,
    requestHash: string | undefined,
  ): Promise<ProcessingResponse> {
    const earlier = holder.sagaId;
    if (holder.requestHash !== requestHash) {
      const e = new SagameshError(ERRORS.IDEMPOTENCY_KEY_REUSED, `saga ${earlier}`);
      // saga_id: the saga that holds the key; this request started none.
      this.logger.info({ saga_id: earlier, code: e.code }, 'saga request rejected');
      this.deps.observer?.sagaRejected(definition.name, e.code);
      return errorAnswer(e, definition.name, earlier);
    }
    const meta = { sagaId: earlier, saga: definition.name, outcome: 'replayed' };
    const replayed = { 'idempotent-replayed': 'true' };
    if (holder.answer) return immediate(holder.answer, meta, replayed);
    const summary = await this.deps.sagaLog.summary(earlier);
    // Finished, yet no answer kept: only an older sagamesh left that; derive it from the log.
    const derived =
      summary && isFinal(summary.status) ? await this.deps.runner.answerFromLog(earlier) : undefined;
    if (derived) return immediate(derived, meta, replayed);
    return {
      immediate_response: jsonResponse(
        202,
        { sagaId: earlier, status: summary?.status ?? 'running', location: `/sagas/${earlier}` },
        { [SAGA_ID_HEADER]: earlier, location: `/sagas/${earlier}`, 'retry-after': '1' },
        'sagamesh_saga_in_progress',
      ),
      ...dynamicMetadata(meta),
    };
  }

  /** Waits for the saga's end (bounded) and answers with the definition's success or failure response. */
  private async settle(execution: SagaExecution): Promise<ProcessingResponse> {
    const { definition, sagaId } = execution;
    const result = await within(execution.settled, this.deps.answerBudgetMs);
    if (result === 'timeout') {
      // Compensations outlast what Envoy will wait: say so; the saga goes on in the background.
      // The answer budget is at least the longest deadline (config.ts), so by now the saga has
      // failed and is compensating: the error is why it failed — the budget is not the saga's.
      this.logger.warn('answering before the saga settled');
      const { failedStep, error } = execution.failure();
      const answer: StoredAnswer = {
        status: definition.response.failure.status,
        headers: { 'content-type': 'application/json', [SAGA_ID_HEADER]: sagaId },
        body: JSON.stringify({
          sagaId,
          // No failure yet: only a pivot saga whose end is not recorded yet can be here.
          status: error ? 'compensating' : 'running',
          failedStep: failedStep ?? null,
          error: error ?? { code: ERRORS.INTERNAL.code, message: 'the saga had not settled' },
          steps: execution.steps(),
        }),
      };
      // The final answer is kept for its keys with the saga's end (runner), for retries.
      return immediate(answer, { sagaId, saga: definition.name, outcome: 'compensating' });
    }
    // A keyed saga's answer was written with its end: the client gets exactly what a retry will.
    const answer = result.answer ?? (await sagaAnswer(definition, result));
    return immediate(answer, { sagaId, saga: definition.name, outcome: result.status });
  }

  private async continueToUpstream(
    execution: SagaExecution,
    phase: 'request_headers' | 'request_body',
  ): Promise<ProcessingResponse> {
    const upstream = execution.definition.upstream;
    const strip = this.matched?.strip ?? [];
    const scope = execution.scope();
    let response: CommonResponse;
    try {
      const headers = upstream ? await renderHeaders(upstream.headers, scope) : {};
      const body = phase === 'request_body' ? await upstream?.body?.render(scope) : undefined;
      const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body), 'utf8');
      response = {
        ...CONTINUE,
        header_mutation: {
          ...setHeaders({
            ...headers,
            [SAGA_ID_HEADER]: execution.sagaId,
            // The pivot waits at most the saga's deadline for the upstream (machine.ts, `pivot`); the
            // router then cuts the upstream too, so the stream (and the request) ends with the saga
            // instead of at Envoy's stream idle timeout. Needs mutation_rules.allow_envoy (docs/envoy.md).
            [UPSTREAM_TIMEOUT_HEADER]: String(execution.definition.deadlineMs),
            // With a replaced body and header mode SEND, Envoy needs the right length.
            ...(payload
              ? { 'content-length': String(payload.length), 'content-type': 'application/json' }
              : {}),
          }),
          // A body-phase answer comes after the headers phase removed them.
          ...(phase === 'request_headers' && strip.length > 0 ? { remove_headers: [...strip] } : {}),
        },
        ...(payload ? { body_mutation: { body: payload } } : {}),
      };
    } catch (err) {
      const e = toSagameshError(err);
      this.logger.error({ err: e }, 'upstream request could not be built');
      execution.upstreamFailed(e.message);
      return this.settle(execution);
    }
    this.awaitingUpstream = true;
    const meta = dynamicMetadata({
      sagaId: execution.sagaId,
      saga: execution.definition.name,
      outcome: 'pivot',
    });
    return phase === 'request_body'
      ? { request_body: { response }, ...meta }
      : { request_headers: { response }, ...meta };
  }
}
