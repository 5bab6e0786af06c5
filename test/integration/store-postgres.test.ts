import { Client, Pool } from 'pg';
import { systemClock } from '../../src/clock';
import { PostgresSagaLog } from '../../src/saga-log/postgres';
import type { SagaEvent, StartedEvent } from '../../src/runtime/journal';
import type { TestPostgres } from '../helpers/postgres';
import { startPostgres } from '../helpers/postgres';
import { countByStatus } from '../helpers/saga-log-counts';

/** The PostgreSQL saga log against a real server: the contract, leases, fencing and group commit. */
jest.setTimeout(60_000);

let pg: TestPostgres;
beforeAll(async () => {
  pg = await startPostgres();
});
afterAll(async () => {
  await pg?.stop();
});

const started: StartedEvent = {
  type: 'saga.started',
  definition: 'book-trip',
  version: 'v1',
  request: { method: 'POST', path: '/trips', query: {}, headers: {}, body: { guest: 'Ada' } },
};
const dispatched = (step: string): SagaEvent => ({
  type: 'call.dispatched',
  step,
  kind: 'action',
  attempt: 1,
  replay: false,
});

async function open(url: string, instanceId: string, leaseTtlMs = 1000): Promise<PostgresSagaLog> {
  return PostgresSagaLog.open({ url, instanceId, leaseTtlMs }, systemClock);
}

/** Counts the batches of appends the saga logs of this process send (one statement each). */
function countBatches(): { readonly count: () => number; readonly restore: () => void } {
  const query = jest.spyOn(Pool.prototype, 'query');
  const count = (): number =>
    query.mock.calls.filter(([sql]) => typeof sql === 'string' && sql.includes('INSERT INTO saga_events'))
      .length;
  return { count, restore: () => query.mockRestore() };
}

async function sql<R extends object>(url: string, text: string, args: unknown[] = []): Promise<R[]> {
  const client = new Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<R>(text, args)).rows;
  } finally {
    await client.end();
  }
}

const ids = (n: number, prefix = 's'): string[] => Array.from({ length: n }, (_, i) => `${prefix}${i}`);

