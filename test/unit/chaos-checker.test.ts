import type { CheckInput } from '../chaos/checker';
import { check, sameAnswer } from '../chaos/checker';
import { classify } from '../chaos/client';
import { SIGNATURES, signatureOf, tallySignatures } from '../chaos/diagnose';
import type {
  Attempt,
  ClientRecord,
  DefinitionModel,
  ParticipantEvent,
  StepModel,
  Violation,
} from '../chaos/model';

/**
 * The chaos checker must be able to fail: every invariant is shown catching a planted violation,
 * and a clean history passing. Histories are written as the participants and clients record them.
 */
const step = (name: string): StepModel => ({
  name,
  host: 'hotel',
  dependsOn: [],
  timeoutMs: 1000,
  attempts: 3,
  undo: 'by-id',
  undoTimeoutMs: 1000,
  undoAttempts: 10,
});
const trip: DefinitionModel = {
  name: 'trip',
  path: '/chaos/0',
  respond: 'aggregate',
  deadlineMs: 5000,
  failureStatus: 409,
  steps: [step('s1'), step('s2')],
  yaml: '',
};
const pivot: DefinitionModel = {
  ...trip,
  name: 'pivot',
  path: '/chaos/1',
  respond: 'upstream',
  steps: [step('s1')],
};

let seq = 0;
const at = (): number => 1_000 + seq;
const ctx = (sagaId: string, s: string, def = 'trip', ref = 'r1') => ({
  host: 'hotel' as const,
  sagaId,
  step: s,
  definition: def,
  ref,
});
const applied = (
  sagaId: string,
  s: string,
  extra: Partial<{ key: string; def: string; ref: string }> = {},
): ParticipantEvent => ({
  type: 'applied',
  seq: ++seq,
  at: at(),
  ...ctx(sagaId, s, extra.def, extra.ref),
  key: extra.key ?? `${sagaId}:${s}:action`,
  effectId: `e-${seq}`,
});
const undone = (sagaId: string, s: string, def = 'trip', ref = 'r1'): ParticipantEvent => ({
  type: 'undone',
  seq: ++seq,
  at: at(),
  ...ctx(sagaId, s, def, ref),
  key: `${sagaId}:${s}:action`,
  effectId: 'e',
});
const tombstoned = (sagaId: string, s: string): ParticipantEvent => ({
  type: 'tombstoned',
  seq: ++seq,
  at: at(),
  ...ctx(sagaId, s),
  key: `${sagaId}:${s}:action`,
});
const committed = (sagaId: string, ref = 'r1'): ParticipantEvent => ({
  type: 'committed',
  seq: ++seq,
  at: at(),
  host: 'trips',
  sagaId,
  definition: 'pivot',
  ref,
});

const answer = (status: number, body: unknown, sagaId?: string, over: Partial<Attempt> = {}): Attempt => ({
  startedAt: 0,
  endedAt: 1,
  status,
  body: JSON.stringify(body),
  ...(sagaId ? { sagaId } : {}),
  ...over,
});
const client = (attempts: Attempt[], over: Partial<ClientRecord> = {}): ClientRecord => {
  const finalAttempt = attempts.findIndex((a) => classify(a).final);
  const last = attempts[finalAttempt];
  const c = last ? classify(last) : undefined;
  return {
    ref: 'r1',
    definition: 'trip',
    key: 'k1',
    attempts,
    verdict: c?.final ? c.verdict : 'unknown',
    ...(finalAttempt >= 0 ? { finalAttempt } : {}),
    ...over,
  };
};
const success = (sagaId: string): Attempt => answer(201, { sagaId, ref: 'r1' }, sagaId);
const failure = (sagaId: string, status = 409): Attempt =>
  answer(status, { sagaId, status: 'compensated', failedStep: 's2' }, sagaId);

const input = (over: Partial<CheckInput>): CheckInput => ({
  definitions: [trip, pivot],
  events: [],
  clients: [],
  notDone: [],
  exits: [],
  ...over,
});
const kinds = (violations: readonly Violation[]): string[] =>
  violations.map((v) => `${v.invariant}:${v.kind}`).sort();

