import { createHash } from 'node:crypto';
import Database from 'better-sqlite3';
import { Client } from 'pg';
import type { Stack } from '../../demo/stack';
import { startStack } from '../../demo/stack';
import type { TestPostgres } from '../helpers/postgres';
import { startPostgres } from '../helpers/postgres';
import type { Answer } from '../helpers/trip-client';
import { logged, postJson, trip, until } from '../helpers/trip-client';

/**
 * The client's Idempotency-Key across a crash, on both durable stores, through the real Envoy:
 * whatever state a crash leaves the log in, the key leads to a terminal answer or a fresh run.
 *
 * This sagamesh writes a key with its saga's start and its answer with its saga's end, so a crash
 * leaves either both or neither: killed with -9 while keyed sagas start, run and finish, every key
 * must then lead to a terminal answer that agrees with the participants. An older sagamesh wrote
 * each in a write of its own; the states it could leave between them are built here exactly —
 * sagamesh killed with -9, the store edited as the crash would have left it, sagamesh started again
 * on it — and must lead to the same.
 */
jest.setTimeout(90_000);

let pg: TestPostgres;
beforeAll(async () => {
  pg = await startPostgres();
});
afterAll(async () => {
  await pg?.stop();
});

interface StoreUnderTest {
  readonly env: () => Promise<Record<string, string>>;
  /** Runs one statement on the store while sagamesh is down (`?` placeholders). */
  readonly run: (stack: Stack, sql: string, args: unknown[]) => Promise<void>;
  /** How old a key left without its saga must be before it is taken over (PostgreSQL: 60 s). */
  readonly leftoverAgeMs: number;
}

let pgUrl = '';
const STORES: [string, StoreUnderTest][] = [
  [
    'sqlite',
    {
      env: () => Promise.resolve({}),
      run: (stack, sql, args) => {
        const db = new Database(stack.storePath ?? '');
        try {
          db.prepare(sql).run(...args);
        } finally {
          db.close();
        }
        return Promise.resolve();
      },
      // Alone on its file, sagamesh releases them all at boot.
      leftoverAgeMs: 0,
    },
  ],
  [
    'postgres',
    {
      env: async () => {
        pgUrl = await pg.createDatabase();
        return { SAGAMESH_STORE: pgUrl };
      },
      run: async (_stack, sql, args) => {
        const client = new Client({ connectionString: pgUrl });
        await client.connect();
        try {
          let n = 0;
          await client.query(
            sql.replace(/\?/g, () => `$${++n}`),
            args,
          );
        } finally {
          await client.end();
        }
      },
      leftoverAgeMs: 120_000,
    },
  ],
];

let keys = 0;
const newKey = (): string => `crash-window-${process.pid}-${Date.now()}-${++keys}`;
const sha256 = (text: string): string => createHash('sha256').update(text).digest('hex');

