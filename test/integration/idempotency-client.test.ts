import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Stack } from '../../demo/stack';
import { REPO_ROOT, startStack } from '../../demo/stack';
import type { Answer } from '../helpers/trip-client';
import { postJson, trip, until } from '../helpers/trip-client';

/**
 * Client Idempotency-Keys through Envoy, on the embedded store: a retry with the same key and
 * body gets the first answer again (and starts nothing), a different body is a 422, a retry while
 * the saga runs is a 202, and the key outlives a crash of sagamesh.
 */
jest.setTimeout(60_000);

let stack: Stack;

beforeAll(async () => {
  stack = await startStack({ ports: 'free' });
});

afterAll(async () => {
  await stack?.stop();
});

beforeEach(() => {
  for (const p of Object.values(stack.participants)) p.reset();
});

let keys = 0;
const newKey = (): string => `client-key-${process.pid}-${Date.now()}-${++keys}`;
const participantCalls = (): number =>
  Object.values(stack.participants).reduce((n, p) => n + p.calls().length, 0);

/** The retry is the very same answer: status, body, saga id; marked as replayed. */
function expectReplay(first: Answer, retry: Answer): void {
  expect(retry.status).toBe(first.status);
  expect(retry.text).toBe(first.text);
  expect(retry.headers.get('x-sagamesh-saga-id')).toBe(first.headers.get('x-sagamesh-saga-id'));
  expect(retry.headers.get('content-type')).toBe(first.headers.get('content-type'));
  expect(retry.headers.get('idempotent-replayed')).toBe('true');
  expect(first.headers.get('idempotent-replayed')).toBeNull();
}

describe('Idempotency-Key', () => {
  it('replays a success: same status, body and saga id, and no new participant call', async () => {
    const key = newKey();
    const body = JSON.stringify(trip());
    const first = await postJson(stack, '/trips', body, { 'idempotency-key': key });
    expect(first.status).toBe(201);
    const sagaId = first.headers.get('x-sagamesh-saga-id');
    expect(first.body.tripId).toBe(sagaId);
    const callsBefore = participantCalls();
    expect(callsBefore).toBe(3);

    const retry = await postJson(stack, '/trips', body, { 'idempotency-key': key });
    expectReplay(first, retry);
    const again = await postJson(stack, '/trips', body, { 'idempotency-key': key });
    expectReplay(first, again);
    expect(participantCalls()).toBe(callsBefore);
    for (const p of Object.values(stack.participants)) expect(p.bookings()).toHaveLength(1);
  });

  it('replays a failure the same way: the compensated outcome, not a new attempt', async () => {
    const key = newKey();
    const body = JSON.stringify(trip({ car: { class: 'suv', fault: 'fail' } }));
    const first = await postJson(stack, '/trips', body, { 'idempotency-key': key });
    expect(first.status).toBe(409);
    expect(first.body).toMatchObject({ status: 'compensated', failedStep: 'car' });
    const callsBefore = participantCalls();

    const retry = await postJson(stack, '/trips', body, { 'idempotency-key': key });
    expectReplay(first, retry);
    expect(participantCalls()).toBe(callsBefore);
  });

  it('answers 422 SAGAMESH_ERR_IDEMPOTENCY_KEY_REUSED for the same key with a different body', async () => {
    const key = newKey();
    const first = await postJson(stack, '/trips', trip(), { 'idempotency-key': key });
    expect(first.status).toBe(201);
    const callsBefore = participantCalls();

    const other = await postJson(stack, '/trips', trip({ guest: 'Grace' }), { 'idempotency-key': key });
    expect(other.status).toBe(422);
    expect(other.body.error.code).toBe('SAGAMESH_ERR_IDEMPOTENCY_KEY_REUSED');
    expect(JSON.stringify(other.body)).toContain(first.headers.get('x-sagamesh-saga-id'));
    expect(participantCalls()).toBe(callsBefore);

    // The key still belongs to the first request.
    const retry = await postJson(stack, '/trips', trip(), { 'idempotency-key': key });
    expectReplay(first, retry);
  });

  it('answers 202 with the saga id and a location while the first request still runs', async () => {
    const key = newKey();
    const body = JSON.stringify(trip({ hotel: { nights: 1, fault: 'slow:1500' } }));
    const firstPending = postJson(stack, '/trips', body, { 'idempotency-key': key });
    const { hotel } = stack.participants;
    await until('the hotel booking in flight', () => hotel.inFlight() === 1);

    const during = await postJson(stack, '/trips', body, { 'idempotency-key': key });
    expect(during.status).toBe(202);
    const sagaId = during.headers.get('x-sagamesh-saga-id');
    expect(sagaId).toMatch(/^[0-9a-f-]{36}$/);
    expect(during.body).toEqual({ sagaId, status: 'running', location: `/sagas/${sagaId}` });
    expect(during.headers.get('location')).toBe(`/sagas/${sagaId}`);
    expect(during.headers.get('retry-after')).toBe('1');

    const first = await firstPending;
    expect(first.status).toBe(201);
    expect(first.headers.get('x-sagamesh-saga-id')).toBe(sagaId);
    // The 202 started nothing: one hotel call, one booking each.
    expect(hotel.calls().filter((c) => c.method === 'POST')).toHaveLength(1);
    for (const p of Object.values(stack.participants)) expect(p.bookings()).toHaveLength(1);

    const after = await postJson(stack, '/trips', body, { 'idempotency-key': key });
    expectReplay(first, after);
  });

  it('still replays the stored answer after sagamesh was killed and restarted', async () => {
    const key = newKey();
    const body = JSON.stringify(trip({ flight: { to: 'OPO' } }));
    const first = await postJson(stack, '/trips', body, { 'idempotency-key': key });
    expect(first.status).toBe(201);
    const callsBefore = participantCalls();

    expect(await stack.killSagamesh('SIGKILL')).toBeNull();
    await stack.restartSagamesh();

    const retry = await postJson(stack, '/trips', body, { 'idempotency-key': key });
    expectReplay(first, retry);
    expect(participantCalls()).toBe(callsBefore);
    const other = await postJson(stack, '/trips', trip(), { 'idempotency-key': key });
    expect(other.status).toBe(422);
    expect(other.body.error.code).toBe('SAGAMESH_ERR_IDEMPOTENCY_KEY_REUSED');
  });

  it('answers a retry with the outcome of the recovered saga when sagamesh died mid-saga', async () => {
    const key = newKey();
    const body = JSON.stringify(trip({ flight: { to: 'LIS', fault: 'slow:3000' } }));
    const { hotel, flight, car } = stack.participants;
    const lost = postJson(stack, '/trips', body, { 'idempotency-key': key }).catch((err: unknown) => err);
    await until('hotel and car booked, the flight in flight', () => {
      return hotel.bookings().length === 1 && car.bookings().length === 1 && flight.inFlight() >= 1;
    });
    const sagaId = hotel.bookings()[0]?.sagaId;
    expect(await stack.killSagamesh('SIGKILL')).toBeNull();
    await lost;
    await stack.restartSagamesh();

    // While the resumed saga compensates, the key says so; then it gives the recorded outcome.
    let retry: Answer | undefined;
    await until(
      'the recovered answer',
      async () => {
        retry = await postJson(stack, '/trips', body, { 'idempotency-key': key });
        if (retry.status === 202) expect(retry.headers.get('x-sagamesh-saga-id')).toBe(sagaId);
        return retry.status !== 202;
      },
      { timeoutMs: 15_000, intervalMs: 200 },
    );
    expect(retry?.status).toBe(409);
    expect(retry?.headers.get('x-sagamesh-saga-id')).toBe(sagaId);
    expect(retry?.headers.get('idempotent-replayed')).toBe('true');
    expect(retry?.body).toMatchObject({ sagaId, status: 'compensated' });
    for (const p of [hotel, flight, car]) expect(p.bookings().map((b) => b.status)).toEqual(['cancelled']);
    const again = await postJson(stack, '/trips', body, { 'idempotency-key': key });
    expect(again.text).toBe(retry?.text);
  });
});

