import type { Stack } from '../../demo/stack';
import { startStack } from '../../demo/stack';

/**
 * Load shedding through the real Envoy: with SAGAMESH_MAX_IN_FLIGHT sagas running, a new saga
 * request gets 503 SAGAMESH_ERR_OVERLOADED with Retry-After before anything reaches a participant;
 * once the running sagas finish, sagas start again.
 */
jest.setTimeout(60_000);

let stack: Stack | undefined;
afterAll(async () => {
  await stack?.stop();
});

const trip = (hotelFault?: string): string =>
  JSON.stringify({
    guest: 'Ada',
    hotel: { nights: 1, ...(hotelFault ? { fault: hotelFault } : {}) },
    flight: { to: 'LIS' },
    car: { class: 'mini' },
  });

it('answers 503 OVERLOADED with Retry-After past SAGAMESH_MAX_IN_FLIGHT, and recovers', async () => {
  stack = await startStack({ ports: 'free', env: { SAGAMESH_MAX_IN_FLIGHT: '2' } });
  const post = (body: string) =>
    fetch(`${stack?.ingressUrl}/trips`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body,
    });
  // Two slow sagas fill the bound.
  const slow = [post(trip('slow:1500')), post(trip('slow:1500'))];
  const deadline = Date.now() + 5000;
  while (stack.participants.hotel.inFlight() < 2 && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 20));
  }
  expect(stack.participants.hotel.inFlight()).toBe(2);

  const shed = await post(trip());
  expect(shed.status).toBe(503);
  expect(shed.headers.get('retry-after')).toBe('1');
  const json = (await shed.json()) as { status?: string; error?: { code?: string } };
  expect(json).toMatchObject({ status: 'failed', error: { code: 'SAGAMESH_ERR_OVERLOADED' } });

  expect((await Promise.all(slow)).map((r) => r.status)).toEqual([201, 201]);
  expect((await post(trip())).status).toBe(201);
  // The refused saga called nobody: three sagas ran, three bookings each.
  for (const p of [stack.participants.hotel, stack.participants.flight, stack.participants.car]) {
    expect(p.bookings()).toHaveLength(3);
  }
});
