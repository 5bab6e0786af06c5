import Database from 'better-sqlite3';
import type { Stack } from '../../demo/stack';
import { startStack } from '../../demo/stack';
import type { Answer } from '../helpers/trip-client';
import { logEntries, logged, postJson, trip, until } from '../helpers/trip-client';

/**
 * The embedded saga log keeps hundreds of finished sagas across a restart, and retention prunes
 * them when sagamesh starts (Maintenance.prune runs at boot) — never an unfinished saga, which the
 * same boot resumes instead.
 */
jest.setTimeout(60_000);

const SAGAS = 300;
const CONCURRENCY = 20;
/** Every KEY_EVERY-th saga carries a client Idempotency-Key. */
const KEY_EVERY = 10;
/** Records of a saga whose three steps succeeded at once: started, 3 × (dispatched, completed), finished. */
const RECORDS_PER_SAGA = 8;

let stack: Stack;

beforeAll(async () => {
  stack = await startStack({ ports: 'free' });
});

afterAll(async () => {
  await stack?.stop();
});

interface Listed {
  sagaId: string;
  status: string;
  definition: string;
}

async function listSagas(): Promise<Listed[]> {
  const res = await fetch(`${stack.adminUrl}/sagas?limit=1000`);
  expect(res.status).toBe(200);
  return ((await res.json()) as { sagas: Listed[] }).sagas;
}

/** Reads the store file directly; only while sagamesh is stopped (it holds an exclusive lock). */
function readStore<T>(fn: (db: Database.Database) => T): T {
  const db = new Database(stack.storePath ?? '', { readonly: true, fileMustExist: true });
  try {
    return fn(db);
  } finally {
    db.close();
  }
}

const count = (db: Database.Database, sql: string, ...args: unknown[]): number =>
  (db.prepare(sql).get(...args) as { n: number }).n;

