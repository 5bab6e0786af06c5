import { ERRORS, SagameshError } from '../errors';
import type { SagaParent } from '../runtime/journal';

/**
 * Nested sagas (docs/nested-sagas.md): a saga's step call carries `x-sagamesh-saga-id`,
 * `x-sagamesh-step` and `x-sagamesh-budget-ms` (saga/call-step.ts). When that call reaches a route
 * another sagamesh runs as a saga, the child records its parent and never outlives the parent's
 * timeout for the call. Envoy never passes these headers on upstream (they are sagamesh's own);
 * sagamesh reads them first.
 */
export const BUDGET_HEADER = 'x-sagamesh-budget-ms';
export const PARENT_SAGA_HEADER = 'x-sagamesh-saga-id';
export const PARENT_STEP_HEADER = 'x-sagamesh-step';

/** Longest budget taken: 24 h, beyond any deadline a definition may set. */
const MAX_BUDGET_MS = 86_400_000;
/** Saga ids and step names as sagamesh writes them; anything else is not a parent link. */
const LINK_VALUE = /^[\w.:-]{1,128}$/;

export interface Nesting {
  /** Caps the saga's deadline (ms). */
  readonly budgetMs?: number;
  readonly parent?: SagaParent;
}

/**
 * What a saga request says of its parent. A budget that is not a whole number of milliseconds
 * from 1 to 86,400,000 is refused (SAGAMESH_ERR_BUDGET_INVALID): a child must not silently run
 * longer than its parent allows. A parent link needs both headers, in the form sagamesh writes
 * them; otherwise there is none (it is a label for operators, not trusted for anything).
 */
export function nestingOf(headers: Readonly<Record<string, string>>): Nesting {
  const raw = headers[BUDGET_HEADER];
  let budgetMs: number | undefined;
  if (raw !== undefined) {
    budgetMs = /^\d{1,8}$/.test(raw.trim()) ? Number(raw.trim()) : NaN;
    if (!(budgetMs >= 1 && budgetMs <= MAX_BUDGET_MS)) {
      throw new SagameshError(
        ERRORS.BUDGET_INVALID,
        `must be a whole number of milliseconds from 1 to ${MAX_BUDGET_MS}`,
      );
    }
  }
  const sagaId = headers[PARENT_SAGA_HEADER];
  const step = headers[PARENT_STEP_HEADER];
  const parent =
    sagaId !== undefined && step !== undefined && LINK_VALUE.test(sagaId) && LINK_VALUE.test(step)
      ? { sagaId, step }
      : undefined;
  return { ...(budgetMs !== undefined ? { budgetMs } : {}), ...(parent ? { parent } : {}) };
}
