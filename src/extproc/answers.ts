import type { ErrorSpec } from '../errors';
import { ERRORS, SagameshError, toSagameshError } from '../errors';
import type { SagaDefinition } from '../definition/definition';
import { renderResponse } from '../definition/render';
import type { SagaResult, UndoOutcome } from '../engine/runner';
import { stuckSteps } from '../engine/execution';
import type { StoredAnswer } from '../runtime/journal';
import { setHeaders } from './headers';
import type { ImmediateResponse, ProcessingResponse } from './messages';
import { toStruct } from './struct';

/** Envoy dynamic metadata namespace sagamesh writes (see envoy/envoy.yaml access log). */
export const METADATA_NAMESPACE = 'sagamesh';
export const SAGA_ID_HEADER = 'x-sagamesh-saga-id';

export interface SagaMetadata {
  readonly sagaId?: string;
  readonly saga: string;
  readonly outcome: string;
}

export function dynamicMetadata(meta: SagaMetadata): Pick<ProcessingResponse, 'dynamic_metadata'> {
  return {
    dynamic_metadata: toStruct({
      [METADATA_NAMESPACE]: { saga_id: meta.sagaId, saga: meta.saga, outcome: meta.outcome },
    }),
  };
}

export function jsonResponse(
  status: number,
  body: unknown,
  headers: Readonly<Record<string, string>>,
  details: string,
): ImmediateResponse {
  const payload = body === undefined ? Buffer.alloc(0) : Buffer.from(JSON.stringify(body), 'utf8');
  return {
    status: { code: status },
    headers: setHeaders({
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      ...headers,
    }),
    body: payload,
    details,
  };
}

/** A request rejected before any step ran (bad JSON, invalid input, store down, draining…). */
export function errorAnswer(err: SagameshError, saga: string, sagaId?: string): ProcessingResponse {
  return {
    immediate_response: jsonResponse(
      err.spec.httpStatus,
      { ...(sagaId ? { sagaId } : {}), status: 'failed', error: err.toJSON() },
      sagaId ? { [SAGA_ID_HEADER]: sagaId } : {},
      detailsOf(err.spec),
    ),
    ...dynamicMetadata({ ...(sagaId ? { sagaId } : {}), saga, outcome: 'failed' }),
  };
}

function detailsOf(spec: ErrorSpec): string {
  return spec.code.toLowerCase();
}

/**
 * The client's answer for a settled saga, as HTTP: the definition's success response, or the
 * failure answer. Also used to store the answer for Idempotency-Key replays, including for sagas
 * that finished after a restart.
 */
export async function sagaAnswer(definition: SagaDefinition, result: SagaResult): Promise<StoredAnswer> {
  const headers = { 'content-type': 'application/json', [SAGA_ID_HEADER]: result.sagaId };
  if (result.status === 'abandoned') {
    // Not over: another instance owns it now (LEASE_LOST), or this one resumes it from the log
    // once its records can be written again (STORE_UNAVAILABLE, …). Either way, a retry may tell.
    const spec = Object.values(ERRORS).find((s) => s.code === result.error?.code) ?? ERRORS.LEASE_LOST;
    const error = { code: spec.code, message: result.error?.message ?? spec.message };
    return {
      status: spec.httpStatus,
      headers,
      body: JSON.stringify({ sagaId: result.sagaId, status: 'running', error }),
    };
  }
  if (result.status === 'stuck') {
    // Not the definition's failure status: that says "failed, all undone", and this saga is not
    // undone. The step's failure that started the undo stays, as the error's cause.
    const spec = ERRORS.COMPENSATION_EXHAUSTED;
    const stuck = stuckSteps(result);
    return {
      status: spec.httpStatus,
      headers,
      body: JSON.stringify({
        sagaId: result.sagaId,
        status: result.status,
        failedStep: result.failedStep ?? null,
        error: {
          code: spec.code,
          message: `${spec.message}: ${stuck.join(', ')}`,
          ...(result.error ? { cause: result.error } : {}),
        },
        steps: result.steps,
      }),
    };
  }
  if (result.status !== 'succeeded') {
    return {
      status: definition.response.failure.status,
      headers,
      body: JSON.stringify({
        sagaId: result.sagaId,
        status: result.status,
        failedStep: result.failedStep ?? null,
        error: result.error ?? null,
        steps: result.steps,
      }),
    };
  }
  try {
    const answer = await renderResponse(definition.response.success, result.scope);
    return {
      status: answer.status,
      headers: {
        ...answer.headers,
        ...(answer.body === undefined ? { [SAGA_ID_HEADER]: result.sagaId } : headers),
      },
      body: answer.body === undefined ? '' : JSON.stringify(answer.body),
    };
  } catch (err) {
    // The saga is done and stays done; only its answer could not be built.
    const e = toSagameshError(err);
    return {
      status: e.spec.httpStatus,
      headers,
      body: JSON.stringify({ sagaId: result.sagaId, status: 'succeeded', error: e.toJSON() }),
    };
  }
}