describe('PostgreSQL saga log', () => {
  it('migrates once even when several instances start together, and keeps the journal in order', async () => {
    const url = await pg.createDatabase();
    const [a, b] = await Promise.all([open(url, 'a'), open(url, 'b')]);
    try {
      await a.append('s1', started);
      await Promise.all(['hotel', 'flight', 'car'].map((s) => a.append('s1', dispatched(s))));
      await a.append('s1', { type: 'saga.finished', status: 'succeeded' });
      const history = await b.history('s1');
      expect(history.map((r) => r.seq)).toEqual([1, 2, 3, 4, 5]);
      expect(history[0]).toMatchObject({ type: 'saga.started', request: { body: { guest: 'Ada' } } });
      expect(await b.summary('s1')).toMatchObject({
        status: 'succeeded',
        definition: 'book-trip',
        version: 'v1',
      });
      expect((await countByStatus(b)).succeeded).toBe(1);
      expect(await b.list({ definition: 'book-trip', status: 'succeeded' })).toHaveLength(1);
      expect(await b.list({ definition: 'other' })).toHaveLength(0);
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });

  it('lets another instance claim a saga only after its lease expired, and fences the old owner', async () => {
    const url = await pg.createDatabase();
    const a = await open(url, 'a', 800);
    const b = await open(url, 'b', 800);
    try {
      await a.append('s1', started);
      expect(await b.claimUnfinished()).toEqual([]);
      // a keeps renewing: still its own
      expect(await a.renewLeases(['s1'])).toEqual([]);
      expect(await b.claimUnfinished()).toEqual([]);
      // a stops renewing (dead or paused); after the TTL, b claims it
      await new Promise((r) => setTimeout(r, 1000));
      expect(await b.claimUnfinished()).toEqual(['s1']);
      // a can no longer record, hence no longer act
      await expect(a.append('s1', dispatched('hotel'))).rejects.toMatchObject({
        code: 'SAGAMESH_ERR_LEASE_LOST',
      });
      expect(await a.renewLeases(['s1'])).toEqual(['s1']);
      // b continues the same journal
      const record = await b.append('s1', dispatched('hotel'));
      expect(record.seq).toBe(2);
      expect(await b.claimUnfinished()).toEqual([]);
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });

  it('lets any instance re-open a finished saga for an undo, one of two at once, and fences the others', async () => {
    const url = await pg.createDatabase();
    const a = await open(url, 'a', 800);
    const b = await open(url, 'b', 800);
    const undo: SagaEvent = {
      type: 'saga.compensating',
      undo: true,
      error: { code: 'SAGAMESH_ERR_SAGA_UNDONE', message: 'undone on request' },
    };
    try {
      await a.append('s1', started);
      await a.finish('s1', { type: 'saga.finished', status: 'succeeded' });
      // Both instances are asked to undo it at once: one re-opens it and owns it now.
      const outcomes = await Promise.allSettled([a.append('s1', undo), b.append('s1', undo)]);
      const codes = outcomes.map((o) =>
        o.status === 'fulfilled' ? 'ok' : (o.reason as { code: string }).code,
      );
      expect(codes.sort()).toEqual(['SAGAMESH_ERR_LEASE_LOST', 'ok']);
      const [owner, other] = outcomes[0]?.status === 'fulfilled' ? [a, b] : [b, a];
      await expect(other.append('s1', dispatched('hotel'))).rejects.toMatchObject({
        code: 'SAGAMESH_ERR_LEASE_LOST',
      });
      expect((await owner.append('s1', dispatched('hotel'))).seq).toBe(4);
      // Unfinished again: when its owner stops renewing, another instance takes the undo over.
      await new Promise((r) => setTimeout(r, 1000));
      expect(await other.claimUnfinished()).toEqual(['s1']);
      await other.finish('s1', { type: 'saga.finished', status: 'compensated' });
      expect(await a.summary('s1')).toMatchObject({ status: 'compensated' });
      // The instance whose lease lapsed records nothing more for it.
      await expect(owner.append('s1', dispatched('car'))).rejects.toMatchObject({
        code: 'SAGAMESH_ERR_LEASE_LOST',
      });
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });

  // What keys do in every store is the contract test's (saga-log-contract.test.ts).
  it('takes over a key an older sagamesh left without its saga once it is a minute old, and prunes keys with their sagas', async () => {
    const url = await pg.createDatabase();
    const log = await open(url, 'a');
    try {
      // Left by a sagamesh that reserved keys first and died before the start (no saga, no answer).
      const leftover = (key: string, ageMs: number) =>
        sql(
          url,
          "INSERT INTO idempotency_keys (definition, key, request_hash, saga_id, created_at) VALUES ('book-trip', $1, 'h1', 'never', $2)",
          [key, Date.now() - ageMs],
        );
      await leftover('old', 61_000);
      await leftover('young', 5_000);
      const key = (k: string) => ({ definition: 'book-trip', key: k, requestHash: 'h1', expiredBefore: 0 });
      expect(await log.start('s1', started, key('old'))).toMatchObject({ started: { sagaId: 's1' } });
      // A younger one may be an older instance's, between its two writes: still held.
      expect(await log.start('s2', started, key('young'))).toEqual({
        held: { sagaId: 'never', requestHash: 'h1' },
      });
      expect(await log.summary('s2')).toBeUndefined();

      await log.finish(
        's1',
        { type: 'saga.finished', status: 'succeeded' },
        { status: 201, headers: {}, body: '{}' },
      );
      expect(await log.prune({ sagasFinishedBefore: Date.now() + 1, keysCreatedBefore: 0 })).toEqual({
        sagas: 1,
        keys: 1,
      });
      expect(await log.start('s3', started, key('old'))).toMatchObject({ started: { sagaId: 's3' } });
    } finally {
      await log.close();
    }
  });

  describe('group commit', () => {
    it('writes the concurrent appends of many sagas in one batch, each resolving only after its commit', async () => {
      const url = await pg.createDatabase();
      const log = await open(url, 'a', 60_000);
      const sagas = ids(50);
      const batches = countBatches();
      const blocker = new Client({ connectionString: url });
      await blocker.connect();
      try {
        await Promise.all(sagas.map((id) => log.append(id, started)));
        expect(batches.count()).toBe(1);

        // Hold the journal locked: the next batch cannot commit, so no append may resolve.
        await blocker.query('BEGIN');
        await blocker.query('LOCK TABLE saga_events IN EXCLUSIVE MODE');
        let resolved = 0;
        const appends = sagas.map((id, i) =>
          // every fifth saga finishes in the same batch as another of its records
          (i % 5 === 0
            ? Promise.all([
                log.append(id, dispatched('hotel')),
                log.append(id, { type: 'saga.finished', status: 'succeeded' }),
              ])
            : log.append(id, dispatched('hotel'))
          ).then(() => (resolved += 1)),
        );
        await new Promise((r) => setTimeout(r, 300));
        expect(resolved).toBe(0);
        await blocker.query('COMMIT');
        await Promise.all(appends);
        expect(batches.count()).toBe(2);

        const rows = await sql<{ n: string }>(url, 'SELECT COUNT(*) AS n FROM saga_events');
        expect(Number(rows[0]?.n)).toBe(50 + 50 + 10);
        expect(await log.history('s0')).toMatchObject([
          { seq: 1 },
          { seq: 2 },
          { seq: 3, type: 'saga.finished' },
        ]);
        expect(await log.summary('s0')).toMatchObject({ status: 'succeeded' });
        const finished = await sql<{ id: string }>(url, 'SELECT id FROM sagas WHERE finished_at IS NOT NULL');
        expect(finished).toHaveLength(10);
        expect(await log.summary('s1')).toMatchObject({ status: 'running' });
        expect((await countByStatus(log)).succeeded).toBe(10);
      } finally {
        batches.restore();
        await blocker.end();
        await log.close();
      }
    });

    it("rejects only the appends of a saga whose lease was taken over, and commits the batch's others", async () => {
      const url = await pg.createDatabase();
      const a = await open(url, 'a', 60_000);
      const b = await open(url, 'b', 60_000);
      const batches = countBatches();
      try {
        await Promise.all(['s1', 's2', 's3'].map((id) => a.append(id, started)));
        // s1's lease runs out (a paused, say) and b takes it over; a still owns s2 and s3
        await sql(url, "UPDATE sagas SET lease_expires_at = 0 WHERE id = 's1'");
        expect(await b.claimUnfinished()).toEqual(['s1']);

        const before = batches.count();
        const outcomes = await Promise.allSettled([
          a.append('s2', dispatched('hotel')),
          a.append('s1', dispatched('hotel')),
          a.append('s1', dispatched('flight')),
          a.append('s3', dispatched('hotel')),
        ]);
        expect(batches.count()).toBe(before + 1);
        expect(outcomes.map((o) => o.status)).toEqual(['fulfilled', 'rejected', 'rejected', 'fulfilled']);
        for (const o of outcomes.filter((x) => x.status === 'rejected'))
          expect(o.reason).toMatchObject({ code: 'SAGAMESH_ERR_LEASE_LOST' });

        expect((await a.history('s1')).map((r) => r.type)).toEqual(['saga.started']);
        expect((await a.history('s2')).map((r) => r.seq)).toEqual([1, 2]);
        expect((await a.history('s3')).map((r) => r.seq)).toEqual([1, 2]);
        // the new owner continues s1's journal where a's last committed record left it
        expect((await b.append('s1', dispatched('hotel'))).seq).toBe(2);
        await expect(a.append('s1', dispatched('car'))).rejects.toMatchObject({
          code: 'SAGAMESH_ERR_LEASE_LOST',
        });
      } finally {
        batches.restore();
        await Promise.all([a.close(), b.close()]);
      }
    });

    it('rejects a second start of an existing saga without failing the rest of its batch', async () => {
      const url = await pg.createDatabase();
      const log = await open(url, 'a', 60_000);
      try {
        await log.append('s1', started);
        const outcomes = await Promise.allSettled([log.append('s1', started), log.append('s2', started)]);
        expect(outcomes[0]).toMatchObject({
          status: 'rejected',
          reason: { code: 'SAGAMESH_ERR_INTERNAL', message: expect.stringContaining('already exists') },
        });
        expect(outcomes[1]).toMatchObject({ status: 'fulfilled', value: { sagaId: 's2', seq: 1 } });
        expect(await log.history('s1')).toHaveLength(1);
      } finally {
        await log.close();
      }
    });

    it('writes a batch the server refuses for one saga again saga by saga, so only that saga fails', async () => {
      const url = await pg.createDatabase();
      // Two instances given one SAGAMESH_INSTANCE_ID: fencing cannot tell them apart, and both
      // take seq 2 of s1. The second to commit breaks the journal's primary key.
      const a = await open(url, 'same', 60_000);
      const b = await open(url, 'same', 60_000);
      const batches = countBatches();
      try {
        await a.append('s1', started);
        await b.append('s1', dispatched('hotel'));
        const before = batches.count();
        const outcomes = await Promise.allSettled([
          a.append('s2', started),
          a.append('s1', dispatched('car')),
          a.append('s3', started),
        ]);
        expect(outcomes.map((o) => o.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
        expect(outcomes[1]).toMatchObject({ reason: { code: 'SAGAMESH_ERR_STORE_UNAVAILABLE' } });
        // The batch, then each of its three sagas.
        expect(batches.count()).toBe(before + 4);
        expect((await a.history('s1')).map((r) => (r.type === 'call.dispatched' ? r.step : r.type))).toEqual([
          'saga.started',
          'hotel',
        ]);
        expect(await a.summary('s2')).toMatchObject({ status: 'running' });
        expect(await a.summary('s3')).toMatchObject({ status: 'running' });
        // s1's next record reads the journal's last seq again.
        expect((await a.append('s1', dispatched('car'))).seq).toBe(3);
      } finally {
        batches.restore();
        await Promise.all([a.close(), b.close()]);
      }
    });

    it("keeps each saga's records in append order when many sagas append concurrently across batches", async () => {
      const url = await pg.createDatabase();
      const log = await open(url, 'a', 60_000);
      const sagas = ids(20);
      const batches = countBatches();
      try {
        await Promise.all(sagas.map((id) => log.append(id, started)));
        const appends: Promise<{ sagaId: string; step: string; seq: number }>[] = [];
        for (let round = 0; round < 10; round++) {
          for (const id of sagas) {
            const step = `step-${round}`;
            appends.push(log.append(id, dispatched(step)).then((r) => ({ sagaId: id, step, seq: r.seq })));
          }
          // some rounds in the same tick, others while a batch is being written
          if (round % 3 === 0) await new Promise((r) => setImmediate(r));
          if (round % 4 === 0) await new Promise((r) => setTimeout(r, 2));
        }
        const records = await Promise.all(appends);
        expect(batches.count()).toBeGreaterThan(2);
        for (const id of sagas) {
          const expected = Array.from({ length: 10 }, (_, round) => `step-${round}`);
          expect(records.filter((r) => r.sagaId === id).map((r) => r.seq)).toEqual(
            Array.from({ length: 10 }, (_, i) => i + 2),
          );
          const history = await log.history(id);
          expect(history.map((r) => r.seq)).toEqual(Array.from({ length: 11 }, (_, i) => i + 1));
          expect(history.slice(1).map((r) => (r.type === 'call.dispatched' ? r.step : r.type))).toEqual(
            expected,
          );
        }
      } finally {
        batches.restore();
        await log.close();
      }
    });

    it('lets queued appends commit on close, and refuses appends after it', async () => {
      const url = await pg.createDatabase();
      const log = await open(url, 'a', 60_000);
      const appended = Promise.all(ids(10).map((id) => log.append(id, started)));
      await log.close();
      expect(await appended).toHaveLength(10);
      await expect(log.append('s0', dispatched('hotel'))).rejects.toMatchObject({
        code: 'SAGAMESH_ERR_STORE_UNAVAILABLE',
      });
      const rows = await sql<{ n: string }>(url, 'SELECT COUNT(*) AS n FROM saga_events');
      expect(Number(rows[0]?.n)).toBe(10);
    });
  });

  it('fails with a coded error when the server is unreachable', async () => {
    await expect(open(`postgres://postgres@127.0.0.1:1/none`, 'a')).rejects.toMatchObject({
      code: 'SAGAMESH_ERR_STORE_UNAVAILABLE',
    });
  });
});
