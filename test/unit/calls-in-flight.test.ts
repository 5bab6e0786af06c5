import { SimulatedClock } from 'xstate';
import { CallsInFlight } from '../../src/engine/calls-in-flight';
import type { CallingSaga } from '../../src/runtime/machine';
import type { CallInput, CallOutput, SagaMachineEvent } from '../../src/runtime/saga-state';
import { CallCancellation } from '../../src/engine/http-caller';

const input = (step: string): CallInput => ({
  sagaId: 's1',
  step,
  kind: 'action',
  attempt: 1,
  replay: false,
  scope: {
    request: { method: 'POST', path: '/t', query: {}, headers: {}, body: {} },
    steps: {},
    saga: { id: 's1', name: 't' },
  },
});
const ok: CallOutput = {
  outcome: 'success',
  applied: 'yes',
  response: { status: 201, headers: {}, body: {} },
};

/** An event as the tests compare it: `call.action.hotel: success`, `timeout.action.hotel`. */
const said = (e: SagaMachineEvent): string =>
  'output' in e ? `${e.type}: ${e.output?.outcome}` : 'error' in e ? `${e.type}: error` : e.type;

/** A port whose calls the test answers one by one, on a simulated clock, and what its sagas got. */
function port() {
  const sent: { cancellation: CallCancellation; answer: (o: CallOutput) => void }[] = [];
  const clock = new SimulatedClock();
  const calls = new CallsInFlight(
    (_i: CallInput, cancellation: CallCancellation) =>
      new Promise<CallOutput>((answer) => sent.push({ cancellation, answer })),
    clock,
  );
  const got: string[] = [];
  const saga = (): CallingSaga => ({ send: (e: SagaMachineEvent) => got.push(said(e)) });
  const start = (s: CallingSaga, id: string, timeoutMs = 1000): void =>
    calls.start(s, id, input(id), timeoutMs);
  return { sent, clock, calls, got, saga, start };
}
const settle = () => new Promise((r) => setImmediate(r));

describe('CallsInFlight (the machine’s call port)', () => {
  it('sends the answer to its saga; a cancelled call is aborted and its late answer dropped', async () => {
    const { sent, calls, got, saga, start } = port();
    const s = saga();
    start(s, 'action.hotel');
    start(s, 'action.car');
    calls.cancel(s, 'action.car');
    expect(sent.map((c) => c.cancellation.cancelled)).toEqual([false, true]);
    sent[1]?.answer(ok);
    sent[0]?.answer(ok);
    await settle();
    expect(got).toEqual(['call.action.hotel: success']);
  });

  it('a call that throws or rejects comes back as an error (in doubt)', async () => {
    const calls = new CallsInFlight(() => {
      throw new Error('boom');
    }, new SimulatedClock());
    const got: SagaMachineEvent[] = [];
    calls.start({ send: (e) => got.push(e) }, 'action.hotel', input('hotel'), 1000);
    await settle();
    expect(got).toEqual([{ type: 'call.action.hotel', error: new Error('boom') }]);
  });

  it('says timeout once the timeout passes first, and not after an answer or a cancel', async () => {
    const { sent, clock, calls, got, saga, start } = port();
    const s = saga();
    start(s, 'action.hotel', 1000);
    start(s, 'action.flight', 1000);
    start(s, 'action.car', 1000);
    sent[1]?.answer(ok);
    await settle();
    calls.cancel(s, 'action.car');
    clock.increment(999);
    expect(got).toEqual(['call.action.flight: success']);
    clock.increment(1);
    expect(got).toEqual(['call.action.flight: success', 'timeout.action.hotel']);
    clock.increment(10_000);
    expect(got).toHaveLength(2);
  });

  it('abortAll stops every call and timer of one saga and no other saga’s', async () => {
    const { sent, clock, calls, got, saga, start } = port();
    const a = saga();
    const b = saga();
    start(a, 'action.hotel');
    start(a, 'action.car');
    start(b, 'action.flight');
    calls.abortAll(a);
    expect(sent.map((c) => c.cancellation.cancelled)).toEqual([true, true, false]);
    clock.increment(1000);
    for (const c of sent) c.answer(ok);
    await settle();
    // b's call timed out, and its answer still comes: only the machine's cancel (leaving the
    // state on its timeout) stops a call.
    expect(got).toEqual(['timeout.action.flight', 'call.action.flight: success']);
  });

  it('a retry under the same call id is not touched by the attempt before it', async () => {
    const { sent, clock, calls, got, saga, start } = port();
    const s = saga();
    start(s, 'action.hotel', 1000);
    calls.cancel(s, 'action.hotel'); // the machine left the state on the timeout
    clock.increment(500);
    start(s, 'action.hotel', 1000); // the retry, after its backoff
    sent[0]?.answer(ok); // the first attempt's answer arrives late: dropped
    await settle();
    clock.increment(600); // the first attempt's timer would have fired here
    expect(got).toEqual([]);
    calls.cancel(s, 'action.hotel'); // still the retry's entry: this aborts it
    expect(sent[1]?.cancellation.cancelled).toBe(true);
  });
});

