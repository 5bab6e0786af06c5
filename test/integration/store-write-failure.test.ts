import { execFileSync } from 'node:child_process';
import type { Stack } from '../../demo/stack';
import { startStack } from '../../demo/stack';
import { request } from '../helpers/http';
import type { Answer } from '../helpers/trip-client';
import { logged, postJson, trip, until } from '../helpers/trip-client';

/**
 * The embedded store stops taking writes in the middle of sagas (the file may not grow: what a
 * full disk does, set on the real sagamesh process with prlimit), then takes them again. The
 * sagas whose records could not be written must not stay half-done until a restart: their clients
 * hear "still running" (503, retryable), and the same process resumes them from the log and
 * compensates them once the disk has room.
 */
jest.setTimeout(60_000);

let stack: Stack;

beforeAll(async () => {
  // debug: the test waits for 'call completed' lines to know what sagamesh has recorded.
  stack = await startStack({ ports: 'free', env: { SAGAMESH_LOG_LEVEL: 'debug' } });
});

afterAll(async () => {
  await stack?.stop();
});

/** RLIMIT_FSIZE of the sagamesh process: soft `limit`, hard unlimited (so it can be raised again). */
const fileSizeLimit = (limit: '0' | 'unlimited'): void => {
  execFileSync('prlimit', ['--pid', String(stack.sagamesh.pid), `--fsize=${limit}:unlimited`]);
};

const SAGAS = 4;

it('resumes the sagas whose records could not be written from the log once the disk has room, without a restart', async () => {
  const { hotel, flight, car } = stack.participants;
  const pid = stack.sagamesh.pid;
  // Flights take 1.5 s: hotel and car are booked and recorded, the flights in flight.
  const clients = Array.from({ length: SAGAS }, (_, i) =>
    postJson(stack, '/trips', trip({ guest: `guest-${i}`, flight: { to: 'LIS', fault: 'slow:1500' } })),
  );
  await until('hotel and car outcomes recorded, the flights in flight', () => {
    const ids = hotel.bookings().map((b) => b.sagaId ?? '');
    const recorded = (step: string) =>
      ids.filter(
        (id) =>
          logged(stack, 'call completed', { saga_id: id, step, kind: 'action', outcome: 'success' }).length,
      ).length;
    return (
      ids.length === SAGAS &&
      recorded('hotel') === SAGAS &&
      recorded('car') === SAGAS &&
      flight.inFlight() === SAGAS
    );
  });
  const sagaIds = hotel.bookings().map((b) => b.sagaId ?? '');

  fileSizeLimit('0');
  let answers: Answer[];
  try {
    // The flights' outcomes cannot be recorded: each saga stops there, and its client is told so.
    answers = await Promise.all(clients);
    const sagas = (await request(`${stack.adminUrl}/sagas?limit=1000`)).body.sagas as { status: string }[];
    expect(sagas.map((s) => s.status)).toEqual(Array(SAGAS).fill('running'));
  } finally {
    fileSizeLimit('unlimited');
  }
  for (const answer of answers) {
    expect(answer.status).toBe(503);
    expect(answer.body).toMatchObject({
      status: 'running',
      error: { code: 'SAGAMESH_ERR_STORE_UNAVAILABLE' },
    });
  }

  await until(
    'every saga compensated in the log',
    async () => {
      const sagas = (await request(`${stack.adminUrl}/sagas?limit=1000`)).body.sagas as { status: string }[];
      return sagas.length === SAGAS && sagas.every((s) => s.status === 'compensated');
    },
    { timeoutMs: 30_000, intervalMs: 200 },
  );
  // Every booking undone once, the in-doubt flights too (replayed under their key, not booked twice).
  for (const p of [hotel, flight, car]) {
    expect(p.bookings()).toHaveLength(SAGAS);
    expect(p.bookings().every((b) => b.status === 'cancelled')).toBe(true);
  }
  for (const id of sagaIds)
    expect(logged(stack, 'saga resumed from the log', { saga_id: id })).toHaveLength(1);
  const metrics = await fetch(`${stack.adminUrl}/metrics`).then((r) => r.text());
  expect(metrics).toMatch(/^sagamesh_sagas_in_flight 0$/m);
  // The same process did it.
  expect(stack.sagamesh.pid).toBe(pid);
});
