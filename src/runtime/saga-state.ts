import type { ErrorSpec } from '../errors';
import type { StepResponse, TemplateScope } from '../definition/definition';

/**
 * The saga's data model, as the machine holds it in its context and the saga log's recovery
 * rebuilds it: each step's run (attempts, in flight, applied or not, its response, its undo), and
 * what the one I/O function, the runner's `callStep`, takes and gives back.
 */
export type Applied = 'no' | 'maybe' | 'yes';
export interface ErrorInfo {
  readonly code: ErrorSpec['code'];
  readonly message: string;
}

/** What a call (the runner's `callStep`) resolves with. It never rejects for HTTP outcomes. */
export interface CallOutput {
  /** success: a listed status; rejected: a definitive refusal (other 4xx); retryable: 5xx, timeout, network. */
  readonly outcome: 'success' | 'rejected' | 'retryable';
  /** Whether the participant applied the request, as far as this call can tell. */
  readonly applied: Applied;
  readonly response?: StepResponse;
  readonly error?: ErrorInfo;
}

export type CallKind = 'action' | 'compensation';

export interface CallInput {
  readonly sagaId: string;
  readonly step: string;
  readonly kind: CallKind;
  readonly attempt: number;
  /** True when an in-doubt action is replayed (same idempotency key) to learn its result. */
  readonly replay: boolean;
  /** What the call's templates see: the request, the responses so far, the saga. */
  readonly scope: TemplateScope;
  readonly traceparent?: string;
}

export interface CompensationRun {
  readonly status: 'pending' | 'resolving' | 'running' | 'done' | 'skipped' | 'stuck';
  readonly attempts: number;
  readonly error?: ErrorInfo;
}

export interface StepRun {
  readonly status: 'pending' | 'running' | 'succeeded' | 'failed';
  readonly attempts: number;
  /** A request was sent and no answer has come back (yet). */
  readonly inFlight: boolean;
  readonly applied: Applied;
  /**
   * The action's successful answer (from an attempt or a replay): what templates read as
   * `steps.<name>.response`. A failed attempt's answer is never kept here — an in-doubt step whose
   * undo needs its response is replayed to learn it (machine.ts `mustResolveFirst`).
   */
  readonly response?: StepResponse;
  /** The HTTP status of the action's last answer, success or not: for the failure answer's steps. */
  readonly httpStatus?: number;
  readonly error?: ErrorInfo;
  readonly nextDelayMs: number;
  readonly compensation: CompensationRun;
}

export interface SagaContext {
  readonly sagaId: string;
  /** Resumed from the saga log rather than started by a request. */
  readonly recovered: boolean;
  readonly request: TemplateScope['request'];
  readonly traceparent?: string;
  /** The saga's deadline: the definition's, or less when a parent saga's budget caps it. */
  readonly deadlineMs: number;
  readonly steps: Readonly<Record<string, StepRun>>;
  readonly failedStep?: string;
  readonly error?: ErrorInfo;
  readonly upstreamStatus?: number;
  /**
   * Steps whose action call was on its way when another step failed: compensation waits for its
   * answer (within the action's timeout) instead of aborting it and replaying it to learn what to
   * undo. Not journaled: a recovered saga has no call in flight.
   */
  readonly awaiting?: readonly string[];
}

export interface SagaInput {
  readonly sagaId: string;
  readonly request: TemplateScope['request'];
  readonly traceparent?: string;
  /**
   * Caps the definition's deadline: the budget a parent saga gave this one for its step call
   * (`x-sagamesh-budget-ms`). Absent: the definition's deadline.
   */
  readonly deadlineMs?: number;
  /**
   * Set when a saga is resumed from the saga log after its coordinator stopped (crash, lease
   * takeover) or when an operator re-drives it: the step states rebuilt from the log. The saga
   * then never runs forward again: backward recovery compensates what succeeded or may have.
   */
  readonly recovered?: {
    readonly steps: Readonly<Record<string, StepRun>>;
    readonly failedStep?: string;
    readonly error?: ErrorInfo;
  };
}