describe('Idempotency-Key of a saga that answered before it settled', () => {
  let short: Stack;

  beforeAll(async () => {
    // book-trip with a 1 s deadline and a 1 s answer budget: a 2.5 s undo outlasts the answer.
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sagamesh-sagas-'));
    const source = fs.readFileSync(path.join(REPO_ROOT, 'sagas', 'book-trip.yaml'), 'utf8');
    expect(source).toContain('deadline: 10s');
    fs.writeFileSync(path.join(dir, 'book-trip.yaml'), source.replace('deadline: 10s', 'deadline: 1s'));
    short = await startStack({
      ports: 'free',
      sagasDir: dir,
      env: { SAGAMESH_MAX_DEADLINE_MS: '1000', SAGAMESH_ANSWER_BUDGET_MS: '1000' },
    });
  });

  afterAll(async () => {
    await short?.stop();
  });

  it('gives retries the final outcome once the saga settles, not 202 forever', async () => {
    const key = newKey();
    const body = JSON.stringify(
      trip({ hotel: { nights: 1, fault: 'cancel-slow:2500' }, car: { class: 'suv', fault: 'fail' } }),
    );
    const first = await postJson(short, '/trips', body, { 'idempotency-key': key });
    expect(first.status).toBe(409);
    // Not settled yet: the error is why it compensates (the car's refusal), not a deadline.
    expect(first.body).toMatchObject({
      status: 'compensating',
      failedStep: 'car',
      error: { code: 'SAGAMESH_ERR_STEP_REJECTED' },
    });
    const sagaId = first.headers.get('x-sagamesh-saga-id');

    let retry: Answer | undefined;
    await until(
      'a retry that is not 202',
      async () => {
        retry = await postJson(short, '/trips', body, { 'idempotency-key': key });
        return retry.status !== 202;
      },
      { timeoutMs: 10_000, intervalMs: 200 },
    );
    expect(retry?.status).toBe(409);
    expect(retry?.headers.get('x-sagamesh-saga-id')).toBe(sagaId);
    expect(retry?.headers.get('idempotent-replayed')).toBe('true');
    expect(retry?.body).toMatchObject({ sagaId, status: 'compensated', failedStep: 'car' });
    expect(short.participants.hotel.bookings().map((b) => b.status)).toEqual(['cancelled']);
    expect(short.participants.flight.bookings().map((b) => b.status)).toEqual(['cancelled']);
  });
});