describe('chaos checker', () => {
  it('passes a clean history: one saga all applied and answered 201, one all undone and answered 409', () => {
    const result = check(
      input({
        events: [
          applied('A', 's1'),
          applied('A', 's2'),
          applied('B', 's1', { ref: 'r2' }),
          undone('B', 's1', 'trip', 'r2'),
        ],
        clients: [client([success('A')]), client([failure('B')], { ref: 'r2', key: 'k2' })],
      }),
    );
    expect(result.violations).toEqual([]);
    expect(result.outcomes).toEqual({ applied: 1, undone: 1, partial: 0 });
  });

  it('1: catches a half-applied saga, and the failure answer that does not agree with it (4)', () => {
    const result = check(
      input({
        events: [applied('A', 's1'), applied('A', 's2'), undone('A', 's2')],
        clients: [client([failure('A')])],
      }),
    );
    expect(kinds(result.violations)).toEqual(['1:half-applied', '4:failure-but-not-undone']);
    expect(result.violations[0]).toMatchObject({ sagaId: 'A', message: 'trip: s1=APPLIED s2=undone' });
  });

  it('1: a pivot saga compensated although its upstream committed', () => {
    const result = check(
      input({ events: [applied('P', 's1', { def: 'pivot' }), undone('P', 's1', 'pivot'), committed('P')] }),
    );
    expect(kinds(result.violations)).toEqual(['1:pivot-committed-but-compensated']);
  });

  it('counts that pivot saga in doubt, not as a violation, only when a process fault struck while its answer travelled', () => {
    const events = [applied('P', 's1', { def: 'pivot' }), committed('P'), undone('P', 's1', 'pivot')];
    const committedAt = events[1]?.at ?? 0;
    const fault = (killedAt: number) => ({
      kind: 'sagamesh-kill' as const,
      killedAt,
      readyAt: killedAt + 2000,
    });
    const clients = [client([failure('P')], { definition: 'pivot' })];
    const near = check(input({ events, clients, faults: [fault(committedAt + 100)] }));
    expect(near.violations).toEqual([]);
    expect(kinds(near.pivotInDoubt)).toEqual([
      '1:pivot-committed-but-compensated',
      '4:failure-but-not-undone',
    ]);
    // A fault long after (or none at all) explains nothing: the same outcome is a violation.
    const far = check(input({ events, clients, faults: [fault(committedAt + 60_000)] }));
    expect(kinds(far.violations)).toEqual(['1:pivot-committed-but-compensated', '4:failure-but-not-undone']);
    expect(far.pivotInDoubt).toEqual([]);
  });

  it('1: a request that reached the pivot upstream without a saga', () => {
    const call: ParticipantEvent = {
      type: 'call',
      seq: ++seq,
      at: at(),
      host: 'trips',
      kind: 'upstream',
      method: 'POST',
      path: '/chaos/1',
      n: 0,
      fault: 'commit',
      status: 201,
      callerGone: false,
    };
    expect(kinds(check(input({ events: [call] })).violations)).toEqual(['1:upstream-without-saga']);
  });

  it('2: catches an effect applied twice for one key, after its undo, under a second key, and twice for one request', () => {
    expect(
      kinds(
        check(input({ events: [applied('A', 's1'), applied('A', 's1'), applied('A', 's2')] })).violations,
      ),
    ).toContain('2:applied-twice');
    expect(
      kinds(
        check(input({ events: [tombstoned('A', 's1'), applied('A', 's1'), undone('A', 's1')] })).violations,
      ),
    ).toEqual(['2:applied-after-undo']);
    expect(
      kinds(
        check(
          input({ events: [applied('A', 's1'), applied('A', 's1', { key: 'other' }), applied('A', 's2')] }),
        ).violations,
      ),
    ).toEqual(['2:foreign-key', '2:step-applied-twice']);
    const twice = check(
      input({ events: [applied('A', 's1'), applied('A', 's2'), applied('B', 's1'), applied('B', 's2')] }),
    );
    expect(kinds(twice.violations)).toEqual(['2:two-sagas-one-request']);
    expect(
      kinds(
        check(input({ events: [applied('P', 's1', { def: 'pivot' }), committed('P'), committed('P')] }))
          .violations,
      ),
    ).toEqual(['2:committed-twice']);
  });

  it('3: a saga still running or compensating once quiet; a stuck one is a violation of 1', () => {
    const result = check(
      input({
        notDone: [
          { sagaId: 'A', definition: 'trip', status: 'running' },
          { sagaId: 'B', definition: 'trip', status: 'compensating' },
          { sagaId: 'C', definition: 'trip', status: 'stuck' },
        ],
      }),
    );
    expect(kinds(result.violations)).toEqual(['1:stuck', '3:not-terminal', '3:not-terminal']);
  });

  it('4: catches a success answer for an undone saga, a wrong failure status and a changed answer for one key', () => {
    const lied = check(
      input({ events: [applied('A', 's1'), undone('A', 's1')], clients: [client([success('A')])] }),
    );
    expect(kinds(lied.violations)).toEqual(['4:success-but-not-applied']);

    const status = check(input({ clients: [client([failure('A', 503)])] }));
    expect(kinds(status.violations)).toEqual(['4:wrong-failure-status']);

    const changed = check(
      input({
        events: [applied('A', 's1'), applied('A', 's2')],
        clients: [
          client([
            success('A'),
            answer(201, { sagaId: 'A', ref: 'r1', extra: 1 }, 'A', { afterFinal: true }),
          ]),
        ],
      }),
    );
    expect(kinds(changed.violations)).toEqual(['4:different-answer-for-key']);
  });

  it('4: a client with a key and no final answer once quiet, and an answer no saga request should get', () => {
    const none = check(input({ clients: [client([answer(202, { sagaId: 'A', status: 'running' }, 'A')])] }));
    expect(kinds(none.violations)).toEqual(['4:no-final-answer']);
    const reused = check(
      input({
        clients: [
          client(
            [answer(422, { status: 'failed', error: { code: 'SAGAMESH_ERR_IDEMPOTENCY_KEY_REUSED' } })],
            {
              unexpected: '422 SAGAMESH_ERR_IDEMPOTENCY_KEY_REUSED',
            },
          ),
        ],
      }),
    );
    expect(kinds(reused.violations)).toEqual(['4:unexpected-answer']);
  });

  it('5: any exit the run did not ask for', () => {
    const result = check(input({ exits: [{ process: 'sagamesh-0', at: 0, code: 1, tail: 'boom' }] }));
    expect(kinds(result.violations)).toEqual(['5:unexpected-exit']);
  });
});

