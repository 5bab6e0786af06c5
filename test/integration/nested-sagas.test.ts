/**
 * Nested sagas through two real Envoys (issue 17, first part; docs/nested-sagas.md): the agency's
 * sagamesh (stack A) runs a saga whose `trip` step calls the trips service through A's egress
 * Envoy; the trips service is stack B — its own ingress Envoy with envoy/envoy.yaml, its own
 * sagamesh and saga log, running the book-trip saga of sagas/. A's `trips` cluster points at B's
 * ingress. Checked: the child records its parent, the parent's step links its child, and the
 * child's deadline is the parent's budget for the call, not its definition's.
 */
import path from 'node:path';
import { renderEnvoyConfig } from '../../demo/envoy';
import type { Stack } from '../../demo/stack';
import { startStack } from '../../demo/stack';
import { request } from '../helpers/http';
import { postJson, trip, until } from '../helpers/trip-client';

jest.setTimeout(120_000);

let agency: Stack;
let trips: Stack;

beforeAll(async () => {
  trips = await startStack({ ports: 'free' });
  agency = await startStack({
    ports: 'free',
    sagasDir: path.join(__dirname, '..', 'fixtures', 'sagas', 'nested'),
    envoyConfig: (ports) => renderEnvoyConfig({ ...ports, trips: trips.ports.ingress }),
  });
});

afterAll(async () => {
  await Promise.all([agency?.stop(), trips?.stop()]);
});

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- the admin API's JSON
const sagaOf = async (stack: Stack, sagaId: string): Promise<any> => {
  const res = await request(`${stack.adminUrl}/sagas/${encodeURIComponent(sagaId)}`);
  expect(res.status).toBe(200);
  return res.body;
};

test("a child saga records its parent, and the parent's step links its child", async () => {
  const answer = await postJson(agency, '/agency', { trip: trip() });
  expect(answer.status).toBe(201);
  const parentId = answer.headers.get('x-sagamesh-saga-id');
  const childId = String(answer.body.trip.tripId);
  expect(parentId).toBe(answer.body.agencyId);
  expect(typeof childId).toBe('string');
  expect(childId).not.toBe(parentId);

  const parent = await sagaOf(agency, String(parentId));
  expect(parent.saga).toMatchObject({ status: 'succeeded', children: [{ step: 'trip', sagaId: childId }] });
  expect(parent.saga).not.toHaveProperty('parent');

  const child = await sagaOf(trips, childId);
  expect(child.saga).toMatchObject({
    definition: 'book-trip',
    status: 'succeeded',
    parent: { sagaId: parentId, step: 'trip' },
  });
  // The trip step's 1 s budget is shorter than book-trip's 10 s deadline: it is the child's.
  expect(child.saga.deadlineMs).toBe(1000);
  // A replay of the parent's step (same idempotency key, same body) gets the same child's answer
  // and starts no second child.
  const hotelCalls = trips.participants.hotel.calls().length;
  const replay = await postJson(trips, '/trips', trip(), { 'idempotency-key': `${parentId}:trip:action` });
  expect(replay.status).toBe(201);
  expect(replay.headers.get('x-sagamesh-saga-id')).toBe(childId);
  expect(replay.body.tripId).toBe(childId);
  expect(trips.participants.hotel.calls()).toHaveLength(hotelCalls);
});

test("the child's deadline is the parent's budget: it compensates when the parent stops waiting", async () => {
  // hotel answers after 1.5 s: within its own 2 s step timeout and book-trip's 10 s deadline, but
  // past the 1 s the agency's trip step waits for the child.
  const answer = await postJson(agency, '/agency', { trip: trip({ hotel: { fault: 'slow:1500' } }) });
  expect(answer.status).toBe(424);
  expect(answer.body).toMatchObject({ status: 'compensated', failedStep: 'trip' });

  const parentId = String(answer.headers.get('x-sagamesh-saga-id'));
  // The parent gave up at 1 s; the child's own deadline passed at about the same time, and its
  // compensation may still be running: wait for its end.
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- the admin API's JSON
  let found: any;
  await until('the child saga to end', async () => {
    const list = (await request(`${trips.adminUrl}/sagas?limit=50`)).body as { sagas: { sagaId: string }[] };
    for (const s of list.sagas) {
      const view = await sagaOf(trips, s.sagaId);
      if (view.saga.parent?.sagaId === parentId) found = view;
    }
    return found?.saga.finished === true;
  });
  expect(found?.saga).toMatchObject({
    parent: { sagaId: parentId, step: 'trip' },
    deadlineMs: 1000,
    status: 'compensated',
    error: { code: 'SAGAMESH_ERR_SAGA_DEADLINE', message: 'saga deadline of 1000ms passed' },
  });
});

test('a failure in the parent after the child succeeded undoes the child through its undo route', async () => {
  const answer = await postJson(agency, '/agency-pay', { trip: trip(), pay: { fault: 'fail' } });
  expect(answer.status).toBe(424);
  expect(answer.body).toMatchObject({ status: 'compensated', failedStep: 'pay' });
  const parentId = String(answer.headers.get('x-sagamesh-saga-id'));
  const parent = await sagaOf(agency, parentId);
  const childId = String(parent.saga.children[0]?.sagaId);
  expect(parent.saga.children).toEqual([{ step: 'trip', sagaId: childId }]);

  const child = await sagaOf(trips, childId);
  expect(child.saga).toMatchObject({
    status: 'compensated',
    parent: { sagaId: parentId, step: 'trip' },
    error: { code: 'SAGAMESH_ERR_SAGA_UNDONE' },
  });
  const marks = child.saga.marks as { label: string }[];
  expect(marks.map((m) => m.label)).toEqual(['succeeded', 'undo', 'compensated']);
  const bookings = [trips.participants.hotel, trips.participants.flight, trips.participants.car].flatMap(
    (p) => p.bookings().filter((b) => b.sagaId === childId),
  );
  expect(bookings.map((b) => b.status)).toEqual(['cancelled', 'cancelled', 'cancelled']);
});

test('a malformed budget is refused with a coded 400 before anything runs', async () => {
  const before = trips.participants.hotel.calls().length;
  const answer = await postJson(trips, '/trips', trip(), { 'x-sagamesh-budget-ms': 'soon' });
  expect(answer.status).toBe(400);
  expect(answer.body).toMatchObject({ status: 'failed', error: { code: 'SAGAMESH_ERR_BUDGET_INVALID' } });
  expect(trips.participants.hotel.calls()).toHaveLength(before);
});