it('keeps hundreds of finished sagas across a restart, then prunes them by retention at start', async () => {
  const t0 = Date.now();
  // 1. Hundreds of sagas, CONCURRENCY at a time, fast participants.
  const keyOf = (i: number): string | undefined =>
    i % KEY_EVERY === 0 ? `retention-${process.pid}-${i}` : undefined;
  const bodyOf = (i: number): string => JSON.stringify(trip({ guest: `guest-${i}` }));
  const answers: Answer[] = new Array<Answer>(SAGAS);
  let next = 0;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      for (let i = next++; i < SAGAS; i = next++) {
        const key = keyOf(i);
        answers[i] = await postJson(stack, '/trips', bodyOf(i), key ? { 'idempotency-key': key } : {});
      }
    }),
  );
  const ranMs = Date.now() - t0;
  expect(answers.map((a) => a.status)).toEqual(new Array(SAGAS).fill(201));
  const ids = answers.map((a) => a.headers.get('x-sagamesh-saga-id') ?? '');
  expect(new Set(ids).size).toBe(SAGAS);
  const allFinishedAt = Date.now();
  for (const p of Object.values(stack.participants)) expect(p.bookings()).toHaveLength(SAGAS);

  // 2. Stop sagamesh; the file holds every saga, its whole journal, and the keys with their answers.
  expect(await stack.killSagamesh('SIGTERM')).toBe(0);
  const stored = readStore((db) => ({
    succeeded: count(
      db,
      "SELECT COUNT(*) AS n FROM sagas WHERE status = 'succeeded' AND finished_at IS NOT NULL",
    ),
    sagas: count(db, 'SELECT COUNT(*) AS n FROM sagas'),
    events: count(db, 'SELECT COUNT(*) AS n FROM saga_events'),
    keys: count(db, 'SELECT COUNT(*) AS n FROM idempotency_keys WHERE answer IS NOT NULL'),
  }));
  expect(stored).toEqual({
    succeeded: SAGAS,
    sagas: SAGAS,
    events: SAGAS * RECORDS_PER_SAGA,
    keys: SAGAS / KEY_EVERY,
  });

  // 3. Start it again: sagamesh's own view has them all, and their keys still replay.
  await stack.restartSagamesh();
  const listed = await listSagas();
  expect(new Set(listed.map((s) => s.sagaId))).toEqual(new Set(ids));
  expect(listed.every((s) => s.status === 'succeeded' && s.definition === 'book-trip')).toBe(true);
  const inspected = await fetch(`${stack.adminUrl}/sagas/${ids[SAGAS - 1]}`);
  expect(((await inspected.json()) as { history: unknown[] }).history).toHaveLength(RECORDS_PER_SAGA);
  const replay = await postJson(stack, '/trips', bodyOf(0), { 'idempotency-key': keyOf(0) ?? '' });
  expect(replay.headers.get('idempotent-replayed')).toBe('true');
  expect(replay.text).toBe(answers[0]?.text);
  expect(logged(stack, 'pruned the saga log')).toEqual([]);

  // 4. One saga left unfinished by a crash: the flight is still in flight when sagamesh dies.
  for (const p of Object.values(stack.participants)) p.reset();
  const { hotel, flight, car } = stack.participants;
  const lost = postJson(stack, '/trips', trip({ flight: { to: 'LIS', fault: 'slow:2000' } })).catch(
    (err: unknown) => err,
  );
  await until(
    'hotel and car booked, the flight in flight',
    () => hotel.bookings().length === 1 && car.bookings().length === 1 && flight.inFlight() >= 1,
  );
  const unfinished = hotel.bookings()[0]?.sagaId ?? '';
  expect(await stack.killSagamesh('SIGKILL')).toBeNull();
  await lost;

  // 5. Restart with a retention shorter than the finished sagas' age: pruned at start, all of
  //    them, keys included; the unfinished saga is not pruned but resumed and compensated.
  await until('the finished sagas older than the retention', () => Date.now() > allFinishedAt + 1200);
  await stack.restartSagamesh({
    SAGAMESH_RETENTION_MS: '1000',
    SAGAMESH_IDEMPOTENCY_RETENTION_MS: '1000',
  });
  const boot = logEntries(stack.sagamesh.lines());
  const prunedAt = boot.findIndex((e) => e['msg'] === 'pruned the saga log');
  const readyAt = boot.findIndex((e) => e['msg'] === 'sagamesh ready');
  expect(prunedAt).toBeGreaterThanOrEqual(0);
  expect(prunedAt).toBeLessThan(readyAt);
  expect(boot[prunedAt]).toMatchObject({ sagas: SAGAS, keys: SAGAS / KEY_EVERY });
  expect(logged(stack, 'resumed unfinished sagas')[0]).toMatchObject({ claimed: 1, resumed: 1 });
  expect(logged(stack, 'saga resumed from the log', { saga_id: unfinished })).toHaveLength(1);

  const after = await listSagas();
  expect(after.filter((s) => ids.includes(s.sagaId))).toEqual([]);
  // A pruned key is forgotten: the same key and body now start a new saga.
  const fresh = await postJson(stack, '/trips', bodyOf(0), { 'idempotency-key': keyOf(0) ?? '' });
  expect(fresh.status).toBe(201);
  expect(fresh.headers.get('idempotent-replayed')).toBeNull();
  expect(fresh.headers.get('x-sagamesh-saga-id')).not.toBe(ids[0]);

  await until(
    'the resumed saga compensated on every participant',
    () =>
      [hotel, flight, car].every(
        (p) => p.bookings().filter((b) => b.sagaId === unfinished && b.status === 'cancelled').length === 1,
      ),
    { timeoutMs: 15_000 },
  );
  await until('the resumed saga recorded as compensated', () =>
    Boolean(logged(stack, 'saga finished', { saga_id: unfinished, status: 'compensated' }).length),
  );

  // 6. The file agrees: none of the pruned sagas, nor any of their records, is left.
  expect(await stack.killSagamesh('SIGTERM')).toBe(0);
  const left = readStore((db) => ({
    sagas: count(
      db,
      `SELECT COUNT(*) AS n FROM sagas WHERE id IN (SELECT value FROM json_each(?))`,
      JSON.stringify(ids),
    ),
    events: count(
      db,
      `SELECT COUNT(*) AS n FROM saga_events WHERE saga_id IN (SELECT value FROM json_each(?))`,
      JSON.stringify(ids),
    ),
  }));
  expect(left).toEqual({ sagas: 0, events: 0 });
  await stack.restartSagamesh();
  console.log(`${SAGAS} sagas at concurrency ${CONCURRENCY} took ${ranMs} ms`);
});
