import { Client } from 'pg';
import type { SagameshProcess, Stack } from '../../demo/stack';
import { freePort, spawnSagamesh, startStack } from '../../demo/stack';
import type { TestPostgres } from '../helpers/postgres';
import { startPostgres } from '../helpers/postgres';

/**
 * Two sagamesh instances share one PostgreSQL saga log. Instance A (behind Envoy) runs sagas and
 * is killed with -9 mid-saga; instance B takes them over once A's leases expire and compensates
 * them. Checked on the participants: every booking is undone exactly once, nothing runs forward
 * again, and no compensation is sent twice.
 */
jest.setTimeout(90_000);

const SAGAS = 4;
let pg: TestPostgres;
let stack: Stack | undefined;
let b: SagameshProcess | undefined;

beforeAll(async () => {
  pg = await startPostgres();
});
afterAll(async () => {
  await b?.stop();
  await stack?.stop();
  await pg?.stop();
});

async function until<T>(
  what: string,
  fn: () => T | Promise<T>,
  ok: (v: T) => boolean,
  ms = 30_000,
): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (ok(v)) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(v)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

it('a surviving instance finishes the sagas of one killed mid-saga, and no saga is executed by both', async () => {
  const url = await pg.createDatabase();
  const common = { SAGAMESH_STORE: url, SAGAMESH_LEASE_TTL_MS: '1500', SAGAMESH_LOG_LEVEL: 'info' };
  stack = await startStack({ ports: 'free', env: { ...common, SAGAMESH_INSTANCE_ID: 'a' } });
  const { hotel, flight, car } = stack.participants;
  const ingress = stack.ingressUrl;

  // A runs the sagas; every flight is slow, so A dies with the flights in flight.
  const requests = Array.from({ length: SAGAS }, (_, i) =>
    fetch(`${ingress}/trips`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        guest: `guest-${i}`,
        hotel: { nights: 1 },
        flight: { to: 'LIS', fault: 'slow:2500' },
        car: { class: 'mini' },
      }),
    }).catch((err: unknown) => err),
  );
  // Killed only once A's log holds the hotel and car outcomes: an outcome A had not committed yet
  // is one B must send again (same idempotency key), which is right but not what this test counts.
  const outcomes = new Client({ connectionString: url });
  await outcomes.connect();
  try {
    await until(
      "hotel and car outcomes in A's log",
      async () =>
        (
          await outcomes.query<{ n: string }>(
            `SELECT count(*) AS n FROM saga_events WHERE type = 'call.completed'
               AND data::json->>'kind' = 'action' AND data::json->>'step' IN ('hotel', 'car')`,
          )
        ).rows[0]?.n,
      (n) => Number(n) === 2 * SAGAS,
    );
  } finally {
    await outcomes.end();
  }
  await until(
    'flights in flight',
    () => flight.inFlight(),
    (n) => n === SAGAS,
  );
  process.kill(stack.sagamesh.pid, 'SIGKILL');
  await stack.sagamesh.exited;
  // Envoy fails closed: the clients get an error, not a half-done success.
  for (const r of await Promise.all(requests)) {
    if (r instanceof Response) expect(r.status).toBeGreaterThanOrEqual(500);
  }

  // B shares the database; it is not behind Envoy and takes over only through the log.
  const spawned = spawnSagamesh({
    ...common,
    SAGAMESH_INSTANCE_ID: 'b',
    SAGAMESH_GRPC_ADDR: `127.0.0.1:${await freePort()}`,
    SAGAMESH_EGRESS_URL: stack.egressUrl,
  });
  b = spawned.process;
  await spawned.ready;

  const all = () => [...hotel.bookings(), ...flight.bookings(), ...car.bookings()];
  await until(
    'every booking cancelled',
    all,
    (bs) => bs.length === 3 * SAGAS && bs.every((x) => x.status === 'cancelled'),
  );

  // Participant-side counts: per saga, one create per step (the flight's replay joined the same
  // idempotency key) and exactly one cancel per booking — nobody ran a saga twice.
  for (const p of [hotel, flight, car]) {
    const bookingsPerSaga = new Map<string, number>();
    for (const booking of p.bookings())
      bookingsPerSaga.set(booking.sagaId ?? '', (bookingsPerSaga.get(booking.sagaId ?? '') ?? 0) + 1);
    expect([...bookingsPerSaga.values()]).toEqual(Array(SAGAS).fill(1));
    const deletes = p.calls().filter((c) => c.method === 'DELETE');
    expect(deletes).toHaveLength(SAGAS);
    expect(new Set(deletes.map((c) => c.idempotencyKey)).size).toBe(SAGAS);
  }
  // Nothing ran forward after the takeover: hotel and car got one action each per saga.
  expect(hotel.calls().filter((c) => c.method === 'POST')).toHaveLength(SAGAS);
  expect(car.calls().filter((c) => c.method === 'POST')).toHaveLength(SAGAS);

  // The log says who did what: A started them, B recovered and finished them.
  const client = new Client({ connectionString: url });
  await client.connect();
  try {
    // The participants cancel before B records their answers and the sagas' ends: wait for those.
    const rows = await until(
      'every saga recorded as compensated',
      async () =>
        (await client.query<{ status: string; owner: string }>('SELECT status, owner FROM sagas')).rows,
      (rs) => rs.length === SAGAS && rs.every((r) => r.status === 'compensated'),
    );
    expect(rows.every((r) => r.owner === 'b')).toBe(true);
    const recovered = await client.query<{ data: string }>(
      "SELECT data FROM saga_events WHERE type = 'saga.recovered'",
    );
    expect(recovered.rows.map((r) => (JSON.parse(r.data) as { by: string; reason: string }).by)).toEqual(
      Array(SAGAS).fill('b'),
    );
  } finally {
    await client.end();
  }
});
