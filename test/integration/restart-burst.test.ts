/**
 * A sagamesh restart under load, through the real Envoy with envoy/envoy.yaml (issue 13, item 9).
 * While sagamesh is down, Envoy cannot open ext_proc streams: a request that arrives then must wait
 * for sagamesh (Envoy retries the connection, bounded) and get its saga's answer, not an error. The
 * streams the crash cut (sagas sagamesh had read) get a coded, retryable 503 with Retry-After — never
 * a bare 500 — and their sagas are compensated when sagamesh recovers.
 */
import type { Stack } from '../../demo/stack';
import { startStack } from '../../demo/stack';
import { ERRORS } from '../../src/errors';
import type { Answer } from '../helpers/trip-client';
import { postJson, trip, until } from '../helpers/trip-client';

jest.setTimeout(120_000);

let stack: Stack;

beforeAll(async () => {
  stack = await startStack({ ports: 'free' });
});

afterAll(async () => {
  await stack?.stop();
});

test('requests during a kill -9 and restart wait for sagamesh; the cut streams get a coded 503', async () => {
  // Sagas in flight at the kill: their flight step takes 3 s.
  const cut = Array.from({ length: 5 }, () =>
    postJson(stack, '/trips', trip({ flight: { fault: 'slow:3000' } })),
  );
  await until('five flight calls in flight', () => stack.participants.flight.inFlight() >= 5);
  await stack.killSagamesh('SIGKILL');

  // Requests that arrive while sagamesh is down, then sagamesh comes back.
  const waiting: Promise<Answer>[] = Array.from({ length: 20 }, () => postJson(stack, '/trips', trip()));
  await stack.restartSagamesh();

  const waited = await Promise.all(waiting);
  expect(waited.map((a) => a.status)).toEqual(waited.map(() => 201));

  const cutAnswers = await Promise.all(cut);
  for (const a of cutAnswers) {
    expect({ status: a.status, retryAfter: a.headers.get('retry-after'), body: a.body }).toEqual({
      status: 503,
      retryAfter: '1',
      body: {
        status: 'failed',
        error: {
          code: ERRORS.COORDINATOR_UNAVAILABLE.code,
          message: ERRORS.COORDINATOR_UNAVAILABLE.message,
        },
      },
    });
  }
  // The cut sagas are compensated by the restarted sagamesh: nothing stays booked but the 20.
  await until('the cut sagas compensated', () =>
    ['hotel', 'car'].every(
      (p) =>
        stack.participants[p as 'hotel' | 'car'].bookings().filter((b) => b.status === 'booked').length ===
        20,
    ),
  );
});
