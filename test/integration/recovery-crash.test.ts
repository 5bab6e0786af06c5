import type { Stack } from '../../demo/stack';
import { startStack } from '../../demo/stack';
import { logged, postJson, trip, until } from '../helpers/trip-client';

/**
 * Crash recovery on the embedded store, with real processes: sagamesh is killed with SIGKILL in
 * the middle of a saga and started again on the same SQLite file. What counts is what the
 * participants (the demo services, in this process) end up with — not what sagamesh says.
 */
jest.setTimeout(60_000);

let stack: Stack;

beforeAll(async () => {
  // debug: the test waits for 'call completed' lines to know what sagamesh has recorded.
  stack = await startStack({ ports: 'free', env: { SAGAMESH_LOG_LEVEL: 'debug' } });
});

afterAll(async () => {
  await stack?.stop();
});

beforeEach(() => {
  for (const p of Object.values(stack.participants)) p.reset();
});

const STEPS = ['hotel', 'flight', 'car'] as const;
const calls = (step: (typeof STEPS)[number], method: 'POST' | 'DELETE') =>
  stack.participants[step].calls().filter((c) => c.method === method);

/** True once sagamesh has logged (i.e. recorded) the outcome of this call. */
const recorded = (sagaId: string, step: string, kind: string): boolean =>
  logged(stack, 'call completed', { saga_id: sagaId, step, kind, outcome: 'success' }).length > 0;

