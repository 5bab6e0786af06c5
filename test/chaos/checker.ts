import { classify } from './client';
import type {
  Attempt,
  ClientRecord,
  DefinitionModel,
  ExitEvent,
  LogStatus,
  ParticipantEvent,
  StruckFault,
  Verdict,
  Violation,
} from './model';

/**
 * The chaos checker: a pure function from what the participants recorded, what the clients
 * received, what the saga log still shows as not done once the system is quiet (the admin API's
 * `GET /sagas?status=…`) and the exits nobody asked for, to the violations of ARCHITECTURE.md §5:
 *
 *   1. every saga is all applied or all undone ("undone" includes "never applied"); a pivot
 *      saga's upstream commit counts as one of its effects; a `stuck` saga is a violation;
 *   2. no effect applied twice for one idempotency key, no step of a saga applied under two keys,
 *      no two sagas with effects for one client request, no upstream commit twice;
 *   3. no saga left running or compensating once the system is quiet;
 *   4. a client's final answer agrees with the outcome (2xx ↔ all applied, the definition's
 *      failure status ↔ all undone), a retried Idempotency-Key gets the same answer, and every
 *      client with a key gets a final answer once the system is quiet;
 *   5. no process exits except those the run killed.
 *
 * It trusts nothing sagamesh says about a saga's effects: sagamesh's answers are checked against
 * the participants, never the other way round.
 */
export interface CheckInput {
  readonly definitions: readonly DefinitionModel[];
  readonly events: readonly ParticipantEvent[];
  readonly clients: readonly ClientRecord[];
  /** Sagas the log shows as running, compensating, stuck or failed once the system is quiet. */
  readonly notDone: readonly LogStatus[];
  readonly exits: readonly ExitEvent[];
  /** The process faults that struck (pivot sagas in doubt are judged by them). */
  readonly faults?: readonly StruckFault[];
}

/**
 * How long after the pivot upstream committed its answer may still be on its way to the saga
 * log: through Envoy to sagamesh, and `saga.finished` written (a PostgreSQL commit under load).
 */
export const PIVOT_ANSWER_WINDOW_MS = 3000;

export type Outcome = 'applied' | 'undone' | 'partial';

export interface SagaFacts {
  readonly sagaId: string;
  readonly definition?: string;
  readonly refs: ReadonlySet<string>;
  /** Per step: the keys applied, and which of them are still in effect. */
  readonly steps: ReadonlyMap<string, { applied: Set<string>; live: Set<string> }>;
  readonly commits: number;
  /** Any effect at all (applied action or upstream commit), undone or not. */
  readonly touched: boolean;
}

export interface CheckResult {
  readonly violations: readonly Violation[];
  /**
   * Pivot sagas compensated although their upstream committed, because a process fault struck
   * between the upstream receiving the request and the saga recording its answer: the one partial
   * outcome pivot mode cannot rule out (docs/saga-log.md, "Pivot mode"). Counted and reported, not
   * a violation; the same outcome with no fault in that window is one.
   */
  readonly pivotInDoubt: readonly Violation[];
  readonly outcomes: Readonly<Record<Outcome, number>>;
  readonly verdicts: Readonly<Record<Verdict, number>>;
  readonly sagas: number;
}

interface MutableFacts {
  sagaId: string;
  definition?: string;
  refs: Set<string>;
  steps: Map<string, { applied: Set<string>; live: Set<string> }>;
  commits: number;
  touched: boolean;
}

