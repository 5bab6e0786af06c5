import path from 'node:path';
import type { Stack } from '../../demo/stack';
import { startStack } from '../../demo/stack';
import { request } from '../helpers/http';
import { postJson, trip } from '../helpers/trip-client';

/**
 * Hostile input through the real Envoy harms only its own request: a body beyond the structural
 * limits is refused before anything is recorded, while the sagas beside it run as usual; request
 * data that cannot become a step request is a template error of its own saga (nothing sent,
 * nothing in doubt). The sagas are the hostile fixture's book-trip: the hotel call carries
 * `x-guest: ${request.body.guest}`.
 */
jest.setTimeout(60_000);

let stack: Stack;

beforeAll(async () => {
  stack = await startStack({
    ports: 'free',
    sagasDir: path.join(__dirname, '..', 'fixtures', 'sagas', 'hostile'),
  });
});

afterAll(async () => {
  await stack?.stop();
});

beforeEach(() => {
  for (const p of Object.values(stack.participants)) p.reset();
});

describe('a header value rendered from the request data', () => {
  it.each([
    ['a control character', 'A\u0001da'],
    ['DEL', 'Ada\u007f'],
    ['an emoji', 'Ada \u{1f642}'],
  ])('holding %s fails its step as a template error: nothing is sent or in doubt', async (_, guest) => {
    const { hotel, flight, car } = stack.participants;
    const answer = await postJson(stack, '/trips', trip({ guest }));
    expect(answer.status).toBe(409);
    expect(answer.body).toMatchObject({
      status: 'compensated',
      failedStep: 'hotel',
      error: { code: 'SAGAMESH_ERR_STEP_TEMPLATE' },
    });
    expect(answer.body.error.message).toContain('printable US-ASCII');
    const hotelStep = (answer.body.steps as { name: string }[]).find((s) => s.name === 'hotel');
    // Refused before a request existed: not retried, not replayed, not compensated.
    expect(hotelStep).toMatchObject({ attempts: 1, compensation: 'skipped' });
    expect(hotel.calls()).toEqual([]);
    // The other steps ran, or not, as usual, and are undone.
    for (const p of [flight, car]) for (const b of p.bookings()) expect(b.status).toBe('cancelled');
  });
});

/** sagamesh's view through its admin API: every saga it recorded, and how many are in flight. */
async function recorded(): Promise<{ sagas: { sagaId: string; status: string }[]; inFlight: number }> {
  const list = await request(`${stack.adminUrl}/sagas?limit=1000`);
  const metrics = await fetch(`${stack.adminUrl}/metrics`).then((r) => r.text());
  const inFlight = /^sagamesh_sagas_in_flight (\d+)$/m.exec(metrics)?.[1];
  return { sagas: list.body.sagas, inFlight: Number(inFlight) };
}

describe('a deeply nested body', () => {
  it('is refused with a coded 400 before anything is recorded; the sagas beside it succeed', async () => {
    const depth = 4300;
    const deep = JSON.stringify(trip()).replace(/}$/, `,"extra":${'['.repeat(depth)}${']'.repeat(depth)}}`);
    expect(deep.length).toBeLessThan(10_000);
    const before = (await recorded()).sagas.length;

    // The hostile request in the middle of ordinary ones, so their records share its commits.
    const ordinary = (from: number, n: number) =>
      Array.from({ length: n }, (_, i) => postJson(stack, '/trips', trip({ guest: `guest-${from + i}` })));
    const first = ordinary(0, 30);
    const refused = postJson(stack, '/trips', deep);
    const second = ordinary(30, 30);
    const answers = await Promise.all([...first, ...second]);

    const answer = await refused;
    expect(answer.status).toBe(400);
    expect(answer.body).toMatchObject({ status: 'failed', error: { code: 'SAGAMESH_ERR_BODY_TOO_COMPLEX' } });
    expect(answer.body.error.message).toContain('nests more than 64 levels deep');
    expect(answers.map((a) => a.status)).toEqual(Array(60).fill(201));

    // Nothing of the refused request was recorded, and nothing is left half-done.
    const after = await recorded();
    expect(after.sagas.length - before).toBe(60);
    expect(after.sagas.filter((s) => s.status !== 'succeeded' && s.status !== 'compensated')).toEqual([]);
    expect(after.inFlight).toBe(0);
    for (const p of Object.values(stack.participants)) {
      expect(p.bookings()).toHaveLength(60);
      expect(p.bookings().every((b) => b.status === 'booked')).toBe(true);
    }
  });
});

describe('a participant that answers success with a body that is not the JSON it declares', () => {
  const hotelPosts = () => stack.participants.hotel.calls().filter((c) => c.method === 'POST');
  /** sagamesh's own record of the saga (admin API). */
  const history = async (sagaId: string) =>
    (await request(`${stack.adminUrl}/sagas/${sagaId}`)).body.history as {
      type: string;
      step?: string;
      replay?: boolean;
      outcome?: string;
      error?: { code: string };
    }[];

  it('is asked again with the same idempotency key, and the saga goes on with the readable answer', async () => {
    const answer = await postJson(stack, '/trips', trip({ hotel: { nights: 1, fault: 'garbled:1' } }));
    expect(answer.status).toBe(201);
    const [booking] = stack.participants.hotel.bookings();
    expect(answer.body.hotel).toEqual(booking);
    expect(hotelPosts()).toHaveLength(2);
    expect(new Set(hotelPosts().map((c) => c.idempotencyKey)).size).toBe(1);
  });

  it('is replayed to learn what to undo when the saga compensates, not left stuck', async () => {
    const answer = await postJson(
      stack,
      '/trips',
      // At most 2 unreadable answers, whether the create's own attempts took them or the replays do.
      trip({ hotel: { nights: 1, fault: 'garbled:2' }, car: { class: 'suv', fault: 'fail' } }),
    );
    expect(answer.status).toBe(409);
    expect(answer.body).toMatchObject({ status: 'compensated', failedStep: 'car' });
    const bookings = stack.participants.hotel.bookings();
    expect(bookings).toHaveLength(1);
    expect(bookings[0]?.status).toBe('cancelled');
    expect(new Set(hotelPosts().map((c) => c.idempotencyKey)).size).toBe(1);
  });

  it("ends stuck, under its own code, only once the compensation's budget of replays is spent", async () => {
    const answer = await postJson(
      stack,
      '/trips',
      trip({ hotel: { nights: 1, fault: 'garbled:100' }, car: { class: 'suv', fault: 'fail' } }),
    );
    expect(answer.status).toBe(500);
    expect(answer.body).toMatchObject({
      status: 'stuck',
      error: { code: 'SAGAMESH_ERR_COMPENSATION_EXHAUSTED', cause: { code: 'SAGAMESH_ERR_STEP_REJECTED' } },
    });
    const hotelStep = (answer.body.steps as { name: string }[]).find((s) => s.name === 'hotel');
    expect(hotelStep).toMatchObject({ compensation: 'stuck' });
    // The fixture's compensation budget: 3 attempts, each a replay of the create (same key), each
    // answered unreadably.
    const replays = (await history(answer.body.sagaId as string)).filter(
      (r) => r.type === 'call.completed' && r.step === 'hotel' && r.replay === true,
    );
    expect(replays).toHaveLength(3);
    for (const r of replays)
      expect(r).toMatchObject({ outcome: 'retryable', error: { code: 'SAGAMESH_ERR_STEP_BAD_RESPONSE' } });
    expect(stack.participants.hotel.bookings()).toHaveLength(1);
  });
});
