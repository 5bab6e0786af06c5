import type { CallKind, SagaParent, SagaRecord, SagaStatus } from '../runtime/journal';
import { statusAfter } from '../runtime/journal';

/**
 * One saga's story, derived from its saga log records only (so it reads the same for a saga run
 * by another instance or before a restart): what it is, and every call as a bar over time. A bar
 * is a `call.dispatched` record paired with its `call.completed`; a dispatch with no completion
 * was timed out or aborted by the machine (which records no outcome for it), or is in flight. A
 * call on its way when another step failed stays open: the compensation waits for its answer.
 */

export interface TimelineBar {
  readonly step: string;
  readonly kind: CallKind;
  readonly attempt: number;
  /** An in-doubt action replayed (same idempotency key) during compensation to learn its result. */
  readonly replay: boolean;
  /** The lane it is drawn in: the step's action, or its undo (compensation and replays). */
  readonly lane: 'action' | 'compensation';
  readonly start: number;
  /** When the outcome was recorded; for an unanswered call, when the saga moved on. */
  readonly end: number;
  /** success | rejected | retryable (from the record), `no answer`, or `in flight`. */
  readonly outcome: string;
  readonly httpStatus?: number;
  readonly error?: { readonly code: string; readonly message: string };
}

export interface TimelineMark {
  readonly at: number;
  readonly label: string;
}

export interface SagaView {
  readonly sagaId: string;
  readonly definition: string;
  readonly version: string;
  readonly status: SagaStatus;
  readonly startedAt: number;
  /** The last record's time, or now while the saga runs. */
  readonly endedAt: number;
  readonly finished: boolean;
  readonly request?: { readonly method: string; readonly path: string };
  /** Nested sagas: the saga and step whose call started this one. */
  readonly parent?: SagaParent;
  /** Nested sagas: the deadline a parent's budget set, when shorter than the definition's. */
  readonly deadlineMs?: number;
  /** Nested sagas: steps whose participant answered as a saga (its `x-sagamesh-saga-id`). */
  readonly children: readonly { readonly step: string; readonly sagaId: string }[];
  readonly failedStep?: string;
  readonly error?: { readonly code: string; readonly message: string };
  readonly bars: readonly TimelineBar[];
  readonly marks: readonly TimelineMark[];
}

/** The header a saga's answer carries its id in (extproc/answers.ts): a participant that is a saga. */
const CHILD_SAGA_HEADER = 'x-sagamesh-saga-id';

const key = (step: string, kind: string, attempt: number, replay: boolean): string =>
  `${step}\u0000${kind}\u0000${attempt}\u0000${replay}`;

/** `records` in log order; `now` closes the bars of a saga still running. Undefined for no records. */
export function sagaView(records: readonly SagaRecord[], now: number): SagaView | undefined {
  const first = records[0];
  if (!first) return undefined;
  const last = records[records.length - 1] ?? first;
  let status: SagaStatus = 'running';
  let definition = '';
  let version = '';
  let request: SagaView['request'];
  let started: Extract<SagaRecord, { type: 'saga.started' }> | undefined;
  const children: { step: string; sagaId: string }[] = [];
  let failedStep: string | undefined;
  let error: SagaView['error'];
  const marks: TimelineMark[] = [];
  const open = new Map<string, { index: number; record: Extract<SagaRecord, { type: 'call.dispatched' }> }>();
  const bars: (TimelineBar | undefined)[] = [];

  /** An unanswered call ends where the saga moved on: the next call of its step and kind, or a phase change. */
  const closeUnanswered = (at: number, only?: { step: string; lane: string }): void => {
    for (const [k, { index, record }] of open) {
      const lane = record.kind === 'compensation' || record.replay ? 'compensation' : 'action';
      if (only && (only.step !== record.step || only.lane !== lane)) continue;
      bars[index] = { ...barOf(record), end: at, outcome: 'no answer' };
      open.delete(k);
    }
  };

  for (const record of records) {
    status = statusAfter(record) ?? status;
    switch (record.type) {
      case 'saga.started':
        definition = record.definition;
        version = record.version;
        request = { method: record.request.method, path: record.request.path };
        started = record;
        break;
      case 'call.dispatched': {
        const lane = record.kind === 'compensation' || record.replay ? 'compensation' : 'action';
        closeUnanswered(record.at, { step: record.step, lane });
        // A replay means the action's own call was given up on.
        if (record.replay) closeUnanswered(record.at, { step: record.step, lane: 'action' });
        open.set(key(record.step, record.kind, record.attempt, record.replay), {
          index: bars.length,
          record,
        });
        bars.push(undefined);
        break;
      }
      case 'call.completed': {
        const child = record.kind === 'action' ? record.response?.headers[CHILD_SAGA_HEADER] : undefined;
        if (child && !children.some((c) => c.step === record.step))
          children.push({ step: record.step, sagaId: child });
        const k = key(record.step, record.kind, record.attempt, record.replay);
        const dispatched = open.get(k);
        const bar: TimelineBar = {
          ...(dispatched ? barOf(dispatched.record) : barOf({ ...record, at: record.at })),
          end: record.at,
          outcome: record.outcome,
          ...(record.status !== undefined ? { httpStatus: record.status } : {}),
          ...(record.error ? { error: record.error } : {}),
        };
        if (dispatched) {
          bars[dispatched.index] = bar;
          open.delete(k);
        } else bars.push(bar); // refused before dispatch (its request could not be built)
        break;
      }
      case 'saga.compensating':
        // A step's failure leaves the other actions' calls on their way (the compensation waits
        // for their answers); the deadline, an abort or a failed upstream cuts them.
        if (record.failedStep === undefined) closeUnanswered(record.at);
        failedStep = record.failedStep;
        error = record.error;
        // An undo of a saga that had succeeded (spec.undo) re-opens it: say so.
        marks.push({ at: record.at, label: record.undo ? 'undo' : 'compensating' });
        break;
      case 'saga.finished':
        closeUnanswered(record.at);
        marks.push({ at: record.at, label: record.status });
        break;
      default:
        marks.push({ at: record.at, label: record.type.replace(/^saga\./, '') });
    }
  }
  const finished = last.type === 'saga.finished';
  const endedAt = finished ? last.at : Math.max(now, last.at);
  for (const { index, record } of open.values()) {
    bars[index] = { ...barOf(record), end: endedAt, outcome: finished ? 'no answer' : 'in flight' };
  }
  return {
    sagaId: first.sagaId,
    definition,
    version,
    status,
    startedAt: first.at,
    endedAt,
    finished,
    ...(request ? { request } : {}),
    ...(started?.parent ? { parent: started.parent } : {}),
    ...(started?.deadlineMs !== undefined ? { deadlineMs: started.deadlineMs } : {}),
    children,
    ...(failedStep ? { failedStep } : {}),
    ...(error ? { error } : {}),
    bars: bars.filter((b): b is TimelineBar => b !== undefined),
    marks,
  };
}

function barOf(record: {
  readonly step: string;
  readonly kind: CallKind;
  readonly attempt: number;
  readonly replay: boolean;
  readonly at: number;
}): TimelineBar {
  return {
    step: record.step,
    kind: record.kind,
    attempt: record.attempt,
    replay: record.replay,
    lane: record.kind === 'compensation' || record.replay ? 'compensation' : 'action',
    start: record.at,
    end: record.at,
    outcome: 'in flight',
  };
}
