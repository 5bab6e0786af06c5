import type { CallOutput, ErrorInfo, StepAnswer, StepRun } from './saga-state';
import { actionAnswered, actionResolved, actionSent, freshStep } from './saga-state';
import type { SagaRecord, SagaStatus } from './journal';

/**
 * Rebuilds a saga's state from its journal: the input a recovered saga machine starts from.
 * Pure; an action's records go through the machine's own step rules (saga-state.ts: actionSent,
 * actionAnswered, actionResolved), so:
 * - an action dispatched and never completed is in doubt (in flight);
 * - an action that answered success succeeded (its response is kept for the compensation);
 * - a 5xx or network failure may have been applied; a 4xx refusal was not;
 * - a compensation that succeeded (or 404) is done and is not sent again; one refused is stuck.
 * Attempt budgets start afresh: a restarted coordinator retries as if the call were new.
 */
export interface Rebuilt {
  readonly started: Extract<SagaRecord, { type: 'saga.started' }>;
  readonly finished?: SagaStatus;
  readonly steps: Record<string, StepRun>;
  readonly failedStep?: string;
  readonly error?: ErrorInfo;
  /** The saga succeeded and is being (or was) undone on request (`spec.undo`). */
  readonly undo?: true;
}

export function rebuild(
  records: readonly SagaRecord[],
  opts: { retryStuck?: boolean } = {},
): Rebuilt | undefined {
  const started = records.find(
    (r): r is Extract<SagaRecord, { type: 'saga.started' }> => r.type === 'saga.started',
  );
  if (!started) return undefined;
  const steps: Record<string, StepRun> = {};
  const step = (name: string): StepRun => (steps[name] ??= freshStep());
  let finished: SagaStatus | undefined;
  let failedStep: string | undefined;
  let error: ErrorInfo | undefined;
  let undo = false;

  for (const r of records) {
    switch (r.type) {
      case 'call.dispatched': {
        const s = step(r.step);
        if (r.kind === 'action' && !r.replay) steps[r.step] = actionSent(s, r.attempt);
        if (r.kind === 'compensation')
          steps[r.step] = { ...s, compensation: { ...s.compensation, status: 'running' } };
        break;
      }
      case 'call.completed': {
        const s = step(r.step);
        if (r.kind === 'action') {
          steps[r.step] = r.replay ? actionResolved(s, answerIn(r)) : actionAnswered(s, answerIn(r));
        } else {
          const status =
            r.outcome === 'success' ? 'done' : r.outcome === 'rejected' ? 'stuck' : s.compensation.status;
          steps[r.step] = {
            ...s,
            compensation: { ...s.compensation, status, ...(r.error ? { error: r.error } : {}) },
          };
        }
        break;
      }
      case 'saga.compensating':
        failedStep ??= r.failedStep;
        error ??= r.error;
        if (r.undo) {
          // An undo re-opens a saga that had succeeded: not finished any more.
          undo = true;
          finished = undefined;
        }
        break;
      case 'saga.finished':
        finished = r.status;
        break;
      default:
        break;
    }
  }

  for (const [name, s] of Object.entries(steps)) {
    const comp = s.compensation;
    // Interrupted undo is sent again (idempotently); stuck is re-driven only when an operator asks.
    const status =
      comp.status === 'running' || (comp.status === 'stuck' && opts.retryStuck) ? 'pending' : comp.status;
    steps[name] = {
      ...s,
      compensation: { status, attempts: 0, ...(comp.error ? { error: comp.error } : {}) },
    };
  }
  return {
    started,
    ...(finished ? { finished } : {}),
    steps,
    ...(failedStep ? { failedStep } : {}),
    ...(error ? { error } : {}),
    ...(undo ? { undo: true as const } : {}),
  };
}

/** A `call.completed` record as the step rules read an answer. */
function answerIn(r: Extract<SagaRecord, { type: 'call.completed' }>): StepAnswer {
  const outcome: CallOutput['outcome'] =
    r.outcome === 'success' || r.outcome === 'rejected' ? r.outcome : 'retryable';
  return {
    outcome,
    applied: outcome === 'success' ? 'yes' : outcome === 'rejected' ? 'no' : 'maybe',
    ...(r.status !== undefined ? { httpStatus: r.status } : {}),
    ...(outcome === 'success' && r.response ? { response: r.response } : {}),
    ...(r.error ? { error: r.error } : {}),
  };
}
