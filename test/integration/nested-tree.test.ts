/**
 * A three-level tree of sagas, each level its own service with its own Envoy (envoy/envoy.yaml),
 * sagamesh and saga log (issue 17; docs/nested-sagas.md):
 *
 *   agency (stack A: agency-tour) ── tour ──▶ tours (stack B: tour) ── trip ──▶ trips (stack C: book-trip)
 *                                 └─ pay (A's car)                  └─ guide (B's hotel)
 *
 * Checked from the participants' own records: a failure at a leaf compensates the whole tree,
 * deepest first; a failure at the top after everything succeeded undoes the tree through the
 * undo routes, deepest first; a `kill -9` of the leaf's sagamesh mid-saga leaves nothing booked.
 */
import path from 'node:path';
import type { CallRecord, Participant } from '../../demo/participant';
import { renderEnvoyConfig } from '../../demo/envoy';
import type { Stack } from '../../demo/stack';
import { startStack } from '../../demo/stack';
import { postJson, trip, until } from '../helpers/trip-client';

jest.setTimeout(180_000);

const FIXTURES = path.join(__dirname, '..', 'fixtures', 'sagas', 'tree');
let agency: Stack;
let tours: Stack;
let trips: Stack;

beforeAll(async () => {
  trips = await startStack({ ports: 'free' });
  tours = await startStack({
    ports: 'free',
    sagasDir: path.join(FIXTURES, 'tours'),
    envoyConfig: (ports) => renderEnvoyConfig({ ...ports, trips: trips.ports.ingress }),
  });
  agency = await startStack({
    ports: 'free',
    sagasDir: path.join(FIXTURES, 'agency'),
    envoyConfig: (ports) => renderEnvoyConfig({ ...ports, trips: tours.ports.ingress }),
  });
});

afterAll(async () => {
  await Promise.all([agency?.stop(), tours?.stop(), trips?.stop()]);
});

const leaves = (): Participant[] => [
  trips.participants.hotel,
  trips.participants.flight,
  trips.participants.car,
];
const guide = (): Participant => tours.participants.hotel;
const pay = (): Participant => agency.participants.car;

/** Every booking a request made anywhere in the tree, by the guest name it carried. */
const bookingsOf = (guest: string) =>
  (
    [
      ...leaves().map((p) => ['leaf', p] as const),
      ['guide', guide()] as const,
      ['pay', pay()] as const,
    ] as const
  ).flatMap(([level, p]) =>
    p
      .bookings()
      .filter((b) => (b.request as { guest?: string } | null)?.guest === guest)
      .map((b) => ({ at: `${level} ${p.name}`, status: b.status, id: b.id, sagaId: b.sagaId })),
  );

/** When each cancellation of a booking of `guest`'s reached its participant. */
function cancelTimes(participants: Participant[], ids: Set<string>): number[] {
  return participants.flatMap((p) =>
    p
      .calls()
      .filter(
        (c: CallRecord) =>
          c.method === 'DELETE' && c.status === 200 && ids.has(c.path.split('/').pop() ?? ''),
      )
      .map((c) => c.startedAt),
  );
}

const request = (guest: string, over: { trip?: object; pay?: object } = {}) => ({
  tour: { trip: { ...trip({ guest }), ...over.trip }, guide: { guest, language: 'pt' } },
  pay: { guest, amount: 100, ...over.pay },
});

test('a failure at a leaf compensates the whole tree, deepest first', async () => {
  const answer = await postJson(
    agency,
    '/agency-tour',
    request('Leaf', { trip: { car: { fault: 'fail' } } }),
  );
  expect(answer.status).toBe(424);
  expect(answer.body).toMatchObject({ status: 'compensated', failedStep: 'tour' });

  const booked = bookingsOf('Leaf');
  // The leaf's hotel and flight were booked and cancelled; the guide too; car refused; no payment.
  expect(booked.map((b) => [b.at, b.status]).sort()).toEqual([
    ['guide hotel', 'cancelled'],
    ['leaf flight', 'cancelled'],
    ['leaf hotel', 'cancelled'],
  ]);
  const leafIds = new Set(booked.filter((b) => b.at.startsWith('leaf')).map((b) => b.id));
  const guideIds = new Set(booked.filter((b) => b.at.startsWith('guide')).map((b) => b.id));
  // The leaf saga undid its own bookings before it answered; only then did the tour undo its guide.
  expect(Math.max(...cancelTimes(leaves(), leafIds))).toBeLessThan(
    Math.min(...cancelTimes([guide()], guideIds)),
  );
});

