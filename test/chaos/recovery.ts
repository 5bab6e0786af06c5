import type { SagaLogView } from './admin';
import { classify } from './client';
import type { FaultRecord } from './faults';
import type { ClientRecord, ParticipantEvent } from './model';

/**
 * What each process fault cost, measured after the round:
 * - `settledMs`: from the kill until every saga in flight at that moment had finished in the log
 *   (its last record) — recovery included; the restart delay the plan chose is part of it;
 * - `interrupted`: those sagas (started before the kill, finished after it);
 * - `clientErrors`: client attempts answered with an error (a network error, or a retryable coded
 *   5xx) from the kill until that fault's recovery ended (the later of ready and settled).
 * Sagas in flight are found from the participants (a call within 15 s before the kill) and the
 * clients (an attempt open at the kill), then looked up in the log.
 */
export interface RecoveryFigure {
  readonly fault: FaultRecord;
  readonly interrupted: number;
  readonly settledMs: number;
  readonly clientErrors: number;
}

const LOOKBACK_MS = 15_000;

export function inFlightCandidates(
  fault: FaultRecord,
  events: readonly ParticipantEvent[],
  clients: readonly ClientRecord[],
): Set<string> {
  const ids = new Set<string>();
  for (const e of events) {
    if (e.sagaId && e.at <= fault.killedAt && e.at >= fault.killedAt - LOOKBACK_MS) ids.add(e.sagaId);
  }
  for (const c of clients) {
    const open = c.attempts.some((a) => a.startedAt <= fault.killedAt && a.endedAt >= fault.killedAt);
    if (!open) continue;
    for (const a of c.attempts) if (a.sagaId) ids.add(a.sagaId);
  }
  return ids;
}

/** An attempt that failed for want of the system (not a final answer, not 202). */
export function isClientError(a: ClientRecord['attempts'][number]): boolean {
  if (a.status === 202) return false;
  const c = classify(a);
  return !c.final && c.retry;
}

export function recoveryFigure(
  fault: FaultRecord,
  views: ReadonlyMap<string, SagaLogView | undefined>,
  clients: readonly ClientRecord[],
): RecoveryFigure {
  let interrupted = 0;
  let settledAt = fault.readyAt;
  for (const view of views.values()) {
    if (!view) continue;
    const { startedAt, endedAt, finished } = view.saga;
    if (startedAt > fault.killedAt || endedAt < fault.killedAt) continue;
    interrupted++;
    if (finished) settledAt = Math.max(settledAt, endedAt);
  }
  const until = Math.max(settledAt, fault.readyAt);
  let clientErrors = 0;
  for (const c of clients)
    for (const a of c.attempts)
      if (a.endedAt >= fault.killedAt && a.endedAt <= until && isClientError(a)) clientErrors++;
  return { fault, interrupted, settledMs: settledAt - fault.killedAt, clientErrors };
}

/** The q-quantile (0–1) of `values`, nearest rank; NaN for none. */
export function quantile(values: readonly number[], q: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] ?? NaN;
}