/** Folds the participants' events into facts per saga (and the violations of invariant 2 on the way). */
export function sagaFacts(
  events: readonly ParticipantEvent[],
  violations: Violation[],
): Map<string, SagaFacts> {
  const sagas = new Map<string, MutableFacts>();
  const keyState = new Map<string, 'applied' | 'undone' | 'tombstoned'>();
  const saga = (id: string): MutableFacts => {
    let s = sagas.get(id);
    if (!s)
      sagas.set(id, (s = { sagaId: id, refs: new Set(), steps: new Map(), commits: 0, touched: false }));
    return s;
  };
  for (const e of [...events].sort((a, b) => a.seq - b.seq)) {
    if (e.type === 'call' && e.kind === 'upstream' && !e.sagaId) {
      violations.push({
        invariant: 1,
        kind: 'upstream-without-saga',
        message: `the pivot upstream got ${e.method} ${e.path} without a saga id: a saga request passed unprocessed`,
        ...(e.ref ? { ref: e.ref } : {}),
      });
    }
    if (!e.sagaId) continue;
    const s = saga(e.sagaId);
    if (e.definition) s.definition ??= e.definition;
    if (e.ref) s.refs.add(e.ref);
    if (e.type === 'committed') {
      s.commits++;
      s.touched = true;
      if (s.commits === 2) {
        violations.push({
          invariant: 2,
          kind: 'committed-twice',
          message: 'the pivot upstream committed this saga twice',
          sagaId: s.sagaId,
        });
      }
      continue;
    }
    if (e.type !== 'applied' && e.type !== 'undone' && e.type !== 'tombstoned') continue;
    const step = e.step ?? '?';
    let st = s.steps.get(step);
    if (!st) s.steps.set(step, (st = { applied: new Set(), live: new Set() }));
    const before = keyState.get(e.key);
    if (e.type === 'applied') {
      s.touched = true;
      if (e.key !== `${s.sagaId}:${step}:action`) {
        violations.push({
          invariant: 2,
          kind: 'foreign-key',
          message: `step ${step} applied under key ${e.key}, not ${s.sagaId}:${step}:action`,
          sagaId: s.sagaId,
        });
      }
      if (before !== undefined) {
        violations.push({
          invariant: 2,
          kind: before === 'applied' ? 'applied-twice' : 'applied-after-undo',
          message: `key ${e.key} applied again (it was ${before})`,
          sagaId: s.sagaId,
        });
      }
      if (st.applied.size > 0 && !st.applied.has(e.key)) {
        violations.push({
          invariant: 2,
          kind: 'step-applied-twice',
          message: `step ${step} applied under a second key (${[...st.applied].join(', ')}, ${e.key})`,
          sagaId: s.sagaId,
        });
      }
      st.applied.add(e.key);
      st.live.add(e.key);
      keyState.set(e.key, 'applied');
    } else if (e.type === 'undone') {
      st.live.delete(e.key);
      keyState.set(e.key, 'undone');
    } else if (before === undefined) {
      keyState.set(e.key, 'tombstoned');
    }
  }
  return sagas;
}

export function outcomeOf(facts: SagaFacts | undefined, definition: DefinitionModel | undefined): Outcome {
  if (!facts) return 'undone';
  const live = [...facts.steps.values()].filter((s) => s.live.size > 0).length;
  const committed = facts.commits > 0;
  if (live === 0 && !committed) return 'undone';
  if (!definition) return 'partial';
  const allSteps = definition.steps.every((s) => (facts.steps.get(s.name)?.live.size ?? 0) > 0);
  const pivotDone = definition.respond === 'aggregate' || committed;
  return allSteps && pivotDone ? 'applied' : 'partial';
}

function describeSteps(facts: SagaFacts, definition: DefinitionModel | undefined): string {
  const names = definition ? definition.steps.map((s) => s.name) : [...facts.steps.keys()];
  const parts = names.map((n) => {
    const st = facts.steps.get(n);
    return `${n}=${!st || st.applied.size === 0 ? 'never' : st.live.size > 0 ? 'APPLIED' : 'undone'}`;
  });
  if (definition?.respond === 'upstream')
    parts.push(`upstream=${facts.commits > 0 ? 'COMMITTED' : 'not committed'}`);
  return parts.join(' ');
}

/** Whether two final answers for one key say the same thing (see client.ts for 202 replays). */
export function sameAnswer(a: Attempt, b: Attempt): boolean {
  if (a.status === b.status && a.body === b.body) return true;
  if (a.status !== 202 && b.status !== 202) return false;
  const ca = classify(a);
  const cb = classify(b);
  return ca.final && cb.final && ca.verdict === cb.verdict && a.sagaId === b.sagaId;
}

/** A process fault struck between the upstream receiving the saga's request and its answer's recording. */
function faultWhilePivotAnswered(
  sagaId: string,
  events: readonly ParticipantEvent[],
  faults: readonly StruckFault[],
): boolean {
  return events.some(
    (e) =>
      e.type === 'committed' &&
      e.sagaId === sagaId &&
      faults.some((f) => f.killedAt >= (e.receivedAt ?? e.at) && f.killedAt <= e.at + PIVOT_ANSWER_WINDOW_MS),
  );
}