test('a failure at the top after the whole tree succeeded undoes it through the undo routes, deepest first', async () => {
  const answer = await postJson(agency, '/agency-tour', request('Top', { pay: { fault: 'fail' } }));
  expect(answer.status).toBe(424);
  expect(answer.body).toMatchObject({ status: 'compensated', failedStep: 'pay' });

  const booked = bookingsOf('Top');
  expect(booked.map((b) => [b.at, b.status]).sort()).toEqual([
    ['guide hotel', 'cancelled'],
    ['leaf car', 'cancelled'],
    ['leaf flight', 'cancelled'],
    ['leaf hotel', 'cancelled'],
  ]);
  // Each saga below the top was undone, not failed: the tour, and the trip under it.
  const tourId = String(booked.find((b) => b.at === 'guide hotel')?.sagaId);
  const tourView = (await (await fetch(`${tours.adminUrl}/sagas/${tourId}`)).json()) as {
    saga: {
      status: string;
      endedAt: number;
      marks: { label: string }[];
      children: { step: string; sagaId: string }[];
    };
  };
  expect(tourView.saga.status).toBe('compensated');
  expect(tourView.saga.marks.map((m) => m.label)).toEqual(['succeeded', 'undo', 'compensated']);
  const tripId = tourView.saga.children.find((c) => c.step === 'trip')?.sagaId;
  const tripView = (await (await fetch(`${trips.adminUrl}/sagas/${tripId}`)).json()) as {
    saga: {
      status: string;
      endedAt: number;
      marks: { label: string }[];
      parent: { sagaId: string; step: string };
    };
  };
  expect(tripView.saga).toMatchObject({ status: 'compensated', parent: { sagaId: tourId, step: 'trip' } });
  expect(tripView.saga.marks.map((m) => m.label)).toEqual(['succeeded', 'undo', 'compensated']);
  expect(booked.filter((b) => b.sagaId === tripId)).toHaveLength(3);
  // Deepest first: the trip's undo ended before the tour's, which ended before the agency did.
  const agencyView = (await (
    await fetch(`${agency.adminUrl}/sagas/${answer.headers.get('x-sagamesh-saga-id')}`)
  ).json()) as { saga: { endedAt: number } };
  const ended = [tripView.saga.endedAt, tourView.saga.endedAt, agencyView.saga.endedAt];
  expect([...ended].sort((a, b) => a - b)).toEqual(ended);
});

test("kill -9 of the leaf's sagamesh mid-saga leaves nothing booked anywhere in the tree", async () => {
  // The leaf's hotel answers after 1.5 s: the leaf's sagamesh is killed while it waits.
  const pending = postJson(
    agency,
    '/agency-tour',
    request('Kill', { trip: { hotel: { fault: 'slow:1500' } } }),
  );
  await until('the leaf hotel call to be on its way', () => trips.participants.hotel.inFlight() > 0);
  await trips.killSagamesh('SIGKILL');
  await trips.restartSagamesh();
  const answer = await pending;
  expect(answer.status).toBe(424);
  expect(answer.body).toMatchObject({ status: 'compensated' });

  // Once every level is quiet: nothing stays booked; the restarted leaf finished its own saga.
  await until(
    'every booking of the tree to be cancelled',
    () => bookingsOf('Kill').every((b) => b.status === 'cancelled'),
    { timeoutMs: 30_000, intervalMs: 100 },
  );
  const leafSagas = (await (await fetch(`${trips.adminUrl}/sagas?status=running`)).json()) as {
    sagas: unknown[];
  };
  expect(leafSagas.sagas).toEqual([]);
  expect(bookingsOf('Kill').filter((b) => b.status === 'booked')).toEqual([]);
});
