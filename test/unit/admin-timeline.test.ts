import { sagaView } from '../../src/admin/timeline';
import type { SagaEvent, SagaRecord } from '../../src/runtime/journal';

/** The timeline is derived from saga log records alone: dispatch/completion pairs become bars. */

function records(events: [at: number, event: SagaEvent][]): SagaRecord[] {
  return events.map(([at, event], i) => ({ ...event, sagaId: 's', seq: i + 1, at }));
}
const started: SagaEvent = {
  type: 'saga.started',
  definition: 'trip',
  version: 'v1',
  request: { method: 'POST', path: '/trips', query: {}, headers: {}, body: {} },
};
const dispatched = (
  step: string,
  kind: 'action' | 'compensation',
  attempt: number,
  replay = false,
): SagaEvent => ({
  type: 'call.dispatched',
  step,
  kind,
  attempt,
  replay,
});
const completed = (
  step: string,
  kind: 'action' | 'compensation',
  attempt: number,
  outcome: string,
  status?: number,
  replay = false,
): SagaEvent => ({
  type: 'call.completed',
  step,
  kind,
  attempt,
  replay,
  outcome,
  ...(status ? { status } : {}),
});

describe('sagaView', () => {
  it('pairs dispatches with completions, and says what a compensated saga went through', () => {
    const view = sagaView(
      records([
        [1000, started],
        [1001, dispatched('hotel', 'action', 1)],
        [1002, dispatched('car', 'action', 1)],
        [1010, completed('hotel', 'action', 1, 'success', 201)],
        [1020, completed('car', 'action', 1, 'rejected', 409)],
        [
          1021,
          {
            type: 'saga.compensating',
            failedStep: 'car',
            error: { code: 'SAGAMESH_ERR_STEP_REJECTED', message: 'car' },
          },
        ],
        [1022, dispatched('hotel', 'compensation', 1)],
        [1030, completed('hotel', 'compensation', 1, 'success', 200)],
        [1031, { type: 'saga.finished', status: 'compensated' }],
      ]),
      5000,
    );
    expect(view).toMatchObject({
      sagaId: 's',
      definition: 'trip',
      version: 'v1',
      status: 'compensated',
      startedAt: 1000,
      endedAt: 1031,
      finished: true,
      failedStep: 'car',
      request: { method: 'POST', path: '/trips' },
    });
    expect(view?.bars).toEqual([
      expect.objectContaining({
        step: 'hotel',
        lane: 'action',
        start: 1001,
        end: 1010,
        outcome: 'success',
        httpStatus: 201,
      }),
      expect.objectContaining({
        step: 'car',
        lane: 'action',
        start: 1002,
        end: 1020,
        outcome: 'rejected',
        httpStatus: 409,
      }),
      expect.objectContaining({
        step: 'hotel',
        lane: 'compensation',
        start: 1022,
        end: 1030,
        outcome: 'success',
      }),
    ]);
    expect(view?.marks).toEqual([
      { at: 1021, label: 'compensating' },
      { at: 1031, label: 'compensated' },
    ]);
  });

  it('ends an unanswered call where the saga moved on: the next attempt, or compensation', () => {
    const view = sagaView(
      records([
        [0, started],
        [10, dispatched('flight', 'action', 1)],
        [1060, dispatched('flight', 'action', 2)],
        [
          2100,
          { type: 'saga.compensating', error: { code: 'SAGAMESH_ERR_STEP_TIMEOUT', message: 'flight' } },
        ],
        [2101, dispatched('flight', 'action', 1, true)],
        [2300, completed('flight', 'action', 1, 'success', 201, true)],
      ]),
      3000,
    );
    expect(view?.bars).toEqual([
      expect.objectContaining({ attempt: 1, lane: 'action', start: 10, end: 1060, outcome: 'no answer' }),
      expect.objectContaining({ attempt: 2, lane: 'action', start: 1060, end: 2100, outcome: 'no answer' }),
      expect.objectContaining({
        attempt: 1,
        replay: true,
        lane: 'compensation',
        start: 2101,
        end: 2300,
        outcome: 'success',
      }),
    ]);
    // still running: it ends now
    expect(view).toMatchObject({ status: 'compensating', finished: false, endedAt: 3000 });
  });

  it('keeps a call on its way when another step failed open until its answer, which comes after', () => {
    // Issue 16: the compensation waits for the flight's answer instead of aborting and replaying.
    const view = sagaView(
      records([
        [0, started],
        [1, dispatched('flight', 'action', 1)],
        [2, dispatched('car', 'action', 1)],
        [5, completed('car', 'action', 1, 'rejected', 409)],
        [
          6,
          {
            type: 'saga.compensating',
            failedStep: 'car',
            error: { code: 'SAGAMESH_ERR_STEP_REJECTED', message: 'car' },
          },
        ],
        [150, completed('flight', 'action', 1, 'success', 201)],
        [151, dispatched('flight', 'compensation', 1)],
        [160, completed('flight', 'compensation', 1, 'success', 200)],
        [161, { type: 'saga.finished', status: 'compensated' }],
      ]),
      1000,
    );
    expect(view?.bars.filter((b) => b.step === 'flight')).toEqual([
      expect.objectContaining({ lane: 'action', start: 1, end: 150, outcome: 'success', httpStatus: 201 }),
      expect.objectContaining({ lane: 'compensation', start: 151, end: 160, outcome: 'success' }),
    ]);
  });

  it('ends a call on its way when its replay starts (a saga logged before calls were waited for)', () => {
    const view = sagaView(
      records([
        [0, started],
        [1, dispatched('flight', 'action', 1)],
        [
          5,
          {
            type: 'saga.compensating',
            failedStep: 'car',
            error: { code: 'SAGAMESH_ERR_STEP_REJECTED', message: 'car' },
          },
        ],
        [6, dispatched('flight', 'action', 1, true)],
        [20, completed('flight', 'action', 1, 'success', 201, true)],
      ]),
      1000,
    );
    expect(view?.bars).toEqual([
      expect.objectContaining({ lane: 'action', start: 1, end: 6, outcome: 'no answer' }),
      expect.objectContaining({ lane: 'compensation', replay: true, start: 6, end: 20, outcome: 'success' }),
    ]);
  });

  it('links a nested saga to its parent step and a step to the child saga that answered it', () => {
    const child = sagaView(
      records([[1000, { ...started, parent: { sagaId: 'agency-1', step: 'trip' }, deadlineMs: 2000 }]]),
      1500,
    );
    expect(child).toMatchObject({
      parent: { sagaId: 'agency-1', step: 'trip' },
      deadlineMs: 2000,
      children: [],
    });
    const parent = sagaView(
      records([
        [1000, started],
        [1001, dispatched('trip', 'action', 1)],
        [
          1050,
          {
            ...completed('trip', 'action', 1, 'success', 201),
            response: { status: 201, headers: { 'x-sagamesh-saga-id': 'trip-7' }, body: {} },
          } as SagaEvent,
        ],
        [1051, dispatched('pay', 'action', 1)],
        [
          1060,
          {
            ...completed('pay', 'action', 1, 'success', 201),
            response: { status: 201, headers: {}, body: {} },
          } as SagaEvent,
        ],
      ]),
      1100,
    );
    expect(parent?.children).toEqual([{ step: 'trip', sagaId: 'trip-7' }]);
    expect(parent).not.toHaveProperty('parent');
  });

  it('shows a call in flight while the saga runs, and nothing for an unknown saga', () => {
    const view = sagaView(
      records([
        [0, started],
        [5, dispatched('hotel', 'action', 1)],
      ]),
      40,
    );
    expect(view?.bars).toEqual([expect.objectContaining({ start: 5, end: 40, outcome: 'in flight' })]);
    expect(sagaView([], 0)).toBeUndefined();
  });
});
