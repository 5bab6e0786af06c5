import { needsCompensation } from '../../src/runtime/saga-state';
import { rebuild } from '../../src/runtime/recovery';
import type { CallKind, SagaEvent, SagaRecord } from '../../src/runtime/journal';

/**
 * rebuild(): a saga's journal → the state a recovered saga machine starts from. One test per rule
 * of its header comment, plus how the machine reads the result (needsCompensation).
 */

const SAGA = 'saga-1';
const started: SagaEvent = {
  type: 'saga.started',
  definition: 'book-trip',
  version: 'v1',
  request: { method: 'POST', path: '/trips', query: {}, headers: {}, body: { guest: 'Ada' } },
  traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01',
};
const booking = { status: 201, headers: { 'content-type': 'application/json' }, body: { id: 'hotel-1' } };

/** Numbers the events as the store would. */
const journal = (...events: SagaEvent[]): SagaRecord[] =>
  events.map((e, i) => ({ ...e, sagaId: SAGA, seq: i + 1, at: 1000 + i }));

const dispatched = (step: string, kind: CallKind, attempt = 1, replay = false): SagaEvent => ({
  type: 'call.dispatched',
  step,
  kind,
  attempt,
  replay,
});

const completed = (
  step: string,
  kind: CallKind,
  outcome: 'success' | 'rejected' | 'retryable',
  extra: { attempt?: number; replay?: boolean; status?: number; response?: typeof booking } = {},
): SagaEvent => ({
  type: 'call.completed',
  step,
  kind,
  attempt: extra.attempt ?? 1,
  replay: extra.replay ?? false,
  outcome,
  ...(extra.status !== undefined ? { status: extra.status } : {}),
  ...(extra.response ? { response: extra.response } : {}),
  ...(outcome === 'success'
    ? {}
    : { error: { code: 'SAGAMESH_ERR_STEP_REJECTED' as const, message: `${step}: ${outcome}` } }),
});

const stepOf = (records: SagaRecord[], name: string, opts?: { retryStuck?: boolean }) => {
  const rebuilt = rebuild(records, opts);
  const s = rebuilt?.steps[name];
  if (!s) throw new Error(`no step ${name} rebuilt`);
  return s;
};