describe('kill -9 of sagamesh, restart on the same SQLite file', () => {
  it('compensates the booked steps and the in-doubt one when it dies while steps are in flight', async () => {
    const { hotel, flight, car } = stack.participants;
    // The flight takes 3 s: hotel and car are booked, the flight call is still in flight.
    const client = postJson(stack, '/trips', trip({ flight: { to: 'LIS', fault: 'slow:3000' } })).catch(
      (err: unknown) => err,
    );
    await until('hotel and car booked and recorded, the flight in flight', () => {
      const sagaId = hotel.bookings()[0]?.sagaId;
      return (
        sagaId !== undefined &&
        car.bookings().length === 1 &&
        flight.inFlight() >= 1 &&
        recorded(sagaId, 'hotel', 'action') &&
        recorded(sagaId, 'car', 'action')
      );
    });
    const sagaId = hotel.bookings()[0]?.sagaId ?? '';
    expect(flight.bookings()).toHaveLength(0);

    const killedAt = performance.timeOrigin + performance.now();
    expect(await stack.killSagamesh('SIGKILL')).toBeNull();
    // The client's request died with its coordinator; it never saw a success.
    const answer = await client;
    if (!(answer instanceof Error)) expect((answer as { status: number }).status).toBeGreaterThanOrEqual(500);

    await stack.restartSagamesh();
    await until(
      'hotel, car and the in-doubt flight cancelled',
      () =>
        STEPS.every((s) => stack.participants[s].bookings().every((b) => b.status === 'cancelled')) &&
        flight.bookings().length === 1,
      { timeoutMs: 15_000 },
    );
    await until('the resumed saga recorded as compensated', () =>
      Boolean(logged(stack, 'saga finished', { saga_id: sagaId, status: 'compensated' }).length),
    );

    for (const step of STEPS) {
      const bookings = stack.participants[step].bookings();
      // One booking each: the in-doubt flight was replayed with its key, never booked twice.
      expect(bookings).toHaveLength(1);
      expect(bookings[0]).toMatchObject({
        status: 'cancelled',
        sagaId,
        idempotencyKey: `${sagaId}:${step}:action`,
      });
      const undo = calls(step, 'DELETE');
      expect(undo.length).toBeGreaterThanOrEqual(1);
      for (const c of undo) {
        expect(c).toMatchObject({
          kind: 'compensation',
          idempotencyKey: `${sagaId}:${step}:compensation`,
          path: `/bookings/${bookings[0]?.id}`,
        });
        // Undone by the restarted sagamesh.
        expect(c.startedAt).toBeGreaterThan(killedAt);
      }
    }
    // Recorded successes are not sent again; the in-doubt flight is replayed under its key.
    expect(calls('hotel', 'POST')).toHaveLength(1);
    expect(calls('car', 'POST')).toHaveLength(1);
    const flightPosts = calls('flight', 'POST');
    expect(flightPosts.length).toBeGreaterThanOrEqual(2);
    expect(new Set(flightPosts.map((c) => c.idempotencyKey))).toEqual(new Set([`${sagaId}:flight:action`]));
    expect(flightPosts.some((c) => c.startedAt > killedAt)).toBe(true);

    expect(logged(stack, 'saga resumed from the log', { saga_id: sagaId })).toHaveLength(1);
    expect(logged(stack, 'resumed unfinished sagas')[0]).toMatchObject({ reason: 'restart', resumed: 1 });
  });

  it('finishes compensating after a kill -9 during compensation, applying each undo once', async () => {
    const { hotel, flight, car } = stack.participants;
    // The car is refused: hotel and flight are undone; the hotel's DELETE takes 3 s.
    const client = postJson(
      stack,
      '/trips',
      trip({ hotel: { nights: 2, fault: 'cancel-slow:3000' }, car: { class: 'suv', fault: 'fail' } }),
    ).catch((err: unknown) => err);
    // The car's 409 may come back before the hotel's 201: then the hotel is in doubt and its
    // create is replayed first. Either way, once the hotel's success is recorded, the next hotel
    // request is the DELETE.
    await until('the hotel DELETE in flight and the flight undo recorded', () => {
      const sagaId = hotel.bookings()[0]?.sagaId;
      return (
        sagaId !== undefined &&
        recorded(sagaId, 'hotel', 'action') &&
        hotel.inFlight() === 1 &&
        recorded(sagaId, 'flight', 'compensation')
      );
    });
    const sagaId = hotel.bookings()[0]?.sagaId ?? '';
    expect(hotel.bookings()[0]?.status).toBe('booked');
    expect(flight.bookings()[0]?.status).toBe('cancelled');

    const killedAt = performance.timeOrigin + performance.now();
    expect(await stack.killSagamesh('SIGKILL')).toBeNull();
    await client;

    await stack.restartSagamesh();
    await until('the hotel cancelled', () => hotel.bookings()[0]?.status === 'cancelled', {
      timeoutMs: 15_000,
    });
    const cancelledAt = hotel.bookings()[0]?.cancelledAt;
    await until('the resumed saga recorded as compensated, no call left in flight', () =>
      Boolean(
        logged(stack, 'saga finished', { saga_id: sagaId, status: 'compensated' }).length &&
        hotel.inFlight() === 0,
      ),
    );

    // The hotel was cancelled exactly once: by the wait the first DELETE started, which the
    // DELETEs after the restart joined. cancelledAt never moved.
    const [booking] = hotel.bookings();
    expect(hotel.bookings()).toHaveLength(1);
    expect(booking).toMatchObject({ status: 'cancelled', cancelledAt });
    const deletes = calls('hotel', 'DELETE');
    expect(deletes.length).toBeGreaterThanOrEqual(2);
    expect(deletes[0]?.startedAt).toBeLessThan(killedAt);
    expect(deletes.some((c) => c.startedAt > killedAt)).toBe(true);
    for (const c of deletes) {
      expect(c).toMatchObject({
        kind: 'compensation',
        idempotencyKey: `${sagaId}:hotel:compensation`,
        path: `/bookings/${booking?.id}`,
        status: 200,
      });
    }
    const firstWaitEnded = (deletes[0]?.startedAt ?? 0) + 3000;
    expect(Math.abs(Date.parse(cancelledAt ?? '') - firstWaitEnded)).toBeLessThan(500);

    // The flight's undo was recorded before the kill: it is not sent again.
    expect(flight.bookings()).toHaveLength(1);
    expect(flight.bookings()[0]?.status).toBe('cancelled');
    expect(calls('flight', 'DELETE')).toHaveLength(1);
    expect(car.bookings()).toHaveLength(0);
    expect(logged(stack, 'saga resumed from the log', { saga_id: sagaId })).toHaveLength(1);
  });
});
