import { SimulatedClock } from 'xstate';
import pino from 'pino';
import type { HttpCaller, StepHttpRequest } from '../../src/engine/http-caller';
import type { StepResponse } from '../../src/definition/definition';
import { SagaRunner } from '../../src/engine/runner';
import { rebuild } from '../../src/runtime/recovery';
import { MemorySagaLog } from '../../src/saga-log/memory';
import type { StoredAnswer } from '../../src/runtime/journal';
import { definition, step } from '../helpers/fake-definition';

/**
 * Undo of a saga that succeeded (`spec.undo`, docs/nested-sagas.md), on the runner with the
 * in-memory log and a fake HTTP caller: what is recorded, what is sent, and in which order.
 */
function setup(answer: (r: StepHttpRequest) => StepResponse = ok) {
  const clock = new SimulatedClock();
  const log = new MemorySagaLog(clock);
  const sent: StepHttpRequest[] = [];
  const http: HttpCaller = {
    call: (r) => {
      sent.push(r);
      return Promise.resolve(answer(r));
    },
    close: () => Promise.resolve(),
  };
  // flight after hotel, car after flight: undone car, flight, hotel.
  const def = definition([step('hotel'), step('flight', ['hotel']), step('car', ['flight'])]);
  const other = definition([step('x')], { name: 'other' });
  let n = 0;
  const kept: StoredAnswer = { status: 201, headers: {}, body: '{"ok":true}' };
  const runner = new SagaRunner({
    log,
    http,
    clock,
    logger: pino({ level: 'silent' }),
    newId: () => `saga-${++n}`,
    resolveDefinition: (version) => Promise.resolve(version === def.version ? def : undefined),
    answer: () => Promise.resolve(kept),
  });
  return { log, sent, def, other, runner, clock };
}

function ok(r: StepHttpRequest): StepResponse {
  return r.method === 'POST'
    ? { status: 201, headers: {}, body: { id: `${r.origin.replace('http://', '')}-1` } }
    : { status: 200, headers: {}, body: {} };
}

const request = { method: 'POST', path: '/test', query: {}, headers: {}, body: {} };
const undos = (sent: StepHttpRequest[]) =>
  sent.filter((r) => r.method === 'DELETE').map((r) => r.origin.replace('http://', ''));