describe('rebuild (journal → recovered state)', () => {
  it('does not count an in-doubt step replayed during compensation as having succeeded', () => {
    // Chaos seed 3: the saga was compensating, the in-doubt hotel's replay answered with its
    // booking, and the coordinator died before the undo: that step still needs its undo.
    const records = journal(
      started,
      dispatched('hotel', 'action'),
      completed('hotel', 'action', 'retryable', { status: 503 }),
      {
        type: 'saga.compensating',
        failedStep: 'hotel',
        error: { code: 'SAGAMESH_ERR_STEP_UNAVAILABLE', message: 'hotel: participant answered 503' },
      },
      dispatched('hotel', 'action', 1, true),
      completed('hotel', 'action', 'success', { replay: true, status: 200, response: booking }),
    );
    const s = stepOf(records, 'hotel');
    expect(s.status).not.toBe('succeeded');
    expect(s).toMatchObject({ applied: 'yes', response: booking, httpStatus: 200 });
    expect(needsCompensation(s)).toBe(true);
    expect(rebuild(records)?.error?.code).toBe('SAGAMESH_ERR_STEP_UNAVAILABLE');
  });
  it('is undefined without a saga.started record, and returns that record', () => {
    expect(rebuild([])).toBeUndefined();
    expect(rebuild(journal(dispatched('hotel', 'action')).slice(0))).toBeUndefined();
    const rebuilt = rebuild(journal(started));
    expect(rebuilt?.started).toMatchObject({ ...started, sagaId: SAGA, seq: 1 });
    expect(rebuilt?.steps).toEqual({});
    expect(rebuilt?.finished).toBeUndefined();
    expect(rebuilt?.failedStep).toBeUndefined();
  });

  it('an action dispatched and never completed is in doubt (in flight), so it is compensated', () => {
    const s = stepOf(journal(started, dispatched('hotel', 'action', 2)), 'hotel');
    expect(s).toMatchObject({ status: 'running', inFlight: true, attempts: 2, applied: 'no' });
    expect(s.response).toBeUndefined();
    expect(needsCompensation(s)).toBe(true);
  });

  it('an action that answered success succeeded, and keeps its response for the compensation', () => {
    const s = stepOf(
      journal(
        started,
        dispatched('hotel', 'action'),
        completed('hotel', 'action', 'success', { response: booking }),
      ),
      'hotel',
    );
    expect(s).toMatchObject({ status: 'succeeded', inFlight: false, applied: 'yes', response: booking });
    expect(s.error).toBeUndefined();
    expect(needsCompensation(s)).toBe(true);
  });

  it('a 5xx, timeout or network failure may have been applied', () => {
    const s = stepOf(
      journal(
        started,
        dispatched('hotel', 'action'),
        completed('hotel', 'action', 'retryable', { status: 503 }),
      ),
      'hotel',
    );
    expect(s).toMatchObject({ status: 'running', inFlight: false, applied: 'maybe' });
    expect(s.error?.message).toBe('hotel: retryable');
    expect(needsCompensation(s)).toBe(true);
  });

  it('a 4xx refusal was not applied: nothing to undo', () => {
    const s = stepOf(
      journal(started, dispatched('car', 'action'), completed('car', 'action', 'rejected', { status: 409 })),
      'car',
    );
    expect(s).toMatchObject({ inFlight: false, applied: 'no' });
    expect(s.error).toBeDefined();
    expect(needsCompensation(s)).toBe(false);
  });

  it('a refusal of a later attempt does not clear the doubt an earlier 5xx left', () => {
    const s = stepOf(
      journal(
        started,
        dispatched('car', 'action', 1),
        completed('car', 'action', 'retryable', { attempt: 1, status: 500 }),
        dispatched('car', 'action', 2),
        completed('car', 'action', 'rejected', { attempt: 2, status: 409 }),
      ),
      'car',
    );
    expect(s).toMatchObject({ applied: 'maybe', inFlight: false, attempts: 2 });
    expect(needsCompensation(s)).toBe(true);
  });

  it('a retried action that finally succeeded is applied, whatever the attempts before said', () => {
    const s = stepOf(
      journal(
        started,
        dispatched('hotel', 'action', 1),
        completed('hotel', 'action', 'retryable', { status: 503 }),
        dispatched('hotel', 'action', 2),
        completed('hotel', 'action', 'success', { attempt: 2, response: booking }),
      ),
      'hotel',
    );
    expect(s).toMatchObject({ status: 'succeeded', applied: 'yes', attempts: 2, inFlight: false });
  });

  describe('replays of an in-doubt action (same idempotency key, to learn its result)', () => {
    const inDoubt = [
      started,
      dispatched('flight', 'action'),
      {
        type: 'saga.compensating' as const,
        error: { code: 'SAGAMESH_ERR_STEP_TIMEOUT' as const, message: 'flight' },
        failedStep: 'flight',
      },
    ];

    it('a replay dispatched is not a new attempt of the action', () => {
      const s = stepOf(journal(...inDoubt, dispatched('flight', 'action', 1, true)), 'flight');
      expect(s).toMatchObject({ status: 'running', inFlight: true, attempts: 1 });
    });

    it('a successful replay gives the response the undo needs', () => {
      const s = stepOf(
        journal(
          ...inDoubt,
          dispatched('flight', 'action', 1, true),
          completed('flight', 'action', 'success', { replay: true, status: 200, response: booking }),
        ),
        'flight',
      );
      // Applied, with the response the undo needs — but not a step that succeeded in the saga's
      // run (that made a saga killed while compensating recover as succeeded: chaos seed 3).
      expect(s).toMatchObject({ status: 'running', applied: 'yes', response: booking });
      expect(needsCompensation(s)).toBe(true);
    });

    it('a refused replay proves the action never took effect', () => {
      const s = stepOf(
        journal(
          ...inDoubt,
          dispatched('flight', 'action', 1, true),
          completed('flight', 'action', 'rejected', { replay: true, status: 409 }),
        ),
        'flight',
      );
      expect(s).toMatchObject({ applied: 'no', inFlight: false });
      expect(needsCompensation(s)).toBe(false);
    });

    it('a replay that failed again leaves the step in doubt', () => {
      const s = stepOf(
        journal(
          ...inDoubt,
          dispatched('flight', 'action', 1, true),
          completed('flight', 'action', 'retryable', { replay: true, status: 503 }),
        ),
        'flight',
      );
      expect(s).toMatchObject({ inFlight: true, applied: 'maybe' });
      expect(needsCompensation(s)).toBe(true);
    });
  });

  describe('compensations', () => {
    const booked = [
      started,
      dispatched('hotel', 'action'),
      completed('hotel', 'action', 'success', { response: booking }),
      {
        type: 'saga.compensating' as const,
        failedStep: 'car',
        error: { code: 'SAGAMESH_ERR_STEP_REJECTED' as const, message: 'car' },
      },
    ];

    it('one that succeeded (or answered 404) is done and is not sent again', () => {
      const s = stepOf(
        journal(
          ...booked,
          dispatched('hotel', 'compensation'),
          completed('hotel', 'compensation', 'success', { status: 404 }),
        ),
        'hotel',
      );
      expect(s.compensation).toEqual({ status: 'done', attempts: 0 });
    });

    it('one dispatched and never answered is sent again (idempotently)', () => {
      const s = stepOf(journal(...booked, dispatched('hotel', 'compensation', 3)), 'hotel');
      expect(s.compensation).toEqual({ status: 'pending', attempts: 0 });
    });

    it('one that failed and was due for a retry is sent again, keeping the last error', () => {
      const s = stepOf(
        journal(
          ...booked,
          dispatched('hotel', 'compensation'),
          completed('hotel', 'compensation', 'retryable', { status: 500 }),
        ),
        'hotel',
      );
      expect(s.compensation).toMatchObject({
        status: 'pending',
        attempts: 0,
        error: { message: 'hotel: retryable' },
      });
    });

    it('one refused is stuck, and is re-driven only when an operator asks (retryStuck)', () => {
      const records = journal(
        ...booked,
        dispatched('hotel', 'compensation'),
        completed('hotel', 'compensation', 'rejected', { status: 400 }),
        { type: 'saga.finished', status: 'stuck' },
      );
      expect(stepOf(records, 'hotel').compensation).toMatchObject({ status: 'stuck', attempts: 0 });
      expect(stepOf(records, 'hotel', { retryStuck: true }).compensation).toMatchObject({
        status: 'pending',
        attempts: 0,
      });
      expect(rebuild(records)?.finished).toBe('stuck');
    });

    it('attempt budgets start afresh: a restarted coordinator retries as if the call were new', () => {
      const s = stepOf(
        journal(
          ...booked,
          dispatched('hotel', 'compensation', 1),
          completed('hotel', 'compensation', 'retryable', { attempt: 1, status: 500 }),
          dispatched('hotel', 'compensation', 2),
          completed('hotel', 'compensation', 'retryable', { attempt: 2, status: 500 }),
          dispatched('hotel', 'compensation', 3),
        ),
        'hotel',
      );
      expect(s.compensation.attempts).toBe(0);
      expect(s.compensation.status).toBe('pending');
    });
  });

  it('keeps the first failure: failed step and error of the first saga.compensating', () => {
    const rebuilt = rebuild(
      journal(
        started,
        {
          type: 'saga.compensating',
          failedStep: 'car',
          error: { code: 'SAGAMESH_ERR_STEP_REJECTED', message: 'car' },
        },
        { type: 'saga.recovered', reason: 'restart', by: 'a' },
        { type: 'saga.compensating', error: { code: 'SAGAMESH_ERR_SAGA_INTERRUPTED', message: 'restart' } },
      ),
    );
    expect(rebuilt?.failedStep).toBe('car');
    expect(rebuilt?.error).toEqual({ code: 'SAGAMESH_ERR_STEP_REJECTED', message: 'car' });
  });

  it('reports a finished saga with its final status', () => {
    const rebuilt = rebuild(
      journal(
        started,
        dispatched('hotel', 'action'),
        completed('hotel', 'action', 'success', { response: booking }),
        { type: 'saga.finished', status: 'succeeded' },
      ),
    );
    expect(rebuilt?.finished).toBe('succeeded');
  });

  it('rebuilds several steps independently, in record order', () => {
    const rebuilt = rebuild(
      journal(
        started,
        dispatched('hotel', 'action'),
        dispatched('flight', 'action'),
        dispatched('car', 'action'),
        completed('car', 'action', 'success', { response: booking }),
        completed('hotel', 'action', 'rejected', { status: 409 }),
      ),
    );
    expect(Object.keys(rebuilt?.steps ?? {}).sort()).toEqual(['car', 'flight', 'hotel']);
    expect(rebuilt?.steps['hotel']).toMatchObject({ applied: 'no', inFlight: false });
    expect(rebuilt?.steps['flight']).toMatchObject({ inFlight: true });
    expect(rebuilt?.steps['car']).toMatchObject({ status: 'succeeded' });
    expect(Object.values(rebuilt?.steps ?? {}).map((s) => needsCompensation(s))).toEqual([false, true, true]);
  });
});