export type SagaMachineEvent =
  | { type: 'saga.step.failed'; step: string }
  | { type: 'saga.upstream.response'; status: number }
  | { type: 'saga.upstream.failed'; message: string }
  | { type: 'saga.abort'; reason: string }
  /** A call's answer (`call.action.hotel`): its outcome, or what the call function threw. */
  | { type: `call.${string}`; output?: CallOutput; error?: unknown }
  /** A call's timeout passed before its answer (`timeout.action.hotel`). */
  | { type: `timeout.${string}` };

/** Final states of the saga machine, i.e. the saga statuses a saga can end in. */
export const FINAL_STATES = ['succeeded', 'compensated', 'stuck'] as const;
export type FinalState = (typeof FINAL_STATES)[number];

/** A step that has not run. */
export function freshStep(): StepRun {
  return {
    status: 'pending',
    attempts: 0,
    inFlight: false,
    applied: 'no',
    nextDelayMs: 0,
    compensation: { status: 'pending', attempts: 0 },
  };
}

/** What we know of whether a step took effect, after one more answer: yes beats maybe beats no. */
export function mergeApplied(before: Applied, now: Applied): Applied {
  if (before === 'yes' || now === 'yes') return 'yes';
  if (before === 'maybe' || now === 'maybe') return 'maybe';
  return 'no';
}

/** A step needs compensating when it succeeded or may have succeeded (in doubt). */
export function needsCompensation(run: StepRun): boolean {
  return run.status === 'succeeded' || run.inFlight || run.applied !== 'no';
}

/**
 * One call's answer as the step rules below read it: what the machine's call port brings back
 * (`answerOf(output)`) and what a journal's `call.completed` record says (runtime/recovery.ts).
 */
export interface StepAnswer {
  readonly outcome: CallOutput['outcome'];
  readonly applied: Applied;
  /** The participant's HTTP status, success or not. */
  readonly httpStatus?: number;
  /** Kept only for a success: what templates read as `steps.<name>.response`. */
  readonly response?: StepResponse;
  readonly error?: ErrorInfo;
}

export function answerOf(output: CallOutput): StepAnswer {
  const { outcome, applied, response, error } = output;
  return {
    outcome,
    applied,
    ...(response ? { httpStatus: response.status } : {}),
    ...(outcome === 'success' && response ? { response } : {}),
    ...(error ? { error } : {}),
  };
}

// The step rules: what each thing that happens to a step's action does to its run. The machine's
// actions apply them as the saga runs; recovery applies them to the journal's records, so a saga
// rebuilt from its log holds what the machine held when it was written.

/** The action's attempt `attempt` was sent. */
export function actionSent(run: StepRun, attempt: number): StepRun {
  return { ...run, status: 'running', attempts: attempt, inFlight: true };
}

/** The action's attempt answered: a success is the step's result; anything else may be retried. */
export function actionAnswered(run: StepRun, answer: StepAnswer): StepRun {
  return {
    ...run,
    inFlight: false,
    applied: mergeApplied(run.applied, answer.applied),
    ...(answer.response ? { response: answer.response } : {}),
    ...(answer.httpStatus !== undefined ? { httpStatus: answer.httpStatus } : {}),
    ...(answer.error ? { error: answer.error } : {}),
    ...(answer.outcome === 'success' ? { status: 'succeeded' as const } : {}),
  };
}

/**
 * A replay of the in-doubt action (same idempotency key, while compensating) answered: it says
 * what the action did. A success gives the response the undo reads; a refusal proves the action
 * never took effect; anything else leaves it in doubt. The step's status in the run stays.
 */
export function actionResolved(run: StepRun, answer: StepAnswer): StepRun {
  return {
    ...run,
    ...(answer.response ? { response: answer.response } : {}),
    ...(answer.httpStatus !== undefined ? { httpStatus: answer.httpStatus } : {}),
    ...(answer.outcome === 'rejected' ? { inFlight: false } : {}),
    applied:
      answer.outcome === 'success'
        ? 'yes'
        : answer.outcome === 'rejected'
          ? 'no'
          : mergeApplied(run.applied, 'maybe'),
    ...(answer.error && answer.outcome !== 'success' ? { error: answer.error } : {}),
  };
}
