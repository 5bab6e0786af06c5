import type { ErrorSpec } from '../errors';
import type { SagameshError } from '../errors';
import type { SagaResult } from '../saga/runner';
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

/**
 * The answer for a saga that did not succeed: the definition's failure status with
 * `{ sagaId, status, failedStep, error, steps }`. `status` may be `compensating` when the
 * compensations outlast the time Envoy waits for an answer; they go on regardless.
 */
export function failureAnswer(
  failureStatus: number,
  result: Pick<SagaResult, 'sagaId' | 'definition' | 'failedStep' | 'error' | 'steps'> & { status: string },
): ProcessingResponse {
  return {
    immediate_response: jsonResponse(
      failureStatus,
      {
        sagaId: result.sagaId,
        status: result.status,
        failedStep: result.failedStep ?? null,
        error: result.error ?? null,
        steps: result.steps,
      },
      { [SAGA_ID_HEADER]: result.sagaId },
      `sagamesh_saga_${result.status}`,
    ),
    ...dynamicMetadata({ sagaId: result.sagaId, saga: result.definition, outcome: result.status }),
  };
}

function detailsOf(spec: ErrorSpec): string {
  return spec.code.toLowerCase();
}
