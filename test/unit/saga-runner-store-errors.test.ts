import pino from 'pino';
import { SimulatedClock } from 'xstate';
import { ERRORS, SagameshError } from '../../src/errors';
import type { HttpCaller, StepHttpRequest } from '../../src/engine/http-caller';
import type { StepResponse } from '../../src/definition/definition';
import type { SagaResult } from '../../src/engine/runner';
import { SagaRunner } from '../../src/engine/runner';
import { MemorySagaLog } from '../../src/saga-log/memory';
import type { FinishedEvent, SagaEvent, SagaRecord, StoredAnswer } from '../../src/runtime/journal';
import { definition, step } from '../helpers/fake-definition';

/**
 * A saga whose record cannot be written is not left half-done: the runner stops it at once (the
 * log no longer says what it did), answers it as still running, and resumes it from the log, as
 * recovery after a crash does, once the store writes again. No restart needed.
 */

/** The memory log, with a switch that makes chosen records fail as an unavailable store's do. */
class BrokenLog extends MemorySagaLog {
  failing: ((event: SagaEvent) => boolean) | undefined;
  error = () => new SagameshError(ERRORS.STORE_UNAVAILABLE, 'saga log: disk I/O error');
  override append(sagaId: string, event: SagaEvent): Promise<SagaRecord> {
    if (this.failing?.(event)) return Promise.reject(this.error());
    return super.append(sagaId, event);
  }
  override finish(sagaId: string, event: FinishedEvent, answer?: StoredAnswer): Promise<SagaRecord> {
    if (this.failing?.(event)) return Promise.reject(this.error());
    return super.finish(sagaId, event, answer);
  }
}

function setup() {
  const clock = new SimulatedClock();
  const log = new BrokenLog(clock);
  const sent: StepHttpRequest[] = [];
  const http: HttpCaller = {
    call: (r) => {
      sent.push(r);
      const answer: StepResponse =
        r.method === 'POST'
          ? { status: 201, headers: {}, body: { id: `${r.origin}-1` } }
          : { status: 200, headers: {}, body: {} };
      return Promise.resolve(answer);
    },
    close: () => Promise.resolve(),
  };
  const def = definition([step('hotel'), step('car', ['hotel'])]);
  let recovered: (result: SagaResult) => void = () => undefined;
  const resumedEnd = new Promise<SagaResult>((resolve) => (recovered = resolve));
  const runner = new SagaRunner({
    log,
    http,
    clock,
    logger: pino({ level: 'silent' }),
    random: () => 0.5,
    newId: () => 'saga-1',
    resolveDefinition: (version) => Promise.resolve(version === def.version ? def : undefined),
    onRecovered: (result) => recovered(result),
  });
  return { clock, log, sent, def, runner, resumedEnd };
}

const request = { method: 'POST', path: '/test', query: {}, headers: {}, body: { a: 1 } };
const types = (records: readonly SagaRecord[]) =>
  records.map((r) => (r.type.startsWith('call.') && 'step' in r ? `${r.type}:${r.kind}:${r.step}` : r.type));
/** Lets promise callbacks and I/O callbacks run (the runner's work between two clock ticks). */
const settleIo = () => new Promise((r) => setImmediate(r));

describe('SagaRunner when the saga log cannot write', () => {
  it('stops the saga at the failed record, answers it as running, and compensates it from the log once the store is back', async () => {
    const { clock, log, sent, def, runner, resumedEnd } = setup();
    log.failing = (e) => e.type === 'call.dispatched' && e.step === 'car';
    const execution = await runner.start(def, request);

    const result = await execution.settled;
    expect(result).toMatchObject({
      status: 'abandoned',
      error: { code: 'SAGAMESH_ERR_STORE_UNAVAILABLE' },
    });
    expect(runner.isRunning('saga-1')).toBe(false);
    expect(sent.map((r) => `${r.method} ${r.origin}`)).toEqual(['POST http://hotel']);
    expect((await log.summary('saga-1'))?.status).toBe('running');

    // Still broken at the first re-drive (≤ 1 s): it waits for the next one.
    log.failing = () => true;
    clock.increment(1000);
    await settleIo();
    expect(runner.isRunning('saga-1')).toBe(false);
    log.failing = undefined;
    clock.increment(2000);

    const resumed = await resumedEnd;
    expect(resumed.status).toBe('compensated');
    expect(types(await log.history('saga-1'))).toEqual([
      'saga.started',
      'call.dispatched:action:hotel',
      'call.completed:action:hotel',
      'saga.recovered',
      'saga.compensating',
      'call.dispatched:compensation:hotel',
      'call.completed:compensation:hotel',
      'saga.finished',
    ]);
    expect((await log.history('saga-1')).find((r) => r.type === 'saga.recovered')).toMatchObject({
      reason: 'store-error',
    });
    // The car was never sent; the hotel was undone from its recorded response.
    expect(sent.map((r) => `${r.method} ${r.origin}${r.path}`)).toEqual([
      'POST http://hotel/bookings',
      'DELETE http://hotel/bookings/http://hotel-1',
    ]);
  });

  it('answers a saga whose end could not be recorded as running, and records its end from the log', async () => {
    const { clock, log, def, runner, resumedEnd } = setup();
    log.failing = (e) => e.type === 'saga.finished';
    const execution = await runner.start(def, request);
    expect(await execution.settled).toMatchObject({
      status: 'abandoned',
      error: { code: 'SAGAMESH_ERR_STORE_UNAVAILABLE' },
    });
    expect(runner.inFlight).toBe(0);

    log.failing = undefined;
    clock.increment(1000);
    // Every step had succeeded: recovery completes it; nothing is undone.
    expect((await resumedEnd).status).toBe('succeeded');
    expect((await log.summary('saga-1'))?.status).toBe('succeeded');
    expect(types(await log.history('saga-1')).slice(-2)).toEqual(['saga.recovered', 'saga.finished']);
  });

  it('leaves a saga whose lease was lost to its new owner: no re-drive', async () => {
    const { clock, log, sent, def, runner } = setup();
    log.failing = (e) => e.type === 'call.dispatched' && e.step === 'car';
    log.error = () => new SagameshError(ERRORS.LEASE_LOST, 'saga saga-1');
    const execution = await runner.start(def, request);
    expect((await execution.settled).status).toBe('abandoned');
    log.failing = undefined;
    clock.increment(60_000);
    await settleIo();
    expect(runner.isRunning('saga-1')).toBe(false);
    expect(types(await log.history('saga-1'))).not.toContain('saga.recovered');
    expect(sent).toHaveLength(1);
  });
});
