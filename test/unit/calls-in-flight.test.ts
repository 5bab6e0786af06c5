import { CallsInFlight } from '../../src/engine/calls-in-flight';
import type { CallResult } from '../../src/runtime/machine';
import type { CallInput, CallOutput } from '../../src/runtime/saga-state';

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

/** A call function whose answers the test releases one by one. */
function pending() {
  const sent: {
    input: CallInput;
    signal: AbortSignal;
    answer: (o: CallOutput) => void;
    fail: (e: Error) => void;
  }[] = [];
  const send = (i: CallInput, signal: AbortSignal): Promise<CallOutput> =>
    new Promise<CallOutput>((answer, fail) => sent.push({ input: i, signal, answer, fail }));
  return { sent, send };
}
const settle = () => new Promise((r) => setImmediate(r));

describe('CallsInFlight (the machine’s call port)', () => {
  it('delivers an answer; a cancelled call is aborted and its late answer dropped', async () => {
    const { sent, send } = pending();
    const calls = new CallsInFlight(send);
    const saga = {};
    const got: [string, CallResult][] = [];
    calls.start(saga, 'action.hotel', input('hotel'), (r) => got.push(['hotel', r]));
    calls.start(saga, 'action.car', input('car'), (r) => got.push(['car', r]));
    calls.cancel(saga, 'action.car');
    expect(sent[1]?.signal.aborted).toBe(true);
    expect(sent[0]?.signal.aborted).toBe(false);
    sent[1]?.answer(ok);
    sent[0]?.answer(ok);
    await settle();
    expect(got).toEqual([['hotel', { output: ok }]]);
  });

  it('a call that throws or rejects is delivered as an error (in doubt)', async () => {
    const calls = new CallsInFlight(() => {
      throw new Error('boom');
    });
    const got: CallResult[] = [];
    calls.start({}, 'action.hotel', input('hotel'), (r) => got.push(r));
    await settle();
    expect(got).toHaveLength(1);
    expect((got[0] as { error: Error }).error.message).toBe('boom');
  });

  it('abortAll stops every call of one saga and no other saga’s', async () => {
    const { sent, send } = pending();
    const calls = new CallsInFlight(send);
    const a = {};
    const b = {};
    const got: string[] = [];
    calls.start(a, 'action.hotel', input('hotel'), () => got.push('a.hotel'));
    calls.start(a, 'action.car', input('car'), () => got.push('a.car'));
    calls.start(b, 'action.hotel', input('hotel'), () => got.push('b.hotel'));
    calls.abortAll(a);
    expect(sent.map((s) => s.signal.aborted)).toEqual([true, true, false]);
    for (const s of sent) s.answer(ok);
    await settle();
    expect(got).toEqual(['b.hotel']);
  });

  it('a retry under the same call id is not cancelled by the answer of the one before', async () => {
    const { sent, send } = pending();
    const calls = new CallsInFlight(send);
    const saga = {};
    const got: number[] = [];
    calls.start(saga, 'action.hotel', input('hotel'), () => got.push(1));
    calls.cancel(saga, 'action.hotel'); // timed out
    calls.start(saga, 'action.hotel', input('hotel'), () => got.push(2));
    sent[0]?.answer(ok); // the first attempt's answer arrives late
    await settle();
    calls.cancel(saga, 'action.hotel'); // the second attempt is still in flight: this aborts it
    expect(sent[1]?.signal.aborted).toBe(true);
    expect(got).toEqual([]);
  });
});
