import { SimulatedClock } from 'xstate';
import type { CallingSaga, CallPort } from '../../src/runtime/machine';
import { buildSagaMachine } from '../../src/runtime/machine';
import type { CallOutput, SagaInput } from '../../src/runtime/saga-state';
import { MachineHost, SagaDriver } from '../../src/engine/saga-driver';
import { definition, step } from '../helpers/fake-definition';

/**
 * What the driver does around XState's macrostep (saga-machine.test.ts runs every behaviour of the
 * machine under both the driver and an XState actor): its timers, its mailbox, its failures.
 */

/** A simulated clock that counts the timers still set. */
class CountingClock extends SimulatedClock {
  readonly live = new Set<unknown>();
  override setTimeout(fn: (...args: unknown[]) => void, ms: number): number {
    const id = super.setTimeout(() => {
      this.live.delete(id);
      fn();
    }, ms);
    this.live.add(id);
    return id;
  }
  override clearTimeout(id: number): void {
    this.live.delete(id);
    super.clearTimeout(id);
  }
}

const ok: CallOutput = {
  outcome: 'success',
  applied: 'yes',
  response: { status: 201, headers: {}, body: { id: 'x' } },
};

const input: SagaInput = {
  sagaId: 's1',
  request: { method: 'POST', path: '/t', query: {}, headers: {}, body: {} },
};

/** A port that answers every call at once, inside the step that sent it. */
function answeringAtOnce(): CallPort & { sent: string[] } {
  const sent: string[] = [];
  return {
    sent,
    start: (saga: CallingSaga, id: string) => {
      sent.push(id);
      saga.send({ type: `call.${id}`, output: ok });
    },
    cancel: () => undefined,
  };
}

/** A port whose calls never answer. */
function silent(): CallPort & { sent: string[] } {
  const sent: string[] = [];
  return { sent, start: (_saga, id) => void sent.push(id), cancel: () => undefined };
}

function drive(port: CallPort, def = definition([step('hotel'), step('flight', ['hotel'])])) {
  const clock = new CountingClock();
  const seen: string[] = [];
  const errors: unknown[] = [];
  const driver = new SagaDriver(new MachineHost(buildSagaMachine(def, { calls: port })), input, clock, {
    next: (snapshot) => seen.push(snapshot.status),
    error: (err) => errors.push(err),
  });
  return { driver, clock, seen, errors };
}

describe('SagaDriver', () => {
  it('takes an answer sent during a step after that step, in order', () => {
    const port = answeringAtOnce();
    const { driver, seen, clock } = drive(port);
    driver.start();
    // hotel answered inside its own dispatch, flight inside the step that hotel's answer took.
    expect(port.sent).toEqual(['action.hotel', 'action.flight']);
    expect(driver.getSnapshot().value).toBe('succeeded');
    // One snapshot per step, each told after its step: start, hotel's answer, flight's answer.
    expect(seen).toEqual(['active', 'active', 'done']);
    // A finished saga holds no timer (its deadline went with it).
    expect(clock.live.size).toBe(0);
  });

  it('sets the deadline once, moves it at the pivot and sends it when it passes', () => {
    const port = silent();
    const def = definition([step('hotel')], { respond: 'upstream', deadlineMs: 500 });
    const { driver, clock } = drive(port, def);
    driver.start();
    expect(clock.live.size).toBe(1);
    driver.send({ type: 'call.action.hotel', output: ok });
    expect(driver.getSnapshot().value).toBe('pivot');
    // Running's deadline was cancelled on its exit; the pivot's is the one left.
    expect(clock.live.size).toBe(1);
    clock.increment(500);
    expect(driver.getSnapshot().value).toEqual({ compensating: { hotel: 'undoing' } });
    expect(driver.getSnapshot().context.error?.code).toBe('SAGAMESH_ERR_SAGA_DEADLINE');
  });

  it('runs no action and sends no delayed event once stopped', () => {
    const port = silent();
    const { driver, clock } = drive(port);
    driver.start();
    expect(port.sent).toEqual(['action.hotel']);
    driver.stop();
    expect(clock.live.size).toBe(0);
    driver.send({ type: 'call.action.hotel', output: ok });
    expect(port.sent).toEqual(['action.hotel']);
    expect(driver.getSnapshot().value).toEqual({ running: { hotel: 'calling', flight: 'waiting' } });
  });

  it("runs none of a step's remaining actions once an action stopped the saga", () => {
    const sent: string[] = [];
    const port: CallPort = {
      start: (saga, id) => {
        sent.push(id);
        (saga as SagaDriver).stop(); // its owner abandons it, as the runner does on a lost lease
      },
      cancel: () => undefined,
    };
    const started = drive(port, definition([step('hotel'), step('flight')]));
    started.driver.start();
    expect(sent).toEqual(['action.hotel']);
    expect(started.seen).toEqual([]);
    expect(started.clock.live.size).toBe(0);
  });

  it('fails the saga when an action throws: the observer hears it and its timers stop', () => {
    const port: CallPort = {
      start: () => {
        throw new Error('port broke');
      },
      cancel: () => undefined,
    };
    const { driver, clock, errors } = drive(port);
    driver.start();
    expect(errors).toEqual([new Error('port broke')]);
    expect(clock.live.size).toBe(0);
  });
});
