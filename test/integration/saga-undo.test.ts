/**
 * Undo of a finished saga through the real Envoy (envoy/envoy.yaml) and the demo's book-trip saga,
 * whose `spec.undo` is DELETE /trips/{sagaId} (issue 17; docs/nested-sagas.md): a booked trip is
 * cancelled step by step, a repeat gets the same answer, and an undo cut by a crash of sagamesh is
 * finished after its restart — each booking cancelled, none twice.
 */
import { randomUUID } from 'node:crypto';
import type { Stack } from '../../demo/stack';
import { startStack } from '../../demo/stack';
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

async function del(pathname: string): Promise<Answer> {
  const res = await fetch(`${stack.ingressUrl}${pathname}`, { method: 'DELETE' });
  const text = await res.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    // not JSON
  }
  return { status: res.status, headers: res.headers, text, body };
}

const participants = () => [stack.participants.hotel, stack.participants.flight, stack.participants.car];
const bookingsOf = (sagaId: string) =>
  participants().flatMap((p) => p.bookings().filter((b) => b.sagaId === sagaId));
const cancelCalls = (sagaId: string) =>
  participants().flatMap((p) => p.calls().filter((c) => c.sagaId === sagaId && c.method === 'DELETE'));

test('a booked trip is undone: every booking cancelled, car and flight and hotel; a repeat answers the same', async () => {
  const key = randomUUID();
  const booked = await postJson(stack, '/trips', trip(), { 'idempotency-key': key });
  expect(booked.status).toBe(201);
  const sagaId = String(booked.body.tripId);
  expect(bookingsOf(sagaId).map((b) => b.status)).toEqual(['booked', 'booked', 'booked']);

  const undone = await del(`/trips/${sagaId}`);
  expect(undone.status).toBe(200);
  expect(undone.body).toEqual({ sagaId, status: 'undone' });
  expect(undone.headers.get('x-sagamesh-saga-id')).toBe(sagaId);
  expect(bookingsOf(sagaId).map((b) => b.status)).toEqual(['cancelled', 'cancelled', 'cancelled']);
  expect(
    cancelCalls(sagaId)
      .map((c) => c.idempotencyKey)
      .sort(),
  ).toEqual([`${sagaId}:car:compensation`, `${sagaId}:flight:compensation`, `${sagaId}:hotel:compensation`]);

  // The same answer again, and nothing sent again.
  const again = await del(`/trips/${sagaId}`);
  expect({ status: again.status, text: again.text }).toEqual({ status: 200, text: undone.text });
  expect(cancelCalls(sagaId)).toHaveLength(3);
  // The booking's own client, retrying its POST, still gets what it got.
  const retried = await postJson(stack, '/trips', trip(), { 'idempotency-key': key });
  expect({ status: retried.status, text: retried.text }).toEqual({ status: 201, text: booked.text });

  const admin = (await (await fetch(`${stack.adminUrl}/sagas/${sagaId}`)).json()) as {
    saga: { status: string; marks: { label: string }[]; error?: { code: string } };
  };
  expect(admin.saga.status).toBe('compensated');
  expect(admin.saga.error?.code).toBe('SAGAMESH_ERR_SAGA_UNDONE');
  expect(admin.saga.marks.map((m) => m.label)).toEqual(['succeeded', 'undo', 'compensated']);
});

test('an unknown trip is 404, a trip that failed is 409, an odd spelling is refused', async () => {
  const unknown = await del(`/trips/${randomUUID()}`);
  expect(unknown.status).toBe(404);
  expect(unknown.body).toMatchObject({ error: { code: 'SAGAMESH_ERR_SAGA_NOT_FOUND' } });

  const failed = await postJson(stack, '/trips', trip({ car: { fault: 'fail' } }));
  expect(failed.status).toBe(409);
  const sagaId = String(failed.body.sagaId);
  const refused = await del(`/trips/${sagaId}`);
  expect(refused.status).toBe(409);
  expect(refused.body).toMatchObject({
    sagaId,
    status: 'compensated',
    error: { code: 'SAGAMESH_ERR_SAGA_NOT_UNDOABLE', message: expect.stringContaining('not succeeded') },
  });

  const odd = await del(`/trips/${sagaId};x`);
  expect(odd.status).toBe(400);
  expect(odd.body).toMatchObject({ error: { code: 'SAGAMESH_ERR_PATH_AMBIGUOUS' } });
});

test('an undo cut by kill -9 of sagamesh is finished after the restart, each booking cancelled once', async () => {
  // hotel's cancellation takes 3 s: sagamesh is killed while it is on its way.
  const booked = await postJson(
    stack,
    '/trips',
    trip({ hotel: { city: 'Lisbon', fault: 'cancel-slow:3000' } }),
  );
  expect(booked.status).toBe(201);
  const sagaId = String(booked.body.tripId);

  const cut = del(`/trips/${sagaId}`).catch((err: unknown) => err);
  await until('the hotel cancellation to be on its way', () => stack.participants.hotel.inFlight() > 0);
  await stack.killSagamesh('SIGKILL');
  await cut; // Envoy answers the stream the crash cut; what it says is not the saga's

  await stack.restartSagamesh();
  // Recovery resumes the undo; a repeated undo request answers 202 until it is done, then 200.
  let last: Answer | undefined;
  await until(
    'the undo to finish',
    async () => {
      last = await del(`/trips/${sagaId}`);
      return last.status === 200;
    },
    { timeoutMs: 30_000, intervalMs: 200 },
  );
  expect(last?.body).toEqual({ sagaId, status: 'undone' });
  await until('hotel to be cancelled', () => bookingsOf(sagaId).every((b) => b.status === 'cancelled'), {
    timeoutMs: 10_000,
  });
  // Each booking cancelled exactly once, whatever was sent again after the crash.
  expect(
    bookingsOf(sagaId)
      .map((b) => [b.resource, b.status])
      .sort(),
  ).toEqual([
    ['car', 'cancelled'],
    ['flight', 'cancelled'],
    ['hotel', 'cancelled'],
  ]);
});