describe('SagaRunner.undo', () => {
  it('undoes a saga that succeeded in reverse dependency order, once, and answers the same again', async () => {
    const { log, sent, def, runner } = setup();
    const execution = await runner.start(def, request, {
      key: { definition: def.name, key: 'k1', requestHash: 'h', expiredBefore: 0 },
    });
    if ('held' in execution) throw new Error('key held');
    expect((await execution.settled).status).toBe('succeeded');

    const outcome = await runner.undo(def, execution.sagaId);
    expect(outcome.kind).toBe('undoing');
    if (outcome.kind !== 'undoing' || !outcome.execution) throw new Error('not started');
    expect((await outcome.execution.settled).status).toBe('compensated');
    expect(undos(sent)).toEqual(['car', 'flight', 'hotel']);
    expect(sent.filter((r) => r.method === 'DELETE').map((r) => r.headers['idempotency-key'])).toEqual([
      'saga-1:car:compensation',
      'saga-1:flight:compensation',
      'saga-1:hotel:compensation',
    ]);

    const history = await log.history(execution.sagaId);
    expect(history.filter((r) => r.type === 'saga.compensating')).toEqual([
      expect.objectContaining({
        undo: true,
        error: expect.objectContaining({ code: 'SAGAMESH_ERR_SAGA_UNDONE' }),
      }),
    ]);
    expect(
      history.filter((r) => r.type === 'saga.finished').map((r) => r.type === 'saga.finished' && r.status),
    ).toEqual(['succeeded', 'compensated']);
    expect((await log.summary(execution.sagaId))?.status).toBe('compensated');
    expect(rebuild(history)).toMatchObject({ undo: true, finished: 'compensated' });

    // Repeated: the same outcome, nothing sent again.
    const before = sent.length;
    expect(await runner.undo(def, execution.sagaId)).toEqual({ kind: 'undone', status: 'compensated' });
    expect(sent).toHaveLength(before);
    // The answer the saga's success gave its key stays: the undo's end replaces no answer.
    const start = await log.start(
      'saga-x',
      { type: 'saga.started', definition: def.name, version: def.version, request },
      {
        definition: def.name,
        key: 'k1',
        requestHash: 'h',
        expiredBefore: 0,
      },
    );
    expect(start).toEqual({
      held: {
        sagaId: execution.sagaId,
        requestHash: 'h',
        answer: { status: 201, headers: {}, body: '{"ok":true}' },
      },
    });
  });

  it('starts one undo for concurrent requests', async () => {
    const { sent, def, runner } = setup();
    const execution = await runner.start(def, request);
    await execution.settled;
    const [a, b] = await Promise.all([
      runner.undo(def, execution.sagaId),
      runner.undo(def, execution.sagaId),
    ]);
    expect(a).toBe(b);
    if (a.kind === 'undoing') await a.execution?.settled;
    expect(undos(sent)).toEqual(['car', 'flight', 'hotel']);
  });

  it('finds no saga for an unknown id, an id of another definition, or an id no saga could have', async () => {
    const { def, other, runner } = setup();
    const execution = await runner.start(def, request);
    await execution.settled;
    expect(await runner.undo(def, 'saga-404')).toEqual({ kind: 'not-found' });
    expect(await runner.undo(other, execution.sagaId)).toEqual({ kind: 'not-found' });
    expect(await runner.undo(def, 'a b')).toEqual({ kind: 'not-found' });
  });

  it('refuses a saga that failed and was compensated, and one still running', async () => {
    const { def, runner } = setup((r) =>
      r.origin === 'http://car' && r.method === 'POST' ? { status: 409, headers: {}, body: {} } : ok(r),
    );
    const failed = await runner.start(def, request);
    expect((await failed.settled).status).toBe('compensated');
    expect(await runner.undo(def, failed.sagaId)).toEqual({
      kind: 'not-undoable',
      status: 'compensated',
      reason: 'it ended compensated, not succeeded',
    });

    const { def: def2, runner: runner2 } = setup(() => ({ status: 201, headers: {}, body: { id: 'x' } }));
    const pending = runner2.start(def2, request);
    const running = await pending;
    // Started, its first call not answered yet.
    expect(await runner2.undo(def2, running.sagaId)).toEqual({
      kind: 'not-undoable',
      status: 'running',
      reason: 'it is still running',
    });
    await running.settled;
  });

  it('resumes an undo interrupted by a crash, and never writes the undo an answer', async () => {
    const { log, sent, def, runner, clock } = setup();
    const execution = await runner.start(def, request);
    await execution.settled;
    const started = await runner.undo(def, execution.sagaId);
    if (started.kind !== 'undoing' || !started.execution) throw new Error('not started');
    // A crash: the actor stops with nothing more recorded.
    runner.stopAll();
    const restarted = new SagaRunner({
      log,
      http: { call: (r) => (sent.push(r), Promise.resolve(ok(r))), close: () => Promise.resolve() },
      clock,
      logger: pino({ level: 'silent' }),
      resolveDefinition: () => Promise.resolve(def),
      answer: () => Promise.reject(new Error('an undo keeps no answer')),
    });
    expect((await log.summary(execution.sagaId))?.status).toBe('compensating');
    const resumed = await restarted.resume(execution.sagaId, 'restart');
    expect((await resumed?.settled)?.status).toBe('compensated');
    expect(await restarted.undo(def, execution.sagaId)).toEqual({ kind: 'undone', status: 'compensated' });
    // Each step's undo reached its participant, however often it was sent.
    expect(new Set(undos(sent))).toEqual(new Set(['car', 'flight', 'hotel']));
  });
});
