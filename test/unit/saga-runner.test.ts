import { SimulatedClock } from 'xstate';
import pino from 'pino';
import type { HttpCaller, StepHttpRequest } from '../../src/engine/http-caller';
import type { CallCancellation } from '../../src/engine/http-caller';
import type { StepResponse } from '../../src/definition/definition';
import { SagaRunner } from '../../src/engine/runner';
import { MemorySagaLog } from '../../src/saga-log/memory';
import type { SagaEvent, SagaRecord } from '../../src/runtime/journal';
import { definition, step } from '../helpers/fake-definition';

/**
 * The runner with a fake HTTP caller and the in-memory log: what is recorded, in which order,
 * relative to what is sent.
 */
class FakeHttp implements HttpCaller {
  readonly sent: { request: StepHttpRequest; recordsBefore: number }[] = [];
  constructor(
    private readonly log: MemorySagaLog,
    private readonly answer: (r: StepHttpRequest) => StepResponse,
  ) {}
  async call(request: StepHttpRequest): Promise<StepResponse> {
    const sagaId = request.headers['x-sagamesh-saga-id'] ?? '';
    this.sent.push({ request, recordsBefore: (await this.log.history(sagaId)).length });
    return this.answer(request);
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}

function setup(answer: (r: StepHttpRequest) => StepResponse, caller?: HttpCaller) {
  const clock = new SimulatedClock();
  const log = new MemorySagaLog(clock);
  const http = new FakeHttp(log, answer);
  const def = definition([step('hotel'), step('car', ['hotel'])]);
  let n = 0;
  const runner = new SagaRunner({
    log,
    http: caller ?? http,
    clock,
    logger: pino({ level: 'silent' }),
    newId: () => `saga-${++n}`,
    resolveDefinition: (version) => Promise.resolve(version === def.version ? def : undefined),
  });
  return { log, http, def, runner };
}

const request = { method: 'POST', path: '/test', query: {}, headers: {}, body: { a: 1 } };
const types = (records: readonly SagaRecord[]) =>
  records.map((r) => (r.type.startsWith('call.') && 'step' in r ? `${r.type}:${r.kind}:${r.step}` : r.type));

describe('SagaRunner', () => {
  it('records every dispatch before the request leaves, and the end before it settles', async () => {
    const { log, http, def, runner } = setup((r) =>
      r.method === 'POST'
        ? { status: 201, headers: {}, body: { id: `${r.origin}-1` } }
        : { status: 200, headers: {}, body: {} },
    );
    const execution = await runner.start(def, request, {
      traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01',
    });
    const result = await execution.settled;
    expect(result.status).toBe('succeeded');
    const history = await log.history(execution.sagaId);
    expect(types(history)).toEqual([
      'saga.started',
      'call.dispatched:action:hotel',
      'call.completed:action:hotel',
      'call.dispatched:action:car',
      'call.completed:action:car',
      'saga.finished',
    ]);
    // Each request left only after its dispatch record existed.
    for (const { request: sent, recordsBefore } of http.sent) {
      const dispatchSeq = history.find(
        (r) => r.type === 'call.dispatched' && r.step === sent.headers['x-sagamesh-step'],
      )?.seq;
      expect(recordsBefore).toBeGreaterThanOrEqual(dispatchSeq ?? Infinity);
    }
    expect(http.sent[0]?.request.headers).toMatchObject({
      'x-sagamesh-saga-id': 'saga-1',
      'x-sagamesh-step': 'hotel',
      'x-sagamesh-kind': 'action',
      // the step's timeout: what a participant that is itself a saga may take (nested sagas)
      'x-sagamesh-budget-ms': '1000',
      'idempotency-key': 'saga-1:hotel:action',
      traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01',
    });
    // The response of a successful action is kept for recovery.
    const completed = history.find(
      (r): r is Extract<SagaRecord, { type: 'call.completed' }> => r.type === 'call.completed',
    );
    expect(completed?.response?.body).toEqual({ id: 'http://hotel-1' });
    expect(await log.loadDefinition(def.version)).toMatchObject({ name: def.name });
  });

  it("records a parent saga's link, and its budget when it caps the deadline", async () => {
    const { log, def, runner } = setup(() => ({ status: 201, headers: {}, body: { id: 'x' } }));
    const parent = { sagaId: 'parent-1', step: 'trip' };
    const capped = await runner.start(def, request, { parent, budgetMs: 700 });
    await capped.settled;
    const [started] = await log.history(capped.sagaId);
    expect(started).toMatchObject({ type: 'saga.started', parent, deadlineMs: 700 });
    // A budget past the definition's deadline changes nothing, and is not recorded.
    const loose = await runner.start(def, request, { parent, budgetMs: def.deadlineMs + 1 });
    await loose.settled;
    const [looseStart] = await log.history(loose.sagaId);
    expect(looseStart).toMatchObject({ type: 'saga.started', parent });
    expect(looseStart).not.toHaveProperty('deadlineMs');
  });

  it('does not send a request whose dispatch could not be recorded', async () => {
    const { log, http, def, runner } = setup(() => ({ status: 201, headers: {}, body: { id: 'x' } }));
    const append = log.append.bind(log);
    jest
      .spyOn(log, 'append')
      .mockImplementation((sagaId: string, event: SagaEvent) =>
        event.type === 'call.dispatched' ? Promise.reject(new Error('disk full')) : append(sagaId, event),
      );
    await runner.start(def, request);
    await new Promise((r) => setTimeout(r, 20));
    expect(http.sent).toHaveLength(0);
  });

  it('aborts the calls in flight of a saga it abandons, and records nothing more for it', async () => {
    const cancellations: CallCancellation[] = [];
    const hanging: HttpCaller = {
      call: (r) =>
        new Promise((_, reject) => {
          cancellations.push(r.cancellation);
          r.cancellation.onCancel(() => reject(new Error('aborted')));
        }),
      close: () => Promise.resolve(),
    };
    const { log, def, runner } = setup(() => ({ status: 500, headers: {}, body: {} }), hanging);
    const execution = await runner.start(def, request);
    await new Promise((r) => setTimeout(r, 20));
    expect(cancellations).toHaveLength(1);
    runner.abandon(execution.sagaId, 'lease lost');
    expect(cancellations[0]?.cancelled).toBe(true);
    expect((await execution.settled).status).toBe('abandoned');
    await new Promise((r) => setTimeout(r, 20));
    expect(types(await log.history(execution.sagaId))).toEqual([
      'saga.started',
      'call.dispatched:action:hotel',
    ]);
    expect(runner.isRunning(execution.sagaId)).toBe(false);
  });

  it('resumes an interrupted saga from the journal and compensates what was booked', async () => {
    const { log, http, def, runner } = setup((r) =>
      r.method === 'POST'
        ? { status: 201, headers: {}, body: { id: 'h-1' } }
        : { status: 200, headers: {}, body: {} },
    );
    // A journal as a crashed instance left it: hotel booked, car dispatched, no answer.
    const id = 'crashed';
    await log.append(id, { type: 'saga.started', definition: def.name, version: def.version, request });
    await log.append(id, {
      type: 'call.dispatched',
      step: 'hotel',
      kind: 'action',
      attempt: 1,
      replay: false,
    });
    await log.append(id, {
      type: 'call.completed',
      step: 'hotel',
      kind: 'action',
      attempt: 1,
      replay: false,
      outcome: 'success',
      status: 201,
      response: { status: 201, headers: {}, body: { id: 'h-1' } },
    });
    await log.append(id, { type: 'call.dispatched', step: 'car', kind: 'action', attempt: 1, replay: false });

    const execution = await runner.resume(id, 'restart');
    const result = await execution?.settled;
    expect(result?.status).toBe('compensated');
    expect(result?.error?.code).toBe('SAGAMESH_ERR_SAGA_INTERRUPTED');
    const sent = http.sent.map((s) => `${s.request.method} ${s.request.origin}${s.request.path}`);
    // car was in doubt: replayed (same key) to learn its id, then undone; hotel undone from its stored response.
    expect(sent).toEqual([
      'POST http://car/bookings',
      'DELETE http://car/bookings/h-1',
      'DELETE http://hotel/bookings/h-1',
    ]);
    expect(http.sent[0]?.request.headers['idempotency-key']).toBe('crashed:car:action');
    expect(types(await log.history(id))).toContain('saga.recovered');
    // Nothing to resume once finished.
    expect(await runner.resume(id, 'restart')).toBeUndefined();
  });
});
