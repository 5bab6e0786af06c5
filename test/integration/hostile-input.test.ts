import path from 'node:path';
import type { Stack } from '../../demo/stack';
import { startStack } from '../../demo/stack';
import { postJson, trip } from '../helpers/trip-client';

/**
 * Hostile input through the real Envoy: request data that cannot become a step request is a
 * template error of its own saga (nothing sent, nothing in doubt). The sagas are the hostile
 * fixture's book-trip: the hotel call carries `x-guest: ${request.body.guest}`.
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
