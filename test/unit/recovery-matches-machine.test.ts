import pino from 'pino';
import { createActor, SimulatedClock } from 'xstate';
import type { StepResponse } from '../../src/definition/definition';
import { callStep } from '../../src/engine/call-step';
import { CallsInFlight } from '../../src/engine/calls-in-flight';
import type { HttpCaller, StepHttpRequest } from '../../src/engine/http-caller';
import { NOOP_OBSERVER } from '../../src/engine/observer';
import { buildSagaMachine } from '../../src/runtime/machine';
import { rebuild } from '../../src/runtime/recovery';
import type { StepRun } from '../../src/runtime/saga-state';
import { freshStep } from '../../src/runtime/saga-state';
import { MemorySagaLog } from '../../src/saga-log/memory';
import { call, definition, step } from '../helpers/fake-definition';

/**
 * Recovery goes through the machine's own step rules (saga-state.ts): a saga run by the machine,
 * its calls recorded by the real call step into a saga log, and the state rebuilt from that journal
 * hold the same thing about every step's action — what a recovered saga decides its undo from.
 */

/** Answers by `METHOD origin` and attempt: the script's last answer repeats. */
type Script = Record<string, readonly number[]>;

/** hotel → flight; car after flight. `blindUndo`: hotel's undo reads nothing of its answer (no replay first). */
async function runAndRebuild(script: Script, blindUndo = false) {
  const clock = new SimulatedClock();
  const log = new MemorySagaLog(clock);
  const hotel = blindUndo
    ? step('hotel', [], { compensation: call('DELETE', 'http://hotel', '/bookings/by-saga') })
    : step('hotel');
  const def = definition([hotel, step('flight'), step('car', ['flight'])]);
  const seen = new Map<string, number>();
  const http: HttpCaller = {
    call: (r: StepHttpRequest): Promise<StepResponse> => {
      const key = `${r.method} ${r.origin}`;
      const n = seen.get(key) ?? 0;
      seen.set(key, n + 1);
      const statuses = script[key] ?? [r.method === 'POST' ? 201 : 200];
      const status = statuses[Math.min(n, statuses.length - 1)] ?? 500;
      const body = status < 300 ? { id: `${r.origin.slice(7)}-1` } : { error: status };
      return Promise.resolve({ status, headers: { 'content-type': 'application/json' }, body });
    },
    close: () => Promise.resolve(),
  };
  const deps = {
    log,
    http,
    clock,
    observer: NOOP_OBSERVER,
    logger: pino({ level: 'silent' }),
    onStoreError: () => undefined,
  };
  const request = { method: 'POST', path: '/test', query: {}, headers: {}, body: {} };
  await log.start('s1', { type: 'saga.started', definition: def.name, version: def.version, request });
  const calls = new CallsInFlight((input, signal) => callStep(deps, def, input, signal), clock);
  const actor = createActor(buildSagaMachine(def, { calls, jitter: () => 0.5 }), {
    input: { sagaId: 's1', request },
    clock,
  });
  actor.start();
  for (let i = 0; i < 40 && actor.getSnapshot().status !== 'done'; i++) {
    for (let j = 0; j < 20; j++) await new Promise((r) => setImmediate(r));
    clock.increment(100);
  }
  const snapshot = actor.getSnapshot();
  const rebuilt = rebuild(await log.history('s1'));
  return { value: snapshot.value, machine: snapshot.context.steps, rebuilt: rebuilt?.steps ?? {} };
}

/** What the step rules decide about an action (status and compensation are the states' own). */
const action = (run: StepRun | undefined) =>
  run && {
    attempts: run.attempts,
    inFlight: run.inFlight,
    applied: run.applied,
    httpStatus: run.httpStatus,
    response: run.response,
    error: run.error,
  };

describe('recovery rebuilds what the machine held', () => {
  it.each<[string, Script, string, boolean]>([
    ['every step succeeds', {}, 'succeeded', false],
    ['car is refused: hotel and flight are undone', { 'POST http://car': [409] }, 'compensated', false],
    [
      'hotel answers 503 twice before its booking, then car is refused',
      { 'POST http://hotel': [503, 503, 201], 'POST http://car': [409] },
      'compensated',
      false,
    ],
    [
      'flight fails in doubt (503 × 3), its replay is refused: nothing to undo there, hotel undone',
      { 'POST http://flight': [503, 503, 503, 409] },
      'compensated',
      false,
    ],
    [
      'flight stays 503: in doubt, its replays stay 503, its undo is stuck (hotel undone, car never sent)',
      { 'POST http://flight': [503] },
      'stuck',
      false,
    ],
    [
      'hotel stays 503 and its undo reads nothing of it: undone in doubt, without a replay',
      { 'POST http://hotel': [503] },
      'compensated',
      true,
    ],
  ])('%s', async (_name, script, end, blindUndo) => {
    const { value, machine, rebuilt } = await runAndRebuild(script, blindUndo);
    expect(value).toBe(end);
    for (const name of ['hotel', 'flight', 'car']) {
      // A step the journal never mentions starts fresh in a recovered machine (its context's steps).
      const recovered = rebuilt[name] ?? freshStep();
      expect({ step: name, ...action(recovered) }).toEqual({ step: name, ...action(machine[name]) });
    }
  });
});
