import type { Clock } from '../../src/clock';
import { MemorySagaLog } from '../../src/saga-log/memory';
import type { FinishedEvent, SagaEvent, SagaStatus, StartedEvent } from '../../src/runtime/journal';
import { countByStatus } from '../helpers/saga-log-counts';

/**
 * The in-memory log: a finished saga's journal is kept only for the most recent finished sagas,
 * its summary, status and stored answer until retention; stuck sagas keep everything.
 */

class FakeClock implements Clock {
  constructor(public t = 1_000_000) {}
  now(): number {
    return this.t;
  }
  setTimeout(fn: (...args: unknown[]) => void, ms: number): unknown {
    return setTimeout(fn, ms);
  }
  clearTimeout(id: unknown): void {
    clearTimeout(id as NodeJS.Timeout);
  }
}

const started: StartedEvent = {
  type: 'saga.started',
  definition: 'book-trip',
  version: 'v1',
  request: { method: 'POST', path: '/trips', query: {}, headers: {}, body: { guest: 'Ada' } },
};
const dispatched: SagaEvent = {
  type: 'call.dispatched',
  step: 'hotel',
  kind: 'action',
  attempt: 1,
  replay: false,
};
const compensating: SagaEvent = {
  type: 'saga.compensating',
  failedStep: 'hotel',
  error: { code: 'SAGAMESH_ERR_STEP_REJECTED', message: 'hotel' },
};
const finished = (status: SagaStatus): FinishedEvent => ({ type: 'saga.finished', status });

async function sagaTo(log: MemorySagaLog, id: string, status: SagaStatus): Promise<void> {
  await log.append(id, started);
  await log.append(id, dispatched);
  if (status === 'running') return;
  if (status === 'compensated' || status === 'stuck') await log.append(id, compensating);
  await log.append(id, finished(status));
}

describe('MemorySagaLog', () => {
  let clock: FakeClock;
  beforeEach(() => {
    clock = new FakeClock();
  });

  it('keeps the journal of running sagas and of the most recent finished ones only', async () => {
    const log = new MemorySagaLog(clock, { finishedJournals: 2 });
    await sagaTo(log, 'a', 'succeeded');
    await sagaTo(log, 'b', 'compensated');
    await sagaTo(log, 'r', 'running');
    expect(await log.history('a')).toHaveLength(3);
    await sagaTo(log, 'c', 'compensated');
    // a was the oldest finished saga: its journal went, its summary stays.
    expect(await log.history('a')).toEqual([]);
    expect(await log.summary('a')).toMatchObject({
      sagaId: 'a',
      status: 'succeeded',
      definition: 'book-trip',
    });
    expect((await log.history('b')).map((r) => r.type)).toEqual([
      'saga.started',
      'call.dispatched',
      'saga.compensating',
      'saga.finished',
    ]);
    expect(await log.history('c')).toHaveLength(4);
    expect(await log.history('r')).toHaveLength(2);
    expect((await log.list()).map((s) => s.sagaId).sort()).toEqual(['a', 'b', 'c', 'r']);
    expect(await countByStatus(log)).toEqual({
      running: 1,
      succeeded: 1,
      compensating: 0,
      compensated: 2,
      stuck: 0,
    });
  });

  it('keeps the journal of stuck sagas for an operator retry, and never prunes them', async () => {
    const log = new MemorySagaLog(clock, { finishedJournals: 0 });
    await sagaTo(log, 's', 'stuck');
    await sagaTo(log, 'ok', 'succeeded');
    expect(await log.history('ok')).toEqual([]);
    expect(await log.history('s')).toHaveLength(4);
    // The retry resumes it: it runs again and, once finished, is an ordinary finished saga.
    const recovered = await log.append('s', { type: 'saga.recovered', reason: 'retry', by: 'here' });
    expect(recovered.seq).toBe(5);
    await log.append('s', finished('compensated'));
    expect(await log.history('s')).toEqual([]);
    expect(await log.summary('s')).toMatchObject({ status: 'compensated' });

    await sagaTo(log, 's2', 'stuck');
    clock.t += 10_000;
    expect(await log.prune({ sagasFinishedBefore: clock.t, keysCreatedBefore: 0 })).toEqual({
      sagas: 2,
      keys: 0,
    });
    expect(await log.summary('s2')).toMatchObject({ status: 'stuck' });
    expect(await log.summary('ok')).toBeUndefined();
  });

  it('keeps the stored answer of an Idempotency-Key after the journal is dropped', async () => {
    const log = new MemorySagaLog(clock, { finishedJournals: 0 });
    const key = { definition: 'book-trip', key: 'k1', requestHash: 'h', expiredBefore: 0 };
    expect(await log.start('a', started, key)).toMatchObject({ started: { sagaId: 'a', seq: 1 } });
    await log.append('a', dispatched);
    await log.finish('a', finished('succeeded'), { status: 201, headers: {}, body: '{}' });
    expect(await log.history('a')).toEqual([]);
    expect(await log.start('other', started, key)).toEqual({
      held: { sagaId: 'a', requestHash: 'h', answer: { status: 201, headers: {}, body: '{}' } },
    });
    expect(await log.summary('other')).toBeUndefined();
  });

  it('numbers records on after the journal was dropped, and prunes finished sagas at retention', async () => {
    const log = new MemorySagaLog(clock, { finishedJournals: 0 });
    await sagaTo(log, 'a', 'succeeded');
    clock.t += 1000;
    expect(await log.prune({ sagasFinishedBefore: clock.t - 2000, keysCreatedBefore: 0 })).toEqual({
      sagas: 0,
      keys: 0,
    });
    expect(await log.prune({ sagasFinishedBefore: clock.t, keysCreatedBefore: 0 })).toEqual({
      sagas: 1,
      keys: 0,
    });
    expect(await log.summary('a')).toBeUndefined();
    expect(await log.list()).toEqual([]);
  });
});
