import type { SagaLogView } from './admin';
import type { Violation } from './model';

/**
 * Known causes, recognised in a violating saga's log so a run can count its violations by cause
 * (docs/reliability.md, "What the suite found"). A signature is a hint for the reader, never a
 * reason to pass: every violation counts whatever its signature.
 */
export const SIGNATURES = {
  pivot: 'pivot answer lost: the upstream committed, the saga was compensated',
  recoveredAsSucceeded: 'recovered as succeeded although it had been compensating',
  keptFailure:
    'an in-doubt step kept a failure answer (a 5xx, or a refusal after one) as its response: no replay, the undo could not be built',
  keyWithoutSaga:
    'the Idempotency-Key was reserved but its saga never recorded: 202 "running" until the key expires',
  garbage: 'a success answer with a non-JSON body: the undo could not be built',
  unexplained: 'no known signature',
} as const;
export type Signature = (typeof SIGNATURES)[keyof typeof SIGNATURES];

type Rec = Readonly<Record<string, unknown>>;

export function signatureOf(v: Violation, log: SagaLogView | undefined): Signature {
  if (v.kind === 'pivot-committed-but-compensated') return SIGNATURES.pivot;
  if (v.kind === 'no-final-answer' && v.sagaId !== undefined && log === undefined)
    return SIGNATURES.keyWithoutSaga;
  const history: readonly Rec[] = log?.history ?? [];
  const finishedAt = history.findIndex((r) => r['type'] === 'saga.finished' && r['status'] === 'succeeded');
  if (finishedAt >= 0 && history.slice(0, finishedAt).some((r) => r['type'] === 'saga.compensating'))
    return SIGNATURES.recoveredAsSucceeded;
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
    const last = actions.filter((a) => a['replay'] !== true).pop();
    if (last && last['outcome'] !== 'success' && typeof last['status'] === 'number')
      return SIGNATURES.keptFailure;
  }
  return SIGNATURES.unexplained;
}

/** Violating sagas by signature (a saga counts once, whatever number of invariants it broke). */
export function tallySignatures(
  violations: readonly Violation[],
  logs: ReadonlyMap<string, SagaLogView | undefined>,
): Record<string, number> {
  const bySaga = new Map<string, Signature>();
  const tally: Record<string, number> = {};
  for (const v of violations) {
    const key = v.sagaId ?? `${v.kind}:${v.ref ?? v.message}`;
    const s = signatureOf(v, v.sagaId ? logs.get(v.sagaId) : undefined);
    const before = bySaga.get(key);
    if (before !== undefined && before !== SIGNATURES.unexplained) continue;
    if (before !== undefined) tally[before] = (tally[before] ?? 1) - 1;
    bySaga.set(key, s);
    tally[s] = (tally[s] ?? 0) + 1;
  }
  for (const [k, n] of Object.entries(tally)) if (n === 0) delete tally[k];
  return tally;
}
