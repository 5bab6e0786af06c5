import type { SagaLogView } from './admin';
import type { Violation } from './model';

/**
 * Known causes, recognised in a violating saga's log so a run can count its violations by cause
 * (docs/reliability.md, "What the suite found"). A signature is a hint for the reader, never a
 * reason to pass: every violation counts whatever its signature. Listed from the most specific:
 * a saga that breaks several invariants is counted once, under the first that fits.
 */
export const SIGNATURES = {
  recoveredAsSucceeded: 'recovered as succeeded although it had been compensating',
  answeredBeforeRecorded:
    "a pivot's success was let through before it was recorded; recovery compensated the saga",
  keptFailure:
    'an in-doubt step kept a failure answer (a 5xx, or a refusal after one) as its response: no replay, the undo could not be built',
  garbage: 'a success answer with a non-JSON body: the undo could not be built',
  keyWithoutSaga:
    'the Idempotency-Key was reserved but its saga never recorded: 202 "running" until the key expires',
  pivot: 'pivot answer lost: the upstream committed, the saga was compensated',
  unexplained: 'no known signature',
} as const;
export type Signature = (typeof SIGNATURES)[keyof typeof SIGNATURES];
const RANK: readonly Signature[] = Object.values(SIGNATURES);

type Rec = Readonly<Record<string, unknown>>;

export function signatureOf(v: Violation, log: SagaLogView | undefined): Signature {
  if (v.kind === 'no-final-answer' && v.sagaId !== undefined && log === undefined)
    return SIGNATURES.keyWithoutSaga;
  const history: readonly Rec[] = log?.history ?? [];
  const finishedAt = history.findIndex((r) => r['type'] === 'saga.finished' && r['status'] === 'succeeded');
  if (finishedAt >= 0 && history.slice(0, finishedAt).some((r) => r['type'] === 'saga.compensating'))
    return SIGNATURES.recoveredAsSucceeded;
  // The client was told 2xx, the log says the saga was recovered (never recorded as succeeded).
  if (
    (v.kind === 'success-but-not-applied' || v.kind === 'different-answer-for-key') &&
    finishedAt < 0 &&
    history.some((r) => r['type'] === 'saga.recovered')
  )
    return SIGNATURES.answeredBeforeRecorded;
  for (const r of history) {
    const error = r['error'] as { code?: unknown } | undefined;
    if (
      r['type'] !== 'call.completed' ||
      r['kind'] !== 'compensation' ||
      error?.code !== 'SAGAMESH_ERR_STEP_TEMPLATE'
    )
      continue;
    const actions = history.filter(
      (a) => a['type'] === 'call.completed' && a['kind'] === 'action' && a['step'] === r['step'],
    );
    const response = actions.find((a) => a['outcome'] === 'success')?.['response'] as
      { body?: unknown } | undefined;
    if (typeof response?.body === 'string') return SIGNATURES.garbage;
    // No success, but an answer with a status (a network error after it keeps the earlier one).
    const answered = actions.some(
      (a) => a['replay'] !== true && a['outcome'] !== 'success' && typeof a['status'] === 'number',
    );
    if (!response && answered) return SIGNATURES.keptFailure;
  }
  if (v.kind === 'pivot-committed-but-compensated') return SIGNATURES.pivot;
  return SIGNATURES.unexplained;
}

/** Violating sagas by signature: a saga counts once, under its most specific signature. */
export function tallySignatures(
  violations: readonly Violation[],
  logs: ReadonlyMap<string, SagaLogView | undefined>,
): Record<string, number> {
  const bySaga = new Map<string, Signature>();
  for (const v of violations) {
    const key = v.sagaId ?? `${v.kind}:${v.ref ?? v.message}`;
    const s = signatureOf(v, v.sagaId ? logs.get(v.sagaId) : undefined);
    const before = bySaga.get(key);
    if (before === undefined || RANK.indexOf(s) < RANK.indexOf(before)) bySaga.set(key, s);
  }
  const tally: Record<string, number> = {};
  for (const s of bySaga.values()) tally[s] = (tally[s] ?? 0) + 1;
  return tally;
}
