import type { Clock } from '../clock';
import { toSagameshError } from '../errors';
import type { Logger } from '../logger';
import type { Observer } from './observer';
import type { CallCancellation, HttpCaller } from './http-caller';
import { CallNetworkError } from './http-caller';
import type { SagaLog } from '../runtime/journal';
import type { SagaDefinition } from '../definition/definition';
import type { CallInput, CallOutput } from '../runtime/saga-state';
import { classifyNetworkError, classifyResponse } from './outcome';
import { renderRequest } from '../definition/render';
import { readsResponseOf } from '../definition/response-reads';

/**
 * The saga machine's one I/O function (what its call port, CallsInFlight, sends through): every
 * step and compensation request goes through here.
 * Record, then act: the dispatch is in the saga log before the request leaves, and the outcome is
 * in it before the machine may act on it. A request whose dispatch could not be recorded is not
 * sent. Timeouts (the port's timer, the machine's transition) and retries are the machine's; this
 * makes exactly one attempt.
 */
export interface CallStepDeps {
  readonly log: SagaLog;
  readonly http: HttpCaller;
  readonly clock: Clock;
  readonly observer: Observer;
  /** The saga's logger (saga_id, request_id, trace_id). */
  readonly logger: Logger;
  /** A failed log write: the runner stops the saga (and, unless its lease was lost, resumes it from the log). */
  readonly onStoreError: (err: unknown) => void;
}

export async function callStep(
  deps: CallStepDeps,
  definition: SagaDefinition,
  input: CallInput,
  cancellation: CallCancellation,
): Promise<CallOutput> {
  const { logger } = deps;
  const step = definition.steps.find((s) => s.name === input.step);
  const call = input.kind === 'action' ? step?.action : step?.compensation;
  if (!call) throw new Error(`no ${input.kind} for step ${input.step}`);

  let request;
  try {
    request = await renderRequest(call.request, input.scope);
  } catch (err) {
    const e = toSagameshError(err);
    const output: CallOutput = {
      outcome: 'rejected',
      applied: 'no',
      error: { code: e.code, message: e.message },
    };
    await recordOutcome(deps.log, input, output).catch((err: unknown) => {
      deps.onStoreError(err);
      throw err;
    });
    return output;
  }

  const { sagaId, kind, attempt, replay } = input;
  try {
    await deps.log.append(sagaId, {
      type: 'call.dispatched',
      step: input.step,
      kind,
      attempt,
      replay,
    });
  } catch (err) {
    // Not recorded, so not sent; the runner stops the saga here.
    deps.onStoreError(err);
    throw err;
  }
  const started = deps.clock.now();
  const report = (outcome: string): number => {
    const durationMs = deps.clock.now() - started;
    deps.observer.callCompleted({
      definition: definition.name,
      step: input.step,
      kind,
      attempt,
      outcome,
      durationMs,
    });
    return durationMs;
  };
  let output: CallOutput;
  try {
    const response = await deps.http.call({
      method: request.method,
      origin: request.origin,
      path: request.path,
      headers: {
        ...request.headers,
        'x-sagamesh-saga-id': sagaId,
        'x-sagamesh-step': input.step,
        'x-sagamesh-kind': kind,
        // A participant that is itself a saga takes this as its deadline (docs/nested-sagas.md).
        'x-sagamesh-budget-ms': String(call.timeoutMs),
        'idempotency-key': `${sagaId}:${input.step}:${kind}`,
        ...(input.traceparent ? { traceparent: input.traceparent } : {}),
      },
      ...(request.body !== undefined ? { body: request.body } : {}),
      cancellation,
    });
    const read = response.unreadable !== undefined && readsResponseOf(definition, input.step);
    output = classifyResponse(kind, call, response, input.step, read);
  } catch (err) {
    if (cancellation.cancelled) {
      // The call timed out (or the saga moved on) and the machine cancelled it; it records that itself.
      logger.debug({ step: input.step, kind, attempt }, 'call aborted');
      report('aborted');
      throw err;
    }
    const errno = err instanceof CallNetworkError ? err.errno : undefined;
    output = classifyNetworkError(errno, err instanceof Error ? err.message : String(err), input.step);
  }
  await recordOutcome(deps.log, input, output).catch((err: unknown) => {
    deps.onStoreError(err);
    throw err;
  });
  const durationMs = report(output.outcome);
  logger.debug(
    {
      step: input.step,
      kind,
      attempt,
      replay,
      outcome: output.outcome,
      status: output.response?.status,
      duration_ms: durationMs,
    },
    'call completed',
  );
  return output;
}

async function recordOutcome(log: SagaLog, input: CallInput, output: CallOutput): Promise<void> {
  await log.append(input.sagaId, {
    type: 'call.completed',
    step: input.step,
    kind: input.kind,
    attempt: input.attempt,
    replay: input.replay,
    outcome: output.outcome,
    ...(output.response ? { status: output.response.status } : {}),
    // Successful actions keep their response: compensations and answers read it after a restart.
    ...(output.response && output.outcome === 'success' && input.kind === 'action'
      ? { response: output.response }
      : {}),
    ...(output.error ? { error: output.error } : {}),
  });
}
