import type { Stack } from '../../demo/stack';
import { startStack } from '../../demo/stack';
import { request, waitFor } from '../helpers/http';
import { trip } from '../helpers/trip-client';

/** GET /metrics in Prometheus text format, and its values moving as sagas run through Envoy. */
jest.setTimeout(60_000);

let stack: Stack;

beforeAll(async () => {
  stack = await startStack({ ports: 'free' });
});

afterAll(async () => {
  await stack?.stop();
});

/** `name{a="x",b="y"} 3` → value; labels in any order; 0 when the series does not exist yet. */
type Scrape = (name: string, labels?: Record<string, string>) => number;

async function scrape(): Promise<Scrape> {
  const res = await fetch(`${stack.adminUrl}/metrics`);
  expect(res.headers.get('content-type')).toContain('text/plain');
  const text = await res.text();
  const series = text
    .split('\n')
    .filter((l) => l !== '' && !l.startsWith('#'))
    .map((line) => {
      const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
      if (!m) throw new Error(`not a Prometheus sample: ${line}`);
      const labels = Object.fromEntries(
        [...(m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((l) => [l[1], l[2]]),
      );
      return { name: m[1], labels, value: Number(m[3]) };
    });
  return (name, labels = {}) =>
    series
      .filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
      .reduce((sum, s) => sum + s.value, 0);
}

const book = (body: unknown) => request(`${stack.ingressUrl}/trips`, { method: 'POST', body });

it('counts a request refused for a reused Idempotency-Key as rejected, by its code', async () => {
  const key = `reuse-${Date.now()}`;
  const keyed = (body: unknown) =>
    request(`${stack.ingressUrl}/trips`, { method: 'POST', body, headers: { 'idempotency-key': key } });
  expect((await keyed(trip())).status).toBe(201);
  const before = await scrape();
  expect((await keyed(trip({ guest: 'Grace' }))).status).toBe(422);
  // A replay of the same request is an answer, not a refusal.
  expect((await keyed(trip())).status).toBe(201);
  const after = await scrape();
  const delta = (name: string, labels?: Record<string, string>): number =>
    after(name, labels) - before(name, labels);
  const reused = { definition: 'book-trip', code: 'SAGAMESH_ERR_IDEMPOTENCY_KEY_REUSED' };
  expect(delta('sagamesh_sagas_rejected_total', reused)).toBe(1);
  expect(delta('sagamesh_sagas_rejected_total')).toBe(1);
  expect(delta('sagamesh_sagas_finished_total', { definition: 'book-trip', status: 'failed' })).toBe(1);
  expect(delta('sagamesh_sagas_started_total')).toBe(0);
});

it('counts sagas, steps, retries, compensations, streams and store operations as they happen', async () => {
  const before = await scrape();
  expect((await book(trip())).status).toBe(201);
  expect((await book(trip({ hotel: { nights: 1, fault: 'flaky:2' } }))).status).toBe(201);
  const beforeFailing = await scrape();
  expect((await book(trip({ car: { class: 'compact', fault: 'fail' } }))).status).toBe(409);
  expect((await book('{"guest": ')).status).toBe(400);
  const after = await scrape();
  const delta = (name: string, labels?: Record<string, string>): number =>
    after(name, labels) - before(name, labels);

  const bookTrip = { definition: 'book-trip' };
  expect(delta('sagamesh_sagas_started_total', bookTrip)).toBe(3);
  expect(delta('sagamesh_sagas_finished_total', { ...bookTrip, status: 'succeeded' })).toBe(2);
  expect(delta('sagamesh_sagas_finished_total', { ...bookTrip, status: 'compensated' })).toBe(1);
  expect(delta('sagamesh_sagas_finished_total', { ...bookTrip, status: 'failed' })).toBe(1);
  expect(delta('sagamesh_sagas_rejected_total', { ...bookTrip, code: 'SAGAMESH_ERR_BODY_NOT_JSON' })).toBe(1);
  expect(delta('sagamesh_saga_duration_seconds_count', { ...bookTrip, status: 'succeeded' })).toBe(2);

  const hotel = { ...bookTrip, step: 'hotel' };
  expect(delta('sagamesh_step_retries_total', { ...hotel, kind: 'action' })).toBe(2);
  expect(
    delta('sagamesh_step_duration_seconds_count', { ...hotel, kind: 'action', outcome: 'retryable' }),
  ).toBe(2);
  const hotelSuccess = { ...hotel, kind: 'action', outcome: 'success' };
  expect(
    beforeFailing('sagamesh_step_duration_seconds_count', hotelSuccess) -
      before('sagamesh_step_duration_seconds_count', hotelSuccess),
  ).toBe(2);
  // The failing trip's hotel call races the car's refusal (the steps run at once): answered first,
  // it counts once; answered after, its answer is dropped with the call and the compensating saga
  // replays the in-doubt booking to learn its id, which counts a second success.
  const failingHotel =
    after('sagamesh_step_duration_seconds_count', hotelSuccess) -
    beforeFailing('sagamesh_step_duration_seconds_count', hotelSuccess);
  expect([1, 2]).toContain(failingHotel);
  expect(
    delta('sagamesh_step_duration_seconds_count', { ...bookTrip, step: 'car', outcome: 'rejected' }),
  ).toBe(1);
  expect(delta('sagamesh_compensations_total', { ...hotel, outcome: 'success' })).toBe(1);
  expect(delta('sagamesh_compensations_total', { ...bookTrip, step: 'flight', outcome: 'success' })).toBe(1);

  expect(delta('sagamesh_extproc_streams_opened_total')).toBeGreaterThanOrEqual(4);
  expect(
    delta('sagamesh_store_operation_duration_seconds_count', { operation: 'append', result: 'ok' }),
  ).toBeGreaterThan(10);
  expect(after('sagamesh_definitions_loaded')).toBe(2);
  expect(after('process_cpu_user_seconds_total')).toBeGreaterThan(0);
});

it('shows sagas in flight while they run', async () => {
  const answer = book(trip({ hotel: { nights: 1, fault: 'slow:600' } }));
  await waitFor(
    async () => ((await scrape())('sagamesh_sagas_in_flight') === 1 ? true : undefined),
    'one saga in flight',
  );
  expect((await answer).status).toBe(201);
  await waitFor(
    async () => ((await scrape())('sagamesh_sagas_in_flight') === 0 ? true : undefined),
    'no saga in flight',
  );
  const m = await scrape();
  expect(m('sagamesh_extproc_streams_active')).toBe(0);
});
