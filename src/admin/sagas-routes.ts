import { ERRORS, SagameshError } from '../errors';
import type { ListOptions, SagaRecord, SagaSummary } from '../runtime/journal';
import type { Route } from './http';
import { encodeCursor, parseListQuery } from './list-query';
import type { FieldPath } from '../redaction';
import { servedHistory } from './saga-contents';
import { sagaView } from './timeline';

/**
 * The sagas API: list, inspect (full history and timeline), and the two operator actions —
 * abort (compensate a running saga) and retry (re-drive a stuck saga's compensations).
 */

/** What the API reads: the saga log. */
export interface SagaQueries {
  history(sagaId: string): Promise<readonly SagaRecord[]>;
  list(opts: ListOptions): Promise<readonly SagaSummary[]>;
}

/** What the API may do: the runner's operator actions. */
export interface SagaOperations {
  /** False when this instance is not running the saga. */
  abort(sagaId: string, reason: string): boolean;
  retry(sagaId: string): Promise<'retrying' | 'not-found' | 'not-stuck'>;
}

export interface SagasRouteDeps {
  readonly sagas: SagaQueries;
  readonly operations: SagaOperations;
  readonly now: () => number;
  /** SAGAMESH_LOG_REDACT, split: redacted in every request body served. */
  readonly redactFields: readonly FieldPath[];
}

const MAX_REASON = 500;

export function sagasRoutes(deps: SagasRouteDeps): Route[] {
  const historyOf = async (sagaId: string): Promise<readonly SagaRecord[]> => {
    const records = await deps.sagas.history(sagaId);
    if (records.length === 0) throw new SagameshError(ERRORS.SAGA_NOT_FOUND, sagaId);
    return records;
  };
  return [
    {
      method: 'GET',
      path: '/sagas',
      handler: async (req) => {
        const opts = parseListQuery(req.query);
        const sagas = await deps.sagas.list(opts);
        // A full page may have more after it (the page after the last may be empty).
        const last = sagas.length === opts.limit ? sagas[sagas.length - 1] : undefined;
        const next = last ? encodeCursor({ startedAt: last.startedAt, sagaId: last.sagaId }) : undefined;
        return { status: 200, json: { sagas, ...(next ? { next } : {}) } };
      },
    },
    {
      method: 'GET',
      path: '/sagas/:id',
      handler: async (req) => {
        const contents = req.contents();
        const history = await historyOf(req.params['id'] ?? '');
        return {
          status: 200,
          json: {
            saga: sagaView(history, deps.now()),
            history: servedHistory(history, contents, deps.redactFields),
            contents,
          },
        };
      },
    },
    {
      method: 'POST',
      path: '/sagas/:id/abort',
      mutating: true,
      handler: async (req) => {
        const sagaId = req.params['id'] ?? '';
        const body = await req.json();
        const given = typeof body === 'object' && body !== null && 'reason' in body ? body.reason : undefined;
        if (given !== undefined && (typeof given !== 'string' || given.length > MAX_REASON)) {
          throw new SagameshError(
            ERRORS.ADMIN_BAD_REQUEST,
            `reason must be a string of at most ${MAX_REASON}`,
          );
        }
        const reason = given || 'aborted by an operator';
        if (deps.operations.abort(sagaId, reason)) {
          return { status: 202, json: { sagaId, status: 'aborting', reason } };
        }
        const view = sagaView(await historyOf(sagaId), deps.now());
        throw new SagameshError(ERRORS.SAGA_NOT_RUNNING, `${sagaId} is ${view?.status ?? 'unknown'}`);
      },
    },
    {
      method: 'POST',
      path: '/sagas/:id/retry',
      mutating: true,
      handler: async (req) => {
        const sagaId = req.params['id'] ?? '';
        const result = await deps.operations.retry(sagaId);
        if (result === 'retrying') return { status: 202, json: { sagaId, status: 'retrying' } };
        if (result === 'not-found') throw new SagameshError(ERRORS.SAGA_NOT_FOUND, sagaId);
        const view = sagaView(await historyOf(sagaId), deps.now());
        throw new SagameshError(ERRORS.SAGA_NOT_STUCK, `${sagaId} is ${view?.status ?? 'unknown'}`);
      },
    },
  ];
}