describe('chaos client answers', () => {
  it('reads finality from what an answer says, not from its status alone', () => {
    expect(classify(failure('A', 503))).toEqual({ final: true, verdict: 'undone' });
    expect(
      classify(answer(503, { status: 'failed', error: { code: 'SAGAMESH_ERR_COORDINATOR_UNAVAILABLE' } })),
    ).toMatchObject({
      final: false,
      retry: true,
    });
    expect(classify(answer(202, { sagaId: 'A', status: 'running' }))).toMatchObject({
      final: false,
      retry: true,
    });
    expect(classify(answer(202, { sagaId: 'A', status: 'succeeded' }))).toEqual({
      final: true,
      verdict: 'applied',
    });
    expect(classify({ startedAt: 0, endedAt: 1, error: 'ECONNRESET' })).toMatchObject({
      final: false,
      retry: true,
    });
    expect(
      classify(answer(400, { status: 'failed', error: { code: 'SAGAMESH_ERR_INPUT_INVALID' } })),
    ).toMatchObject({
      final: false,
      retry: false,
    });
  });

  it("takes a pivot saga's 202 replay as the same answer as its upstream's 201", () => {
    const upstream = answer(201, { committed: true, sagaId: 'P' }, 'P');
    expect(sameAnswer(upstream, answer(202, { sagaId: 'P', status: 'succeeded' }, 'P'))).toBe(true);
    expect(sameAnswer(upstream, answer(202, { sagaId: 'P', status: 'compensated' }, 'P'))).toBe(false);
    expect(sameAnswer(upstream, answer(201, { committed: true, sagaId: 'Q' }, 'Q'))).toBe(false);
  });
});