describe.each(STORES)('Idempotency-Key after a crash (%s)', (_, store) => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({ ports: 'free', env: await store.env() });
  });
  afterAll(async () => {
    await stack?.stop();
  });
  beforeEach(() => {
    for (const p of Object.values(stack.participants)) p.reset();
  });

  /** Kills sagamesh (-9), edits its store as a crash would have left it, and starts it again. */
  async function crashWith(sql: string, args: unknown[]): Promise<void> {
    expect(await stack.killSagamesh('SIGKILL')).toBeNull();
    await store.run(stack, sql, args);
    await stack.restartSagamesh();
  }

  it('runs afresh for a key whose saga never started (died between reserving the key and starting)', async () => {
    const key = newKey();
    const body = JSON.stringify(trip({ guest: 'Lovelace' }));
    await crashWith(
      'INSERT INTO idempotency_keys (definition, key, request_hash, saga_id, created_at) VALUES (?, ?, ?, ?, ?)',
      ['book-trip', key, sha256(body), 'a-saga-that-never-started', Date.now() - store.leftoverAgeMs],
    );

    const answer = await postJson(stack, '/trips', body, { 'idempotency-key': key });
    expect(answer.status).toBe(201);
    expect(answer.headers.get('idempotent-replayed')).toBeNull();
    const sagaId = answer.headers.get('x-sagamesh-saga-id');
    expect(sagaId).not.toBe('a-saga-that-never-started');
    for (const p of Object.values(stack.participants)) expect(p.bookings()).toHaveLength(1);
    // From now on the key is that run's.
    const retry = await postJson(stack, '/trips', body, { 'idempotency-key': key });
    expect(retry.status).toBe(201);
    expect(retry.text).toBe(answer.text);
    expect(retry.headers.get('idempotent-replayed')).toBe('true');
  });

  it.each([
    ['succeeded', {}, 201],
    ['compensated', { car: { class: 'suv', fault: 'fail' } }, 409],
  ])(
    "answers with the saga's outcome for a key whose saga %s but whose answer was never written (died between them)",
    async (status, over, httpStatus) => {
      const key = newKey();
      const body = JSON.stringify(trip(over));
      const first = await postJson(stack, '/trips', body, { 'idempotency-key': key });
      expect(first.status).toBe(httpStatus);
      const sagaId = first.headers.get('x-sagamesh-saga-id');
      const calls = Object.values(stack.participants).reduce((n, p) => n + p.calls().length, 0);
      await crashWith('UPDATE idempotency_keys SET answer = NULL WHERE key = ?', [key]);

      const retry = await postJson(stack, '/trips', body, { 'idempotency-key': key });
      expect(retry.status).toBe(httpStatus);
      expect(retry.headers.get('idempotent-replayed')).toBe('true');
      expect(retry.headers.get('x-sagamesh-saga-id')).toBe(sagaId);
      // The same answer; a failure's step details as the journal has them.
      if (status === 'succeeded') expect(retry.text).toBe(first.text);
      else expect(retry.body).toMatchObject({ sagaId, status, failedStep: 'car' });
      // Nothing ran again, and the derived answer is kept: the next retry is the same.
      expect(Object.values(stack.participants).reduce((n, p) => n + p.calls().length, 0)).toBe(calls);
      const again = await postJson(stack, '/trips', body, { 'idempotency-key': key });
      expect(again.text).toBe(retry.text);
    },
  );

  it('gives every key a terminal answer that agrees with the participants after a kill -9 among keyed sagas', async () => {
    const { hotel, flight, car } = stack.participants;
    const request = (i: number) => {
      const key = newKey();
      // Half the flights take 800 ms: in flight when sagamesh dies; the rest finish first.
      const body = JSON.stringify(
        trip({ guest: `guest-${i}`, flight: i % 2 ? { to: 'LIS', fault: 'slow:800' } : {} }),
      );
      const sent = postJson(stack, '/trips', body, { 'idempotency-key': key }).catch((err: unknown) => err);
      return { key, body, sent };
    };
    const first = Array.from({ length: 10 }, (_, i) => request(i));
    await until('some sagas finished, slow flights in flight', () => {
      return logged(stack, 'saga finished').length >= 3 && flight.inFlight() >= 3;
    });
    // A second wave, killed as its first saga has started: the others are starting, or not yet.
    const startedBefore = logged(stack, 'saga started').length;
    const second = Array.from({ length: 10 }, (_, i) => request(10 + i));
    await until(
      'a saga of the second wave started',
      () => logged(stack, 'saga started').length > startedBefore,
    );
    expect(await stack.killSagamesh('SIGKILL')).toBeNull();
    await Promise.all([...first, ...second].map((r) => r.sent));
    await stack.restartSagamesh();

    for (const { key, body } of [...first, ...second]) {
      let answer: Answer | undefined;
      await until(
        `a terminal answer for ${key}`,
        async () => {
          answer = await postJson(stack, '/trips', body, { 'idempotency-key': key });
          return answer.status !== 202;
        },
        { timeoutMs: 20_000, intervalMs: 100 },
      );
      const sagaId = answer?.headers.get('x-sagamesh-saga-id');
      expect([201, 409]).toContain(answer?.status);
      const guest = (JSON.parse(body) as { guest: string }).guest;
      for (const p of [hotel, flight, car]) {
        const mine = p.bookings().filter((b) => (b.request as { guest?: string }).guest === guest);
        // One saga per key: no booking of this client's request belongs to another saga.
        expect(mine.every((b) => b.sagaId === sagaId)).toBe(true);
        expect(mine.length).toBeLessThanOrEqual(1);
        // The answer agrees with what the participants hold.
        if (answer?.status === 201) expect(mine.map((b) => b.status)).toEqual(['booked']);
        else expect(mine.every((b) => b.status === 'cancelled')).toBe(true);
      }
    }
  });
});
