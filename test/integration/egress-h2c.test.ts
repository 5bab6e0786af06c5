import type { Stack } from '../../demo/stack';
import { startStack } from '../../demo/stack';

/**
 * Step calls over HTTP/2 (SAGAMESH_EGRESS_PROTOCOL=h2c) through the real Envoy: the egress
 * listener (codec_type AUTO) takes sagamesh's prior-knowledge h2c sessions and routes each stream
 * on its :authority, as it routes HTTP/1.1 on Host.
 */
jest.setTimeout(60_000);

let stack: Stack;

beforeAll(async () => {
  stack = await startStack({ ports: 'free', env: { SAGAMESH_EGRESS_PROTOCOL: 'h2c' } });
});

afterAll(async () => {
  await stack?.stop();
});

beforeEach(() => {
  for (const p of Object.values(stack.participants)) p.reset();
});

const trip = (car: Record<string, unknown> = {}) => ({
  guest: 'Ada',
  hotel: { city: 'Lisbon', nights: 2 },
  flight: { from: 'BER', to: 'LIS' },
  car: { class: 'compact', ...car },
});

async function post(body: unknown): Promise<{ status: number; sagaId: string | null; body: unknown }> {
  const res = await fetch(`${stack.ingressUrl}/trips`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: res.status, sagaId: res.headers.get('x-sagamesh-saga-id'), body: await res.json() };
}

async function egressStat(name: string): Promise<number> {
  const res = await fetch(`http://127.0.0.1:${stack.ports.admin}/stats?filter=^http\\.egress\\.${name}$`);
  return Number(new RegExp(`${name}: (\\d+)`).exec(await res.text())?.[1] ?? NaN);
}

it('books hotel, flight and car over HTTP/2 streams to the egress', async () => {
  const res = await post(trip());
  expect(res.status).toBe(201);
  for (const name of ['hotel', 'flight', 'car'] as const) {
    const bookings = stack.participants[name].bookings();
    expect(bookings).toHaveLength(1);
    expect(bookings[0]).toMatchObject({
      status: 'booked',
      sagaId: res.sagaId,
      idempotencyKey: `${res.sagaId}:${name}:action`,
    });
  }
  expect(await egressStat('downstream_cx_http2_total')).toBeGreaterThanOrEqual(1);
  expect(await egressStat('downstream_cx_http1_total')).toBe(0);
});

it('compensates over HTTP/2 when a step is rejected', async () => {
  const res = await post(trip({ fault: 'fail' }));
  expect(res.status).toBe(409);
  expect(res.body).toMatchObject({ status: 'compensated', failedStep: 'car' });
  for (const name of ['hotel', 'flight'] as const) {
    expect(stack.participants[name].bookings().map((b) => b.status)).toEqual(['cancelled']);
  }
});
