import type { SnapshotFrom } from 'xstate';
import { createActor, SimulatedClock } from 'xstate';
import type { StepResponse } from '../../src/definition/definition';
import type { CallInput, CallOutput, SagaInput, SagaMachineEvent } from '../../src/runtime/saga-state';
import type { SagaMachine } from '../../src/runtime/machine';
import { buildSagaMachine } from '../../src/runtime/machine';
import { CallsInFlight } from '../../src/engine/calls-in-flight';
import { MachineHost, SagaDriver } from '../../src/engine/saga-driver';
import type { CallCancellation } from '../../src/engine/http-caller';
import { definition, step } from '../helpers/fake-definition';

type Script = (input: CallInput, n: number) => CallOutput | Promise<CallOutput>;

const okResponse = (id: string, status = 201): StepResponse => ({ status, headers: {}, body: { id } });
const ok = (id: string, status = 201): CallOutput => ({
  outcome: 'success',
  applied: 'yes',
  response: okResponse(id, status),
});
const rejected: CallOutput = {
  outcome: 'rejected',
  applied: 'no',
  error: { code: 'SAGAMESH_ERR_STEP_REJECTED', message: 'no' },
};
const unavailable: CallOutput = {
  outcome: 'retryable',
  applied: 'maybe',
  error: { code: 'SAGAMESH_ERR_STEP_UNAVAILABLE', message: '503' },
};
const never = (): Promise<CallOutput> => new Promise<CallOutput>(() => undefined);

const flush = async (): Promise<void> => {
  for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
};

/** A started saga, as the tests read and feed it. */
interface Started {
  getSnapshot(): SnapshotFrom<SagaMachine>;
  send(event: SagaMachineEvent): void;
}
type Start = (machine: SagaMachine, input: SagaInput, clock: SimulatedClock) => Started;

/** The machine as XState's own actor runs it. */
const onActor: Start = (machine, input, clock) => {
  const actor = createActor(machine, { input, clock });
  actor.start();
  return actor;
};

/** The machine as the runner runs it: a SagaDriver on a shared scope (engine/saga-driver.ts). */
const onDriver: Start = (machine, input, clock) => {
  const driver = new SagaDriver(new MachineHost(machine), input, clock, {
    next: () => undefined,
    error: (err) => {
      throw err;
    },
  });
  driver.start();
  return driver;
};

/** Runs a machine with a simulated clock; the script answers each call. */
function runOn(
  start: Start,
  def: ReturnType<typeof definition>,
  script: Script,
  opts: { deadlineMs?: number } = {},
) {
  const calls: CallInput[] = [];
  const cancellations: CallCancellation[] = [];
  const counts = new Map<string, number>();
  const clock = new SimulatedClock();
  const machine = buildSagaMachine(def, {
    jitter: () => 0.5,
    calls: new CallsInFlight((input, cancellation) => {
      calls.push(input);
      cancellations.push(cancellation);
      const key = `${input.kind}:${input.step}:${input.replay}`;
      const n = (counts.get(key) ?? 0) + 1;
      counts.set(key, n);
      return Promise.resolve(script(input, n));
    }, clock),
  });
  const actor = start(
    machine,
    {
      sagaId: 's1',
      request: { method: 'POST', path: '/t', query: {}, headers: {}, body: {} },
      ...(opts.deadlineMs !== undefined ? { deadlineMs: opts.deadlineMs } : {}),
    },
    clock,
  );
  const advance = async (ms: number): Promise<void> => {
    await flush();
    clock.increment(ms);
    await flush();
  };
  return { actor, calls, cancellations, clock, advance };
}

const order = (calls: CallInput[]) => calls.map((c) => `${c.kind}${c.replay ? '(replay)' : ''}:${c.step}`);

