import { systemClock } from '../../src/clock';
import { PostgresSagaLog } from '../../src/saga-log/postgres';
import type { SagaEvent } from '../../src/saga-log/saga-log';
import type { TestPostgres } from '../helpers/postgres';
import { startPostgres } from '../helpers/postgres';

/** The PostgreSQL saga log against a real server: the contract, leases and fencing. */
jest.setTimeout(60_000);

let pg: TestPostgres;
beforeAll(async () => {
  pg = await startPostgres();
});
afterAll(async () => {
  await pg?.stop();
});

const started: SagaEvent = {
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
      expect((await b.counts()).succeeded).toBe(1);
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

  it('reserves Idempotency-Keys once, stores answers, expires keys and prunes finished sagas', async () => {
    const url = await pg.createDatabase();
    const log = await open(url, 'a');
    try {
      const key = { definition: 'book-trip', key: 'k1', requestHash: 'h1', sagaId: 's1', expiredBefore: 0 };
      expect(await log.reserveKey(key)).toEqual({ reserved: true });
      expect(await log.reserveKey({ ...key, sagaId: 's2' })).toEqual({
        reserved: false,
        sagaId: 's1',
        requestHash: 'h1',
      });
      await log.saveAnswer('s1', { status: 201, headers: { a: 'b' }, body: '{}' });
      expect(await log.reserveKey({ ...key, sagaId: 's3' })).toMatchObject({ answer: { status: 201 } });
      // an expired key is taken over by the new saga
      expect(await log.reserveKey({ ...key, sagaId: 's4', expiredBefore: Date.now() + 1 })).toEqual({
        reserved: true,
      });

      await log.append('s1', started);
      await log.append('s1', { type: 'saga.finished', status: 'compensated' });
      await log.append('s2', started);
      const pruned = await log.prune({
        sagasFinishedBefore: Date.now() + 1,
        keysCreatedBefore: Date.now() + 1,
      });
      expect(pruned).toEqual({ sagas: 1, keys: 1 });
      expect(await log.history('s1')).toEqual([]);
      expect(await log.summary('s2')).toMatchObject({ status: 'running' });
    } finally {
      await log.close();
    }
  });

  it('fails with a coded error when the server is unreachable', async () => {
    await expect(open(`postgres://postgres@127.0.0.1:1/none`, 'a')).rejects.toMatchObject({
      code: 'SAGAMESH_ERR_STORE_UNAVAILABLE',
    });
  });
});