/**
 * The answer kept for a settled saga's Idempotency-Keys (written with its `saga.finished`): the
 * client's answer, except a pivot saga's success, which is the upstream's and not sagamesh's to
 * keep (a retry then hears 202 with the saga's status).
 */
export async function answerToKeep(
  definition: SagaDefinition,
  result: SagaResult,
): Promise<StoredAnswer | undefined> {
  if (definition.respond === 'upstream' && result.status === 'succeeded') return undefined;
  return sagaAnswer(definition, result);
}

/** An HTTP answer as an ext_proc ImmediateResponse, with the saga's dynamic metadata. */
export function immediate(
  answer: StoredAnswer,
  meta: SagaMetadata,
  extraHeaders: Record<string, string> = {},
): ProcessingResponse {
  return {
    immediate_response: {
      status: { code: answer.status },
      headers: setHeaders({ ...answer.headers, ...extraHeaders }),
      body: Buffer.from(answer.body, 'utf8'),
      details: `sagamesh_saga_${meta.outcome}`,
    },
    ...dynamicMetadata(meta),
  };
}

/**
 * The answer to an undo request (`spec.undo`, docs/nested-sagas.md): 200 undone (the same on every
 * repeat), 202 while it is being undone, 404 unknown, 409 not undoable, 500 when an undo's
 * compensation exhausted its retries (stuck: an operator must act).
 */
export function undoAnswer(
  definition: SagaDefinition,
  sagaId: string,
  outcome: UndoOutcome,
): ProcessingResponse {
  const meta = (result: string) =>
    dynamicMetadata({ sagaId, saga: definition.name, outcome: `undo ${result}` });
  const headers = { [SAGA_ID_HEADER]: sagaId };
  switch (outcome.kind) {
    case 'not-found':
      return errorAnswer(
        new SagameshError(ERRORS.SAGA_NOT_FOUND, `no ${definition.name} saga ${sagaId}`),
        definition.name,
      );
    case 'not-undoable': {
      const e = new SagameshError(ERRORS.SAGA_NOT_UNDOABLE, outcome.reason);
      return {
        immediate_response: jsonResponse(
          409,
          { sagaId, status: outcome.status, error: e.toJSON() },
          headers,
          detailsOf(e.spec),
        ),
        ...meta('refused'),
      };
    }
    case 'undoing':
      return {
        immediate_response: jsonResponse(
          202,
          { sagaId, status: 'undoing', location: `/sagas/${sagaId}` },
          { ...headers, location: `/sagas/${sagaId}`, 'retry-after': '1' },
          'sagamesh_undo_in_progress',
        ),
        ...meta('in progress'),
      };
    case 'undone': {
      if (outcome.status === 'stuck') {
        const e = new SagameshError(
          ERRORS.COMPENSATION_EXHAUSTED,
          'the undo could not finish; an operator must act',
        );
        return {
          immediate_response: jsonResponse(
            500,
            { sagaId, status: 'stuck', error: e.toJSON() },
            headers,
            detailsOf(e.spec),
          ),
          ...meta('stuck'),
        };
      }
      return {
        immediate_response: jsonResponse(200, { sagaId, status: 'undone' }, headers, 'sagamesh_undone'),
        ...meta('undone'),
      };
    }
  }
}