// Every behaviour of the machine holds both under XState's actor and under the runner's driver.
describe.each([
  ['an XState actor', onActor],
  ["the runner's SagaDriver", onDriver],
])('saga machine on %s', (_host, start) => {
  const run = (def: ReturnType<typeof definition>, script: Script, opts: { deadlineMs?: number } = {}) =>
    runOn(start, def, script, opts);
  it('runs independent steps at once and a dependent step after its dependency', async () => {
    const def = definition([step('hotel'), step('flight'), step('car', ['flight'])]);
    const { actor, calls } = run(def, (i) => ok(`${i.step}-1`));
    await flush();
    expect(actor.getSnapshot().value).toBe('succeeded');
    // hotel and flight are both dispatched before car, which waits for flight.
    expect(order(calls).slice(0, 2).sort()).toEqual(['action:flight', 'action:hotel']);
    expect(order(calls)[2]).toBe('action:car');
    expect(calls[2]?.scope.steps.flight?.response.body).toEqual({ id: 'flight-1' });
  });

  it('compensates what succeeded, in reverse dependency order, when a step is rejected', async () => {
    // flight → car → hotel (chain); hotel rejects: undo car before flight.
    const def = definition([step('flight'), step('car', ['flight']), step('hotel', ['car'])]);
    const { actor, calls } = run(def, (i) =>
      i.kind === 'action' && i.step === 'hotel' ? rejected : ok(`${i.step}-1`),
    );
    await flush();
    const snap = actor.getSnapshot();
    expect(snap.value).toBe('compensated');
    expect(snap.context.failedStep).toBe('hotel');
    expect(order(calls)).toEqual([
      'action:flight',
      'action:car',
      'action:hotel',
      'compensation:car',
      'compensation:flight',
    ]);
    expect(snap.context.steps.hotel?.compensation.status).toBe('skipped');
  });

  it('retries a retryable outcome with backoff and succeeds', async () => {
    const def = definition([step('hotel')]);
    const { actor, advance } = run(def, (_i, n) => (n <= 2 ? unavailable : ok('h')));
    await advance(0);
    expect(actor.getSnapshot().value).toEqual({ running: { hotel: 'backoff' } });
    // equal jitter with random 0.5: 75 ms, then 150 ms
    await advance(74);
    expect(actor.getSnapshot().value).toEqual({ running: { hotel: 'backoff' } });
    await advance(1);
    await advance(150);
    expect(actor.getSnapshot().value).toBe('succeeded');
    expect(actor.getSnapshot().context.steps.hotel?.attempts).toBe(3);
  });

  it('waits for the answer of a call on its way when another step fails: no abort, no replay', async () => {
    // Issue 16: hotel's booking is on its way when flight is refused. Aborting it and replaying it
    // to learn what to undo cost up to three calls where one answer was coming.
    const def = definition([step('hotel'), step('flight')]);
    let answerHotel: (o: CallOutput) => void = () => undefined;
    const { actor, calls, cancellations, advance } = run(def, (i) => {
      if (i.kind === 'action' && i.step === 'hotel') return new Promise<CallOutput>((r) => (answerHotel = r));
      return i.kind === 'action' ? rejected : ok(`${i.step}-1`);
    });
    await advance(10);
    expect(actor.getSnapshot().value).toMatchObject({ compensating: { hotel: 'awaiting' } });
    expect(cancellations[0]?.cancelled).toBe(false);
    answerHotel(ok('hotel-7'));
    await advance(0);
    const snap = actor.getSnapshot();
    expect(snap.value).toBe('compensated');
    expect(order(calls)).toEqual(['action:hotel', 'action:flight', 'compensation:hotel']);
    expect(calls[2]?.scope.steps.hotel?.response.body).toEqual({ id: 'hotel-7' });
  });

  it('skips the undo of a call on its way that is then refused, and replays one that stays silent', async () => {
    const def = definition([step('hotel'), step('car'), step('flight')]);
    let refuseHotel: (o: CallOutput) => void = () => undefined;
    const { actor, calls, advance } = run(def, (i) => {
      if (i.kind === 'action' && i.step === 'hotel') return new Promise<CallOutput>((r) => (refuseHotel = r));
      if (i.kind === 'action' && i.step === 'car' && !i.replay) return never();
      return i.kind === 'action' && i.step === 'flight' ? rejected : ok(`${i.step}-1`);
    });
    await advance(10);
    refuseHotel(rejected);
    await advance(0);
    expect(actor.getSnapshot().value).toMatchObject({ compensating: { hotel: 'skipped', car: 'awaiting' } });
    // car's answer never comes: past its action's timeout it is in doubt, resolved by a replay.
    await advance(1000);
    expect(actor.getSnapshot().value).toBe('compensated');
    expect(order(calls)).toEqual([
      'action:hotel',
      'action:car',
      'action:flight',
      'action(replay):car',
      'compensation:car',
    ]);
  });

  it('waits for a call on its way only until that call’s own timeout, counted from when it was sent', async () => {
    const def = definition([step('car'), step('flight')]);
    let refuseFlight: (o: CallOutput) => void = () => undefined;
    const { actor, calls, advance } = run(def, (i) => {
      if (i.kind === 'action' && i.step === 'car' && !i.replay) return never();
      if (i.kind === 'action' && i.step === 'flight')
        return new Promise<CallOutput>((r) => (refuseFlight = r));
      return ok(`${i.step}-1`);
    });
    await advance(600);
    refuseFlight(rejected); // 600 ms after both were sent; car's timeout (1 s) has 400 ms left
    await advance(0);
    expect(actor.getSnapshot().value).toMatchObject({ compensating: { car: 'awaiting' } });
    await advance(399);
    expect(actor.getSnapshot().value).toMatchObject({ compensating: { car: 'awaiting' } });
    await advance(1);
    expect(actor.getSnapshot().value).toBe('compensated');
    expect(order(calls)).toEqual(['action:car', 'action:flight', 'action(replay):car', 'compensation:car']);
  });

  it('times out a step, then resolves the in-doubt step by replay before undoing it', async () => {
    const def = definition([
      step('hotel'),
      step('flight', [], {
        action: { ...step('flight').action, retry: { attempts: 1, backoffMs: 10, maxBackoffMs: 10 } },
      }),
    ]);
    const { actor, calls, advance } = run(def, (i) =>
      i.kind === 'action' && i.step === 'flight' && !i.replay ? never() : ok(`${i.step}-9`),
    );
    await advance(999);
    expect(actor.getSnapshot().value).toMatchObject({ running: { flight: 'calling' } });
    await advance(1);
    const snap = actor.getSnapshot();
    expect(snap.value).toBe('compensated');
    expect(snap.context.failedStep).toBe('flight');
    expect(snap.context.error?.code).toBe('SAGAMESH_ERR_STEP_TIMEOUT');
    expect(order(calls)).toEqual(
      expect.arrayContaining(['action(replay):flight', 'compensation:flight', 'compensation:hotel']),
    );
    // the undo of flight used the response learnt by the replay
    const undo = calls.find((c) => c.kind === 'compensation' && c.step === 'flight');
    expect(undo?.scope.steps.flight?.response.body).toEqual({ id: 'flight-9' });
  });

  it('replays an in-doubt step before its undo even when a failed attempt answered with a body', async () => {
    // Chaos seed 11: flight answered 503 (may have booked), then 409. The 409's error body is not
    // the booking: the undo must learn the booking id from a replay, not read it from that body.
    const errorBody = (status: number): StepResponse => ({ status, headers: {}, body: { error: 'no' } });
    const def = definition([step('hotel'), step('flight', [], { action: { ...step('flight').action } })]);
    const { actor, calls, advance } = run(def, (i, n) => {
      if (i.kind === 'action' && i.step === 'flight' && !i.replay) {
        return n === 1
          ? { ...unavailable, response: errorBody(503) }
          : { ...rejected, response: errorBody(409) };
      }
      return ok(`${i.step}-9`);
    });
    for (let i = 0; i < 5; i++) await advance(200);
    const snap = actor.getSnapshot();
    expect(snap.value).toBe('compensated');
    expect(order(calls)).toContain('action(replay):flight');
    const undo = calls.find((c) => c.kind === 'compensation' && c.step === 'flight');
    expect(undo?.scope.steps.flight?.response.body).toEqual({ id: 'flight-9' });
    // The failure answer tells the last status the participant gave: the replay's.
    expect(snap.context.steps.flight?.httpStatus).toBe(201);
  });

  it('compensates a recovered saga that was compensating, even when every step looks succeeded', async () => {
    const def = definition([step('hotel'), step('flight')]);
    const clock = new SimulatedClock();
    const calls: CallInput[] = [];
    const machine = buildSagaMachine(def, {
      calls: new CallsInFlight((input) => {
        calls.push(input);
        return Promise.resolve(ok(`${input.step}-1`, 200));
      }, clock),
    });
    const succeeded = { status: 'succeeded' as const, attempts: 1, inFlight: false, applied: 'yes' as const };
    const actor = start(
      machine,
      {
        sagaId: 's1',
        request: { method: 'POST', path: '/t', query: {}, headers: {}, body: {} },
        recovered: {
          steps: {
            hotel: {
              ...succeeded,
              nextDelayMs: 0,
              response: okResponse('hotel-1'),
              compensation: { status: 'pending', attempts: 0 },
            },
            flight: {
              ...succeeded,
              nextDelayMs: 0,
              response: okResponse('flight-1'),
              compensation: { status: 'done', attempts: 0 },
            },
          },
          error: { code: 'SAGAMESH_ERR_STEP_REJECTED', message: 'car said no' },
        },
      },
      clock,
    );
    await flush();
    expect(actor.getSnapshot().value).toBe('compensated');
    expect(order(calls)).toEqual(['compensation:hotel']);
  });

  it('leaves an in-doubt step stuck, not skipped, when its replays stay in doubt past the budget', async () => {
    const def = definition([
      step('flight', [], {
        action: { ...step('flight').action, retry: { attempts: 1, backoffMs: 10, maxBackoffMs: 10 } },
      }),
    ]);
    const { actor, calls, advance } = run(def, (i) => (i.replay ? unavailable : never()));
    await advance(1000); // the action times out: in doubt
    for (let i = 0; i < 10; i++) await advance(1000);
    const snap = actor.getSnapshot();
    // Only a refusal proves the booking was never made; three 503s prove nothing.
    expect(snap.value).toBe('stuck');
    expect(snap.context.steps.flight?.compensation).toMatchObject({
      status: 'stuck',
      error: { code: 'SAGAMESH_ERR_STEP_UNAVAILABLE' },
    });
    expect(order(calls)).toEqual(['action:flight', ...Array(3).fill('action(replay):flight')]);
  });

  it('aborts a call that timed out and drops its late answer; the retry answers for the step', async () => {
    const def = definition([step('hotel')]);
    const answers: ((out: CallOutput) => void)[] = [];
    const { actor, calls, cancellations, advance } = run(
      def,
      () => new Promise<CallOutput>((resolve) => answers.push(resolve)),
    );
    await advance(1000); // attempt 1 times out: its call is aborted
    expect(cancellations[0]?.cancelled).toBe(true);
    await advance(150); // backoff over: attempt 2 is in flight
    expect(calls.map((c) => c.attempt)).toEqual([1, 2]);
    answers[0]?.(ok('hotel-1')); // attempt 1's answer, too late: not attempt 2's
    await advance(0);
    expect(actor.getSnapshot().value).toEqual({ running: { hotel: 'calling' } });
    answers[1]?.(ok('hotel-2'));
    await advance(0);
    const snap = actor.getSnapshot();
    expect(snap.value).toBe('succeeded');
    expect(cancellations[1]?.cancelled).toBe(false);
    expect(snap.context.steps.hotel).toMatchObject({ attempts: 2, response: { body: { id: 'hotel-2' } } });
  });

  it('counts a call function that throws as a retryable, in-doubt outcome', async () => {
    const def = definition([step('hotel')]);
    const { actor, advance } = run(def, (_, n) => {
      if (n === 1) throw new Error('boom');
      return ok('hotel-2');
    });
    await advance(150);
    expect(actor.getSnapshot().value).toBe('succeeded');
    expect(actor.getSnapshot().context.steps.hotel).toMatchObject({ attempts: 2, applied: 'yes' });
  });

  it('compensates on an operator abort with its own code, not a deadline', async () => {
    const def = definition([step('hotel'), step('flight')]);
    const { actor, advance } = run(def, (i) =>
      i.kind === 'action' && i.step === 'flight' && !i.replay ? never() : ok(`${i.step}-1`),
    );
    await advance(10);
    actor.send({ type: 'saga.abort', reason: 'customer called' });
    await advance(10);
    const snap = actor.getSnapshot();
    expect(snap.value).toBe('compensated');
    expect(snap.context.error).toEqual({
      code: 'SAGAMESH_ERR_SAGA_ABORTED',
      message: 'aborted: customer called',
    });
  });

  it('compensates every step in flight when the saga deadline passes', async () => {
    const def = definition([step('hotel'), step('flight')], { deadlineMs: 500 });
    const { actor, calls, cancellations, advance } = run(def, (i) =>
      i.kind === 'action' && i.step === 'flight' && !i.replay ? never() : ok(`${i.step}-1`),
    );
    await advance(500);
    const snap = actor.getSnapshot();
    expect(snap.value).toBe('compensated');
    // flight's call, still in flight at the deadline, was aborted
    expect(cancellations[calls.findIndex((c) => c.step === 'flight')]?.cancelled).toBe(true);
    expect(snap.context.error?.code).toBe('SAGAMESH_ERR_SAGA_DEADLINE');
    expect(snap.context.steps.flight?.compensation.status).toBe('done');
    expect(snap.context.steps.hotel?.compensation.status).toBe('done');
  });

  it("keeps a parent's budget when it is shorter than the definition's deadline, never a longer one", async () => {
    const def = definition([step('hotel'), step('flight')], { deadlineMs: 5000 });
    const slowFlight: Script = (i) =>
      i.kind === 'action' && i.step === 'flight' && !i.replay ? never() : ok(`${i.step}-1`);
    const capped = run(def, slowFlight, { deadlineMs: 800 });
    await capped.advance(799);
    expect(capped.actor.getSnapshot().status).toBe('active');
    expect(capped.actor.getSnapshot().context.error).toBeUndefined();
    await capped.advance(1);
    expect(capped.actor.getSnapshot().value).toBe('compensated');
    expect(capped.actor.getSnapshot().context.error).toEqual({
      code: 'SAGAMESH_ERR_SAGA_DEADLINE',
      message: 'saga deadline of 800ms passed',
    });
    // A budget longer than the definition's deadline does not extend it.
    const longer = run(def, slowFlight, { deadlineMs: 60_000 });
    await longer.advance(5000);
    expect(longer.actor.getSnapshot().value).toBe('compensated');
    expect(longer.actor.getSnapshot().context.deadlineMs).toBe(5000);
  });

  it('ends stuck when a compensation exhausts its retries', async () => {
    const def = definition([step('hotel'), step('car', ['hotel'])]);
    const { actor, advance } = run(def, (i) => {
      if (i.kind === 'action') return i.step === 'car' ? rejected : ok('h');
      return unavailable;
    });
    for (let k = 0; k < 5; k++) await advance(1000);
    const snap = actor.getSnapshot();
    expect(snap.value).toBe('stuck');
    expect(snap.context.steps.hotel?.compensation).toMatchObject({ status: 'stuck', attempts: 3 });
  });

  it('does not compensate a step that was refused, and skips steps that never started', async () => {
    const def = definition([step('hotel'), step('car', ['hotel'])]);
    const { actor, calls } = run(def, (i) => (i.step === 'hotel' ? rejected : ok('c')));
    await flush();
    expect(actor.getSnapshot().value).toBe('compensated');
    expect(calls.filter((c) => c.kind === 'compensation')).toHaveLength(0);
  });

  it('goes to pivot in upstream mode and compensates when the upstream fails', async () => {
    const def = definition([step('hotel')], { respond: 'upstream' });
    const { actor, calls } = run(def, (i) => ok(`${i.step}-1`));
    await flush();
    expect(actor.getSnapshot().value).toBe('pivot');
    actor.send({ type: 'saga.upstream.response', status: 500 });
    await flush();
    expect(actor.getSnapshot().value).toBe('compensated');
    expect(actor.getSnapshot().context.error?.code).toBe('SAGAMESH_ERR_UPSTREAM_FAILED');
    expect(order(calls)).toEqual(['action:hotel', 'compensation:hotel']);
  });
});

describe('saga machine snapshots', () => {
  it('round-trips a persisted snapshot through JSON', async () => {
    const def = definition([step('hotel')]);
    const { actor } = runOn(onActor, def, () => never());
    await flush();
    const persisted: unknown = JSON.parse(
      JSON.stringify(
        (actor as ReturnType<typeof onActor> & { getPersistedSnapshot(): unknown }).getPersistedSnapshot(),
      ),
    );
    const restored = createActor(buildSagaMachine(def), {
      snapshot: persisted as never,
      input: { sagaId: 's1', request: { method: 'POST', path: '/t', query: {}, headers: {}, body: {} } },
    });
    expect(restored.getSnapshot().value).toEqual({ running: { hotel: 'calling' } });
    expect(restored.getSnapshot().context.steps.hotel?.inFlight).toBe(true);
  });
});