export function check(input: CheckInput): CheckResult {
  const violations: Violation[] = [];
  const pivotInDoubt: Violation[] = [];
  const definitions = new Map(input.definitions.map((d) => [d.name, d]));
  const facts = sagaFacts(input.events, violations);

  // Sagas a client heard of but no participant saw: nothing applied, so all undone.
  for (const c of input.clients) {
    for (const a of c.attempts) {
      if (a.sagaId && !facts.has(a.sagaId)) {
        facts.set(a.sagaId, {
          sagaId: a.sagaId,
          definition: c.definition,
          refs: new Set([c.ref]),
          steps: new Map(),
          commits: 0,
          touched: false,
        });
      }
    }
  }

  const outcomes: Record<Outcome, number> = { applied: 0, undone: 0, partial: 0 };
  const outcome = new Map<string, Outcome>();
  const touchedByRef = new Map<string, string[]>();
  for (const f of facts.values()) {
    const definition = f.definition ? definitions.get(f.definition) : undefined;
    const o = outcomeOf(f, definition);
    outcome.set(f.sagaId, o);
    outcomes[o]++;
    if (o === 'partial') {
      // The one partial outcome pivot mode allows by design: the upstream's answer was lost, so the
      // saga was compensated, but the upstream had committed. Only when a process fault struck
      // while that answer was on its way (pivotInDoubt); otherwise a violation like any other.
      const onlyUpstream = f.commits > 0 && [...f.steps.values()].every((s) => s.live.size === 0);
      const v: Violation = {
        invariant: 1,
        kind: onlyUpstream ? 'pivot-committed-but-compensated' : 'half-applied',
        message: `${f.definition ?? 'unknown definition'}: ${describeSteps(f, definition)}`,
        sagaId: f.sagaId,
        ...(f.refs.size === 1 ? { ref: [...f.refs][0] } : {}),
      };
      if (onlyUpstream && faultWhilePivotAnswered(f.sagaId, input.events, input.faults ?? []))
        pivotInDoubt.push(v);
      else violations.push(v);
    }
    if (f.touched)
      for (const ref of f.refs) touchedByRef.set(ref, [...(touchedByRef.get(ref) ?? []), f.sagaId]);
  }
  for (const [ref, ids] of touchedByRef) {
    if (ids.length > 1) {
      violations.push({
        invariant: 2,
        kind: 'two-sagas-one-request',
        message: `sagas ${ids.join(', ')} both had effects for client request ${ref}`,
        ref,
      });
    }
  }

  const inDoubt = new Set(pivotInDoubt.flatMap((d) => (d.sagaId ? [d.sagaId] : [])));
  const verdicts: Record<Verdict, number> = { applied: 0, undone: 0, stuck: 0, unknown: 0 };
  for (const c of input.clients) {
    verdicts[c.verdict]++;
    const definition = definitions.get(c.definition);
    const v = (invariant: 4, kind: string, message: string, sagaId?: string): void => {
      const violation = { invariant, kind, message, ref: c.ref, ...(sagaId ? { sagaId } : {}) };
      // A failure answer for a pivot saga in doubt is that same doubt, not a second finding.
      if (kind === 'failure-but-not-undone' && sagaId !== undefined && inDoubt.has(sagaId))
        pivotInDoubt.push(violation);
      else violations.push(violation);
    };
    if (c.unexpected !== undefined) v(4, 'unexpected-answer', `answered ${c.unexpected}`);
    const final = c.finalAttempt === undefined ? undefined : c.attempts[c.finalAttempt];
    if (!final) {
      const told = [...c.attempts].reverse().find((a) => a.sagaId)?.sagaId;
      if (c.key !== undefined && c.unexpected === undefined)
        v(
          4,
          'no-final-answer',
          `no final answer for Idempotency-Key ${c.key}, even once the system was quiet`,
          told,
        );
      continue;
    }
    const sagaIds = touchedByRef.get(c.ref) ?? [];
    if (c.verdict === 'applied') {
      const id = final.sagaId ?? sagaIds[0];
      const o = id ? (outcome.get(id) ?? 'undone') : 'undone';
      if (o !== 'applied')
        v(4, 'success-but-not-applied', `answered ${final.status} but the saga is ${o}`, id);
    } else if (c.verdict === 'undone') {
      for (const id of sagaIds) {
        const o = outcome.get(id);
        if (o !== 'undone')
          v(4, 'failure-but-not-undone', `answered ${final.status} (compensated) but the saga is ${o}`, id);
      }
      if (final.status !== 202 && definition && final.status !== definition.failureStatus)
        v(
          4,
          'wrong-failure-status',
          `answered ${final.status}, the definition fails with ${definition.failureStatus}`,
          final.sagaId,
        );
    }
    c.attempts.forEach((a, i) => {
      if (i <= (c.finalAttempt ?? 0)) return;
      const cl = classify(a);
      if (cl.final && !sameAnswer(final, a))
        v(
          4,
          'different-answer-for-key',
          `first ${final.status} ${final.body ?? ''}, then ${a.status} ${a.body ?? ''}`,
          final.sagaId,
        );
      if (!cl.final && !cl.retry)
        v(4, 'unexpected-answer', `answered ${cl.unexpected} after the final answer`, final.sagaId);
    });
  }

  for (const s of input.notDone) {
    violations.push(
      s.status === 'stuck'
        ? {
            invariant: 1,
            kind: 'stuck',
            message: `${s.definition}: the saga is stuck (a compensation gave up)`,
            sagaId: s.sagaId,
          }
        : {
            invariant: 3,
            kind: 'not-terminal',
            message: `${s.definition}: still ${s.status} once the system was quiet`,
            sagaId: s.sagaId,
          },
    );
  }
  for (const x of input.exits) {
    violations.push({
      invariant: 5,
      kind: 'unexpected-exit',
      message: `${x.process} exited (code ${String(x.code)}) without being killed:\n${x.tail}`,
    });
  }
  return { violations, pivotInDoubt, outcomes, verdicts, sagas: facts.size };
}