describe('CallsInFlight timeouts: one timer per saga', () => {
  /** A simulated clock that counts the timers set and not yet fired or cleared. */
  function countingClock() {
    const clock = new SimulatedClock();
    const live = new Set<unknown>();
    return {
      clock,
      live: () => live.size,
      port: {
        now: () => clock.now(),
        setTimeout: (fn: () => void, ms: number) => {
          const id: unknown = clock.setTimeout(() => {
            live.delete(id);
            fn();
          }, ms);
          live.add(id);
          return id;
        },
        clearTimeout: (id: unknown) => {
          live.delete(id);
          clock.clearTimeout(id as number);
        },
      },
    };
  }

  it('times each call out at its own timeout with one timer for the saga, and none once it has no call', async () => {
    const { clock, live, port } = countingClock();
    const answers: ((o: CallOutput) => void)[] = [];
    const calls = new CallsInFlight(() => new Promise<CallOutput>((answer) => answers.push(answer)), port);
    const got: string[] = [];
    const saga: CallingSaga = { send: (e) => got.push(said(e)) };
    calls.start(saga, 'action.hotel', input('hotel'), 3000);
    calls.start(saga, 'action.flight', input('flight'), 1000);
    clock.increment(500);
    calls.start(saga, 'action.car', input('car'), 2000); // due at 2500
    expect(live()).toBe(1);
    clock.increment(500);
    expect(got).toEqual(['timeout.action.flight']);
    clock.increment(1499);
    expect(got).toEqual(['timeout.action.flight']);
    clock.increment(1);
    expect(got).toEqual(['timeout.action.flight', 'timeout.action.car']);
    expect(live()).toBe(1); // the hotel's, at 3000
    answers[0]?.(ok); // the hotel answers first
    await settle();
    calls.cancel(saga, 'action.flight');
    calls.cancel(saga, 'action.car');
    expect(got).toEqual(['timeout.action.flight', 'timeout.action.car', 'call.action.hotel: success']);
    expect(live()).toBe(0); // no call left: the timer does not keep the saga
    clock.increment(10_000);
    expect(got).toHaveLength(3);
  });
});

describe('CallCancellation (how a call learns it is no longer wanted)', () => {
  it('runs its one listener once, on the first cancel; a cleared listener does not run', () => {
    const c = new CallCancellation();
    const ran: string[] = [];
    c.onCancel(() => ran.push('first'));
    c.onCancel(() => ran.push('second')); // replaces the first: a call has one caller
    expect(c.cancelled).toBe(false);
    c.cancel();
    c.cancel();
    expect(ran).toEqual(['second']);
    expect(c.cancelled).toBe(true);
    const cleared = new CallCancellation();
    cleared.onCancel(() => ran.push('cleared'));
    cleared.onCancel(undefined);
    cleared.cancel();
    expect(ran).toEqual(['second']);
  });
});