describe('chaos diagnosis', () => {
  const view = (...history: Record<string, unknown>[]) => ({
    saga: { status: 'stuck', startedAt: 0, endedAt: 1, finished: true },
    history,
  });
  const stuck: Violation = { invariant: 1, kind: 'stuck', message: '', sagaId: 'A' };
  const template = {
    type: 'call.completed',
    step: 's1',
    kind: 'compensation',
    outcome: 'rejected',
    error: { code: 'SAGAMESH_ERR_STEP_TEMPLATE' },
  };

  it('names the known causes from the saga log, and says so when none fits', () => {
    expect(
      signatureOf(
        stuck,
        view(
          { type: 'call.completed', step: 's1', kind: 'action', outcome: 'retryable', status: 503 },
          template,
        ),
      ),
    ).toBe(SIGNATURES.keptFailure);
    expect(
      signatureOf(
        stuck,
        view(
          {
            type: 'call.completed',
            step: 's1',
            kind: 'action',
            outcome: 'success',
            status: 201,
            response: { body: '{"id":"' },
          },
          template,
        ),
      ),
    ).toBe(SIGNATURES.garbage);
    expect(
      signatureOf(
        { ...stuck, kind: 'half-applied' },
        view(
          { type: 'saga.compensating' },
          { type: 'saga.recovered' },
          { type: 'saga.finished', status: 'succeeded' },
        ),
      ),
    ).toBe(SIGNATURES.recoveredAsSucceeded);
    expect(signatureOf({ ...stuck, kind: 'pivot-committed-but-compensated' }, undefined)).toBe(
      SIGNATURES.pivot,
    );
    expect(signatureOf({ ...stuck, kind: 'no-final-answer' }, undefined)).toBe(SIGNATURES.keyWithoutSaga);
    expect(
      signatureOf(
        stuck,
        view(
          { type: 'call.completed', step: 's1', kind: 'action', outcome: 'retryable', status: 503 },
          { type: 'call.completed', step: 's1', kind: 'action', outcome: 'rejected', status: 409 },
          template,
        ),
      ),
    ).toBe(SIGNATURES.keptFailure);
    expect(signatureOf(stuck, view({ type: 'saga.finished', status: 'stuck' }))).toBe(SIGNATURES.unexplained);
  });

  it('counts a saga once, under its known cause', () => {
    const logs = new Map([
      [
        'A',
        view(
          { type: 'call.completed', step: 's1', kind: 'action', outcome: 'retryable', status: 503 },
          template,
        ),
      ],
    ]);
    const half: Violation = { invariant: 1, kind: 'half-applied', message: '', sagaId: 'A' };
    const answer: Violation = { invariant: 4, kind: 'failure-but-not-undone', message: '', sagaId: 'A' };
    expect(tallySignatures([half, stuck, answer], logs)).toEqual({ [SIGNATURES.keptFailure]: 1 });
  });
});

describe('chaos diagnosis of a pivot answered before it was recorded', () => {
  it('ranks it above the lost pivot answer the same saga also shows', () => {
    const logs = new Map([
      [
        'P',
        {
          saga: { status: 'compensated', startedAt: 0, endedAt: 1, finished: true },
          history: [
            { type: 'saga.started' },
            { type: 'saga.recovered' },
            { type: 'saga.finished', status: 'compensated' },
          ],
        },
      ],
    ]);
    const violations: Violation[] = [
      { invariant: 1, kind: 'pivot-committed-but-compensated', message: '', sagaId: 'P' },
      { invariant: 4, kind: 'success-but-not-applied', message: '', sagaId: 'P' },
    ];
    expect(tallySignatures(violations, logs)).toEqual({ [SIGNATURES.answeredBeforeRecorded]: 1 });
    expect(tallySignatures(violations.slice(0, 1), logs)).toEqual({ [SIGNATURES.pivot]: 1 });
  });
});
